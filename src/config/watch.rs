//! Config hot reload: directory watch (debounced) and SIGHUP.

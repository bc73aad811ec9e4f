//! The HTTP accept loop: header-read timeouts and graceful shutdown.

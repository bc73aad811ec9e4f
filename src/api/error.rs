//! The one place API errors become HTTP responses.

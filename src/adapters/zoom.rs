//! Zoom (API v2, server-to-server OAuth): meeting and webinar registrants.

use crate::config::env::{EnvString, Secret};

connection_config! {
    /// A Zoom account, through a server-to-server OAuth app.
    pub struct ZoomConfig {
        /// Account id of the server-to-server app.
        pub account_id: EnvString,
        /// Client id of the server-to-server app.
        pub client_id: EnvString,
        /// Client secret of the server-to-server app.
        pub client_secret: Secret,
    }
}

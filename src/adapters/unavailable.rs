//! Integrations whose adapter is not in this build yet.
//!
//! Their connections validate and load, so a config can be committed ahead
//! of the upgrade; each attempt fails permanently with a message that says
//! why, and the deliveries can be retried by hand once the adapter ships.

use super::adapter::{Adapter, AttemptReport, AttemptResult, BoxFuture, Delivery};
use crate::config::model::Outcome;
use std::time::Duration;

/// Fails every attempt with a clear reason.
#[derive(Debug)]
pub struct Unavailable {
    /// The integration (`type:`).
    pub kind: &'static str,
}

impl Adapter for Unavailable {
    fn deliver<'a>(&'a self, _: &'a Delivery, _: Duration) -> BoxFuture<'a, AttemptReport> {
        let message = format!(
            "the `{}` integration has no adapter in meshes {} yet; retry this delivery after upgrading",
            self.kind,
            env!("CARGO_PKG_VERSION")
        );
        Box::pin(async move {
            AttemptReport {
                result: AttemptResult::Permanent { code: Outcome::InternalError, message },
                http_status: None,
                response_excerpt: None,
            }
        })
    }
}

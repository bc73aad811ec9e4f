//! Attempts that end without an HTTP answer: what the error chain says,
//! redacted, and whether a retry is safe.
//!
//! Kept apart from [`super::http`] because the webhook runtime and the
//! `--ca-file` check read the same error chains.

use super::adapter::{AttemptReport, AttemptResult};
use super::redact::Secrets;
use crate::config::model::Outcome;

/// A failure with no HTTP answer.
pub(super) fn no_answer(idempotent: bool, code: Outcome, what: &str) -> AttemptReport {
    let result = if idempotent {
        AttemptResult::Retry { code, after: None, message: what.to_string() }
    } else {
        AttemptResult::Permanent {
            code,
            message: format!(
                "{what}; the provider may have acted on it and this action has no idempotency \
                 key, so it is not retried automatically (check, then retry it by hand)"
            ),
        }
    };
    AttemptReport { result, http_status: None, response_excerpt: None }
}

/// Classifies a failure before any response. reqwest's `Display` names the
/// URL (which may be a credential), so the message is built from the causes
/// and redacted.
pub(super) fn transport_failure(
    secrets: &Secrets,
    e: &reqwest::Error,
    idempotent: bool,
) -> AttemptReport {
    let detail = secrets.redact(&transport_causes(e));
    let with =
        |what: &str| if detail.is_empty() { what.to_string() } else { format!("{what}: {detail}") };
    if e.is_builder() {
        let message = with("the request could not be built");
        let result = AttemptResult::Permanent { code: Outcome::InternalError, message };
        return AttemptReport { result, http_status: None, response_excerpt: None };
    }
    if e.is_connect() {
        // Nothing was sent: always safe to retry.
        return no_answer(true, Outcome::NetworkError, &with("could not connect"));
    }
    let code = if e.is_timeout() { Outcome::Timeout } else { Outcome::NetworkError };
    no_answer(idempotent, code, &with("the request failed"))
}

/// The causes under a transport error, joined (not redacted): reqwest's own
/// `Display` names the URL, which may be a credential. Also tells the
/// attempt running on this task when a cause is a lack of file descriptors.
pub(super) fn transport_causes(e: &reqwest::Error) -> String {
    crate::delivery::local::note(e);
    let mut text = causes(e);
    if text.contains("message head is too large") {
        // The HTTP client's own limits (it has no setting to raise them).
        text.push_str(
            " (the answer had more than 100 headers or a head over 400 KiB: the destination \
             answered, but its answer could not be read)",
        );
    }
    if let Some(note) = super::proxy::note(e.url()) {
        text.push_str(&note);
    }
    if super::trust::untrusted(&text) {
        text.push_str(
            " (the destination's certificate is not signed by a trusted authority: for a \
             private CA, start meshes with --ca-file)",
        );
    }
    text
}

/// The causes under `e` (its sources, not `e` itself), joined with `: `.
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.join(": ")
}

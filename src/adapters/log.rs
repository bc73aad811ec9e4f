//! `log`: prints each delivery to stdout. Needs no credentials, so the
//! bundled `meshes.yaml` runs anywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

connection_config! {
    no_base_url no_mapping
    /// Prints deliveries to stdout.
    pub struct LogConfig {
        /// `pretty` (one readable line) or `json` (one JSON object per line).
        #[serde(default, skip_serializing_if = "LogFormat::is_default")]
        pub format: LogFormat,
        /// Include the event payload in each line.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        pub include_payload: bool,
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// How a `log` connection prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per delivery.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn is_default(&self) -> bool {
        *self == LogFormat::Pretty
    }
}

crate::no_env_fields!(LogFormat);

use super::adapter::{Adapter, AttemptReport, AttemptResult, BoxFuture, Delivery};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where a log connection writes (stdout, or a buffer in tests).
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// Prints one line per delivery and reports it delivered.
pub struct LogAdapter {
    format: LogFormat,
    include_payload: bool,
    out: Sink,
}

impl std::fmt::Debug for LogAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogAdapter")
            .field("format", &self.format)
            .field("include_payload", &self.include_payload)
            .finish_non_exhaustive()
    }
}

/// One `json` line, in this field order; the payload goes in as its text.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    event: &'a str,
    event_id: &'a str,
    rule_id: &'a str,
    delivery_id: &'a str,
    attempt: u32,
    workspace: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a serde_json::value::RawValue>,
}

impl LogAdapter {
    /// Writes to stdout.
    pub fn new(cfg: &LogConfig) -> Self {
        Self::with_writer(cfg, Arc::new(Mutex::new(std::io::stdout())))
    }

    /// Writes to `out` (tests capture the lines this way).
    pub fn with_writer(cfg: &LogConfig, out: Sink) -> Self {
        LogAdapter { format: cfg.format, include_payload: cfg.include_payload, out }
    }

    /// One line, without the newline. Payloads print as compact JSON, which
    /// escapes newlines, so a delivery is always exactly one line.
    fn line(&self, d: &Delivery) -> String {
        let payload = self.include_payload.then_some(&d.payload);
        match self.format {
            LogFormat::Pretty => {
                let mut line = format!(
                    "[meshes] {} id={} rule={} delivery={} attempt={}",
                    d.event, d.event_id, d.rule_id, d.delivery_id, d.attempt
                );
                if let Some(p) = payload {
                    line.push_str(" payload=");
                    line.push_str(p.as_str());
                }
                line
            }
            LogFormat::Json => {
                let line = JsonLine {
                    event: &d.event,
                    event_id: &d.event_id,
                    rule_id: &d.rule_id,
                    delivery_id: &d.delivery_id,
                    attempt: d.attempt,
                    workspace: &d.workspace,
                    resource: &d.resource,
                    resource_id: d.resource_id.as_deref(),
                    payload: payload.map(|p| p.raw()),
                };
                // Strings and the payload's own text cannot fail to serialize.
                serde_json::to_string(&line).unwrap_or_default()
            }
        }
    }

    fn write(&self, line: &str) -> std::io::Result<()> {
        // A writer that panicked mid-line leaves at worst a torn line: keep going.
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        writeln!(out, "{line}")?;
        out.flush()
    }
}

impl Adapter for LogAdapter {
    fn deliver<'a>(
        &'a self,
        d: &'a Delivery,
        _timeout: std::time::Duration,
    ) -> BoxFuture<'a, AttemptReport> {
        // Printing is the whole delivery; a closed stdout cannot be fixed by
        // retrying, so the attempt still counts as delivered and the failure
        // is reported through tracing instead.
        if let Err(e) = self.write(&self.line(d)) {
            tracing::warn!(error = %e, rule = %d.rule_id, "log connection could not write a line");
        }
        Box::pin(async {
            AttemptReport {
                result: AttemptResult::Delivered,
                http_status: None,
                response_excerpt: None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn delivery() -> Delivery {
        Delivery::sample(serde_json::json!({"email": "a@b.c", "note": "two\nlines"}))
    }

    /// Delivers once with `cfg` and returns what was written.
    async fn print(format: LogFormat, include_payload: bool) -> String {
        let buf = Buf::default();
        let cfg = LogConfig { format, include_payload, delivery: None };
        let report = LogAdapter::with_writer(&cfg, Arc::new(Mutex::new(buf.clone())))
            .deliver(&delivery(), std::time::Duration::ZERO)
            .await;
        assert_eq!(report.result, AttemptResult::Delivered);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[tokio::test]
    async fn pretty_prints_one_readable_line() {
        assert_eq!(
            print(LogFormat::Pretty, true).await,
            "[meshes] user.signup id=evt rule=r1 delivery=dlv attempt=2 \
             payload={\"email\":\"a@b.c\",\"note\":\"two\\nlines\"}\n"
        );
        assert_eq!(
            print(LogFormat::Pretty, false).await,
            "[meshes] user.signup id=evt rule=r1 delivery=dlv attempt=2\n"
        );
    }

    #[tokio::test]
    async fn json_prints_one_object_per_line() {
        let text = print(LogFormat::Json, true).await;
        assert_eq!(
            text,
            "{\"event\":\"user.signup\",\"event_id\":\"evt\",\"rule_id\":\"r1\",\
             \"delivery_id\":\"dlv\",\"attempt\":2,\"workspace\":\"ws\",\"resource\":\"global\",\
             \"resource_id\":null,\"payload\":{\"email\":\"a@b.c\",\"note\":\"two\\nlines\"}}\n"
        );
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "event": "user.signup", "event_id": "evt", "rule_id": "r1",
                "delivery_id": "dlv", "attempt": 2, "workspace": "ws",
                "resource": "global", "resource_id": null,
                "payload": {"email": "a@b.c", "note": "two\nlines"},
            })
        );
        let j: serde_json::Value =
            serde_json::from_str(&print(LogFormat::Json, false).await).unwrap();
        assert!(j.get("payload").is_none() && j["rule_id"] == "r1");
    }

    #[tokio::test]
    async fn a_failing_writer_still_delivers() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let cfg = LogConfig { format: LogFormat::Json, include_payload: true, delivery: None };
        let report = LogAdapter::with_writer(&cfg, Arc::new(Mutex::new(Broken)))
            .deliver(&delivery(), std::time::Duration::ZERO)
            .await;
        assert_eq!(report.result, AttemptResult::Delivered);
    }
}

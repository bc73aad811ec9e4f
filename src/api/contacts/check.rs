//! Small checks shared by the contact bodies and queries: strings, emails,
//! ids, page sizes, cursors and timestamps, each failing with a message
//! that shows what was found and says what was expected.

use crate::api::error::{ApiError, FieldError};
use serde_json::Value;

/// Most field errors listed in one answer; a body with thousands of unknown
/// keys gets a bounded answer.
const MAX_ERRORS: usize = 20;
/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL: usize = 254;

/// Field errors collected over a whole body.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records a problem with `param`.
    pub fn push(&mut self, param: &str, msg: String) {
        if self.0.len() < MAX_ERRORS {
            self.0.push(FieldError { param: param.to_string(), msg });
        } else if self.0.len() == MAX_ERRORS {
            let msg = format!("more than {MAX_ERRORS} problems; the rest are not listed");
            self.0.push(FieldError { param: "body".into(), msg });
        }
    }

    /// Whether `param` already has a problem.
    pub fn has(&self, param: &str) -> bool {
        self.0.iter().any(|e| e.param == param)
    }

    /// `value` when nothing was recorded.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}

/// The 400 for a list of field errors: message `"a: …; b: …"`.
pub fn bad_request(errs: Vec<FieldError>) -> ApiError {
    let message =
        errs.iter().map(|e| format!("{}: {}", e.param, e.msg)).collect::<Vec<_>>().join("; ");
    ApiError::BadRequest { message, data: errs }
}

pub use crate::api::ingest::kind;

/// The value as it is echoed in messages: its kind and JSON text, cut at 60 bytes.
pub fn found(v: &Value) -> String {
    let s = v.to_string();
    let shown = if s.len() <= 60 {
        s
    } else {
        let cut = (0..=57).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..cut])
    };
    match v {
        Value::Null => "null".into(),
        _ => format!("{} `{shown}`", kind(v)),
    }
}

/// A string of 1 to `max` characters, not blank, without control characters.
pub fn text(v: &Value, max: usize) -> Result<String, String> {
    let expected = format!(
        "expected a string of 1 to {max} characters, not blank, without control characters"
    );
    let Value::String(s) = v else { return Err(format!("{expected}; found {}", found(v))) };
    let n = s.chars().count();
    if crate::config::model::is_blank(s) {
        return Err(format!("{expected} (use null to clear a field); found {}", found(v)));
    }
    if n > max || s.chars().any(char::is_control) {
        return Err(format!("{expected}; found {} ({n} characters)", found(v)));
    }
    Ok(s.clone())
}

/// An email address: `local@domain`, both parts non-empty, no whitespace or
/// control characters, at most [`MAX_EMAIL`] characters. Deliberately
/// basic: providers validate further, this only keeps garbage out.
pub fn email(v: &Value) -> Result<String, String> {
    let expected = format!(
        "expected an email address such as `ada@example.com` (at most {MAX_EMAIL} characters, no spaces)"
    );
    let fail = || format!("{expected}; found {}", found(v));
    let Value::String(s) = v else { return Err(fail()) };
    let (local, domain) = s.rsplit_once('@').ok_or_else(fail)?;
    let bad = |c: char| c.is_whitespace() || c.is_control();
    if local.is_empty() || domain.is_empty() || s.chars().count() > MAX_EMAIL || s.chars().any(bad)
    {
        return Err(fail());
    }
    Ok(s.clone())
}

/// A contact id from the path.
pub fn contact_id(id: &str) -> Result<u128, ApiError> {
    uuid::Uuid::parse_str(id).map(|u| u.as_u128()).map_err(|_| {
        ApiError::field(
            "id",
            &format!("expected a contact id (a UUID), found {}", found(&Value::String(id.into()))),
        )
    })
}

fn bad_cursor(c: &str) -> ApiError {
    let shown = found(&Value::String(c.into()));
    ApiError::field(
        "cursor",
        &format!("expected the `next_cursor` of a previous page, found {shown}"),
    )
}

/// The activity cursor: an activity id.
pub fn activity_cursor(q: Option<&str>) -> Result<Option<u128>, ApiError> {
    match q {
        None | Some("") => Ok(None),
        Some(c) => uuid::Uuid::parse_str(c).map(|u| Some(u.as_u128())).map_err(|_| bad_cursor(c)),
    }
}

/// The suppression-list cursor: `<unsubscribed at, Unix ms>:<contact id>`.
pub fn suppressed_cursor(q: Option<&str>) -> Result<Option<(u64, u128)>, ApiError> {
    let Some(c) = q.filter(|c| !c.is_empty()) else { return Ok(None) };
    let (at, id) = c.split_once(':').ok_or_else(|| bad_cursor(c))?;
    let at = at.parse::<u64>().map_err(|_| bad_cursor(c))?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad_cursor(c))?;
    Ok(Some((at, id.as_u128())))
}

/// `as_of`: an RFC 3339 timestamp ([`crate::clock::parse_timestamp`]),
/// the present when absent. A future instant is the present: pages as of a
/// time still to come could gain entries while they are read.
pub fn as_of(q: Option<&str>, now: u64) -> Result<u64, ApiError> {
    let Some(s) = q else { return Ok(now) };
    crate::clock::parse_timestamp(s).map(|t| t.min(now)).map_err(|why| {
        let shown = found(&Value::String(s.into()));
        // A `+hh:mm` offset sent unencoded arrives as a space: `+` in a
        // query string means one.
        let plus = crate::clock::parse_timestamp(&s.replacen(' ', "+", 1)).is_ok();
        let hint = if plus { " (a `+` in a query string reads as a space: send it as `%2B`)" } else { "" };
        ApiError::field(
            "as_of",
            &format!(
                "expected an RFC 3339 timestamp such as `2026-01-31T09:30:00Z` or `2026-01-31T10:30:00+01:00`, found {shown}: {why}{hint}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_and_email_say_what_they_found() {
        assert_eq!(text(&json!("Ada"), 5).unwrap(), "Ada");
        assert!(text(&json!(42), 5).unwrap_err().ends_with("found a number `42`"));
        assert!(text(&json!(" "), 5).unwrap_err().contains("use null to clear"));
        assert!(text(&json!("abcdef"), 5).unwrap_err().contains("(6 characters)"));
        assert!(text(&json!("a\u{7}"), 5).is_err());
        assert_eq!(email(&json!("Ada@Example.com")).unwrap(), "Ada@Example.com");
        for bad in [json!("ada"), json!("@x"), json!("a@"), json!("a b@x"), json!(1)] {
            assert!(email(&bad).unwrap_err().starts_with("expected an email address"), "{bad}");
        }
        let long = format!("{}@x.io", "a".repeat(250));
        assert!(email(&json!(long)).unwrap_err().contains('…'));
    }

    #[test]
    fn errors_are_bounded() {
        let mut e = Errors::default();
        for i in 0..100 {
            e.push(&format!("k{i}"), "bad".into());
        }
        assert_eq!(e.0.len(), MAX_ERRORS + 1);
        assert_eq!(e.0[MAX_ERRORS].param, "body");
    }

    #[test]
    fn blank_is_whitespace_as_the_published_pattern_has_it() {
        // U+FEFF is whitespace to ECMA-262 `\s` (the document's pattern),
        // not to Rust's `trim`: a tag or name made of it is blank.
        for blank in ["", " ", "\u{feff}", " \u{feff}\u{3000}"] {
            assert!(text(&json!(blank), 100).unwrap_err().contains("not blank"), "{blank:?}");
        }
        assert_eq!(text(&json!("\u{feff}a"), 100).unwrap(), "\u{feff}a");
    }

    #[test]
    fn cursors_limits_and_timestamps() {
        let id = "0190c2b4-6c1e-7a2b-9c3d-4e5f60718293";
        let want = uuid::Uuid::parse_str(id).unwrap().as_u128();
        assert_eq!(suppressed_cursor(Some(&format!("12:{id}"))).unwrap(), Some((12, want)));
        for bad in ["12", "x:y", &format!("-1:{id}"), "12:nope"] {
            assert!(suppressed_cursor(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(activity_cursor(Some(id)).unwrap(), Some(want));
        assert!(activity_cursor(Some("12")).is_err());
        let limit = crate::api::page_limit;
        assert_eq!((limit(None).unwrap(), limit(Some("200")).unwrap()), (50, 200));
        assert!(limit(Some("0")).is_err() && limit(Some("201")).is_err());
        assert_eq!(as_of(None, 7).unwrap(), 7);
        assert_eq!(as_of(Some("1970-01-01T00:00:01.5Z"), 7000).unwrap(), 1500);
        assert_eq!(as_of(Some("2999-01-01T00:00:00Z"), 7000).unwrap(), 7000, "the future is now");
        for bad in ["9223372036854775807-01-01T00:00:00Z", "2026-01-01", "2026-13-01T00:00:00Z"] {
            assert!(as_of(Some(bad), 0).is_err(), "{bad}");
        }
        let msg = format!("{:?}", as_of(Some("2026-02-31T00:00:00Z"), 0).unwrap_err());
        assert!(msg.contains("as_of") && msg.contains("2026-02-31T00:00:00Z"), "{msg}");
        assert!(msg.contains("day 31 is not in 2026-02 (01 to 28)"), "{msg}");
        let msg = format!("{:?}", as_of(Some("2026-01-31T10:30:00 01:00"), 0).unwrap_err());
        assert!(msg.contains("send it as `%2B`"), "an unencoded `+`: {msg}");
        let msg = format!("{:?}", as_of(Some("2026-01-31 10:30:00Z"), 0).unwrap_err());
        assert!(!msg.contains("%2B"), "a space that was never a `+`: {msg}");
        assert!(contact_id("nope").is_err() && contact_id(id).is_ok());
    }
}

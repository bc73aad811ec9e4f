//! The credentials scrubbed from everything kept of a destination's answer
//! (excerpts, messages): a destination that echoes the request (an echo
//! service, a debug error page, a gateway) must not get our own credentials
//! stored and served back by the API. Provider adapters and the webhook
//! adapter share this one list type.

use super::adapter::{EXCERPT_LIMIT, excerpt, lossy};
use std::sync::Arc;

/// Shortest credential redacted (shorter ones would scrub ordinary words;
/// real credentials are far longer).
pub const MIN_SECRET: usize = 6;

/// What a credential is replaced with.
const REDACTED: &str = "[redacted]";

/// The shortest tail of a cut-off body that counts as the start of a
/// credential: shorter ones say nothing about it, and would scrub ordinary
/// final characters.
const MIN_PARTIAL: usize = 3;

/// A set of credentials, longest first so that one containing another is
/// replaced whole (replacing the shorter first would leave the rest).
#[derive(Clone, Default)]
pub struct Secrets(Arc<[String]>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// These secrets plus `more` (those shorter than [`MIN_SECRET`] are skipped).
    #[must_use]
    pub fn with<S: AsRef<str>>(&self, more: impl IntoIterator<Item = S>) -> Self {
        let mut all = self.0.to_vec();
        for s in more {
            let s = s.as_ref();
            if s.len() < MIN_SECRET {
                continue;
            }
            for form in spellings(s) {
                if !all.contains(&form) {
                    all.push(form);
                }
            }
        }
        if all.len() == self.0.len() {
            return self.clone();
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Secrets(all.into())
    }

    /// The length of the longest one (0 without any).
    pub fn longest(&self) -> usize {
        self.0.first().map_or(0, String::len)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.0.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// At most [`EXCERPT_LIMIT`] bytes of `body`, redacted before the cut so
    /// a credential straddling the limit loses its prefix too. `complete`:
    /// `body` is the whole answer; otherwise its end may split a credential
    /// (the read stopped at a size limit or the deadline), and a tail that
    /// starts one is redacted as well.
    pub fn excerpt(&self, body: &[u8], complete: bool) -> String {
        if self.is_empty() {
            return excerpt(body);
        }
        let enough = EXCERPT_LIMIT + self.longest();
        // Redaction shrinks the text, so the window grows until its redacted
        // text reaches past the cut by a whole credential (or is the body).
        let mut end = body.len().min(enough);
        let text = loop {
            let mut text = self.redact(&lossy(&body[..end]));
            if end < body.len() || !complete {
                self.redact_partial_tail(&mut text);
            }
            if end == body.len() || text.len() >= enough {
                break text;
            }
            end = body.len().min(end.saturating_mul(2));
        };
        cut(text)
    }

    /// Replaces a tail of `text` that is the start of a secret.
    fn redact_partial_tail(&self, text: &mut String) {
        for s in self.0.iter() {
            let longest = (s.len() - 1).min(text.len());
            let found = (MIN_PARTIAL..=longest)
                .rev()
                .find(|&k| s.is_char_boundary(k) && text.ends_with(&s[..k]));
            if let Some(k) = found {
                text.truncate(text.len() - k);
                text.push_str(REDACTED);
                return;
            }
        }
    }
}

/// `secret` as it may come back in an answer: raw, as we sent it in a form
/// body (`+` for a space) or a URL, and inside a JSON string (with `/` as
/// `\/` too, as PHP writes it, and `&`, `<`, `>` as `\u00XX`, as Go does). A
/// provider echoing our token request must not get a refresh token or client
/// secret with a `+`, `/`, `=`, `&` or `%` past the raw match.
fn spellings(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_string();
    let go = json.replace('&', "\\u0026").replace('<', "\\u003c").replace('>', "\\u003e");
    let forms = [
        percent_encoded(secret, true),
        percent_encoded(secret, false),
        json.replace('/', "\\/"),
        go,
        json,
    ];
    let mut out = vec![secret.to_string()];
    for form in forms {
        if !form.is_empty() && !out.contains(&form) {
            out.push(form);
        }
    }
    out
}

/// Percent-encoding of `text`: `form` as `application/x-www-form-urlencoded`
/// bodies are written (what reqwest sends: `*-._` kept, a space as `+`),
/// otherwise as a URL component (`-._~` kept, a space as `%20`).
fn percent_encoded(text: &str, form: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        let kept = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (form && b == b'*')
            || (!form && b == b'~');
        match b {
            _ if kept => out.push(char::from(b)),
            b' ' if form => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `%XX` escapes decoded as `application/x-www-form-urlencoded` does; a `%`
/// not followed by two hex digits stays as it is.
pub fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |at: usize| b.get(at).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `text` cut to at most [`EXCERPT_LIMIT`] bytes, on a character boundary.
fn cut(mut text: String) -> String {
    if text.len() > EXCERPT_LIMIT {
        let end = (0..=EXCERPT_LIMIT).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(end);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const TOKEN: &str = "tok_0123456789abcdef";

    fn secrets() -> Secrets {
        Secrets::default().with([TOKEN, "short", "other-secret"])
    }

    #[test]
    fn a_credential_straddling_the_cut_is_redacted_whole() {
        // The token starts 12 bytes before the limit: the old cut kept those 12.
        for before in [1, 12, TOKEN.len() - 1] {
            let mut body = "x".repeat(EXCERPT_LIMIT - before).into_bytes();
            body.extend_from_slice(TOKEN.as_bytes());
            body.extend_from_slice(b" and more");
            let text = secrets().excerpt(&body, true);
            assert_eq!(text.len(), EXCERPT_LIMIT);
            let rest = text.strip_prefix(&"x".repeat(EXCERPT_LIMIT - before)).unwrap();
            assert!("[redacted] and more".starts_with(rest), "{before}: {rest}");
        }
    }

    #[test]
    fn redaction_that_shrinks_the_text_still_reaches_every_credential() {
        // Each 20-byte token becomes 10 bytes: the window must grow past
        // EXCERPT_LIMIT + 20 raw bytes to fill the excerpt.
        let body = format!("{TOKEN} ").repeat(1_000);
        let text = secrets().excerpt(body.as_bytes(), true);
        assert!(text.len() <= EXCERPT_LIMIT && text.len() > EXCERPT_LIMIT - 11, "{}", text.len());
        assert!(!text.contains("tok_"), "...{}", tail(&text));
    }

    #[test]
    fn a_body_cut_off_inside_a_credential_keeps_none_of_it() {
        let body = format!("echo: {}", &TOKEN[..9]);
        assert_eq!(secrets().excerpt(body.as_bytes(), false), "echo: [redacted]");
        // A complete body ending the same way is left alone: it is not a cut.
        assert_eq!(secrets().excerpt(b"echo: tok", true), "echo: tok");
    }

    #[test]
    fn short_values_are_never_redacted_and_longer_ones_win() {
        assert_eq!(secrets().len(), 2);
        // A secret that starts another must not leave the other's rest behind.
        let nested = Secrets::default().with(["tok_0123", TOKEN]);
        assert_eq!(nested.redact(&format!("a {TOKEN} short")), "a [redacted] short");
        assert_eq!(Secrets::default().excerpt(b"plain", true), "plain");
    }

    #[test]
    fn the_cut_stays_on_a_character_boundary_after_redaction() {
        let mut body = TOKEN.to_string();
        body.push_str(&"é".repeat(EXCERPT_LIMIT));
        let text = secrets().excerpt(body.as_bytes(), true);
        assert!(text.starts_with("[redacted]é") && text.len() <= EXCERPT_LIMIT);
        assert!(text.len() > EXCERPT_LIMIT - 2);
    }

    #[test]
    fn encoded_and_escaped_forms_of_a_secret_are_redacted_too() {
        let secret = "rt+a/b=c&d%e f<g>h";
        let secrets = Secrets::default().with([secret]);
        // As a form body and a URL carry it, and as JSON strings escape it.
        let echoes = [
            "refresh_token=rt%2Ba%2Fb%3Dc%26d%25e+f%3Cg%3Eh&client_id=cid",
            "?token=rt%2Ba%2Fb%3Dc%26d%25e%20f%3Cg%3Eh",
            r#"{"echo":"rt+a\/b=c&d%e f<g>h"}"#,
            r#"{"echo":"rt+a/b=c\u0026d%e f\u003cg\u003eh"}"#,
        ];
        for echo in echoes {
            let text = secrets.redact(echo);
            assert!(text.contains(REDACTED), "{echo} -> {text}");
            for piece in ["rt+a", "rt%2B", "%3Cg", "d%e", "\\u003cg"] {
                assert!(!text.contains(piece), "{echo} -> {text}");
            }
        }
        // A plain secret adds no spellings: the list is as long as before.
        assert_eq!(Secrets::default().with(["plain-secret_0.9"]).len(), 1);
    }

    fn tail(text: &str) -> &str {
        let start = (0..=text.len().saturating_sub(40)).rev().find(|&i| text.is_char_boundary(i));
        &text[start.unwrap_or(0)..]
    }
}

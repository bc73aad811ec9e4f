//! Reading fields of a request body without building a `serde_json::Value`
//! tree. Ingest checks each field of an event from its raw JSON text and
//! stores the payload as sent: the tree (a map, a string and a hash per key)
//! was the largest allocation cost of an ingest request.
//!
//! Skipping a value unread (`IgnoredAny`, `RawValue`) checks its syntax but
//! neither decodes its `\u` escapes nor its numbers, so a lone surrogate or
//! `1e400` passes it. Stored as sent, such a payload would never parse
//! again (rules, mappings and the API would all see `null`): the payload
//! check below reads every string and number, which is what rejects them.

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// `a string`, `a number`, … of a raw JSON value, for messages. The text is
/// already known to be valid JSON, so its first byte says what it is.
pub fn kind(raw: &RawValue) -> &'static str {
    kind_of(raw.get())
}

/// [`kind`] of the JSON text of one value (leading whitespace allowed).
pub fn kind_of(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Whether the value is a JSON number.
pub fn is_number(raw: &RawValue) -> bool {
    raw.get().as_bytes().first().is_some_and(|b| *b == b'-' || b.is_ascii_digit())
}

/// Whether the value is JSON `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// The string a raw JSON string holds (borrowed unless it has escapes), or
/// `None` if the value is not a string. `Err` says why its escapes do not
/// decode (a lone surrogate), in words for a field message.
pub fn string(raw: &RawValue) -> Option<Result<Cow<'_, str>, String>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Some(de.deserialize_str(Text).map_err(|e| problem(&e)))
}

/// Deserializes a present field as `Some(raw)`, JSON `null` included (serde
/// would turn `null` into `None`, and "null" and "missing" get different
/// messages).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Why a payload would not read back as JSON, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Where, from the payload down (`.items[0].name`; empty for itself).
    pub path: String,
    /// What, in words for a field message.
    pub problem: String,
}

/// Whether a raw JSON object has at least one field whose value is not
/// `null`, `""`, `[]` or `{}`, once every string and number in it, at any
/// depth, is known to decode (so that the object reads back as a `Value`).
/// Anything that is not an object answers `Ok(false)`.
pub fn check_object(object: &RawValue) -> Result<bool, Invalid> {
    if !object.get().starts_with('{') {
        return Ok(false);
    }
    let (mut trail, mut suspect) = (Vec::new(), false);
    let mut de = serde_json::Deserializer::from_str(object.get());
    let check = Check { trail: &mut trail, suspect: &mut suspect, top: true };
    let filled = de.deserialize_map(check).map_err(|e| invalid(&trail, &e))?;
    match suspect.then(|| super::numbers::find(object.get())).flatten() {
        Some(too_long) => Err(too_long),
        None => Ok(filled),
    }
}

/// serde_json's message for a value that will not decode, in the words of
/// a field message (`payload.x: contains …`).
pub fn problem(e: &serde_json::Error) -> String {
    let what = super::body::message(e);
    match what.as_str() {
        "lone leading surrogate in hex escape" | "unexpected end of hex escape" => {
            r"contains an invalid \u escape (a lone surrogate)".to_string()
        }
        "number out of range" => "is a number out of range (beyond a 64-bit float)".to_string(),
        _ => what,
    }
}

/// One step of the way down to a problem, recorded as the error unwinds
/// (so a payload that decodes never builds a path).
enum Step {
    Key(String),
    Index(usize),
    /// The problem is in a field name of the object the steps lead to.
    Name,
}

fn invalid(trail: &[Step], e: &serde_json::Error) -> Invalid {
    let mut path = String::new();
    let mut in_name = false;
    for step in trail.iter().rev() {
        match step {
            Step::Key(k) => push_key(&mut path, k),
            Step::Index(i) => path.push_str(&format!("[{i}]")),
            Step::Name => in_name = true,
        }
    }
    let problem = problem(e);
    let problem = if in_name { format!("has a field name that {problem}") } else { problem };
    Invalid { path, problem }
}

/// Appends one object key to a path: `.key`, or `["key"]` when it would
/// not read unambiguously after a dot.
pub(super) fn push_key(path: &mut String, key: &str) {
    if is_plain(key) {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str(&format!("[{}]", serde_json::Value::from(key)));
    }
}

/// A key that reads unambiguously after a dot.
fn is_plain(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A string, decoded: borrowed from the text unless it has escapes.
struct Text;

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_string()))
    }
}

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

/// One value read through, every string and number decoded: whether it is
/// non-empty, or for the payload itself (`top`) whether a field is.
struct Check<'t> {
    trail: &'t mut Vec<Step>,
    /// A float was read that may have been an integer beyond 64 bits.
    suspect: &'t mut bool,
    top: bool,
}

impl Check<'_> {
    fn inner(&mut self) -> Check<'_> {
        Check { trail: self.trail, suspect: self.suspect, top: false }
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_f64<E>(self, v: f64) -> Result<bool, E> {
        *self.suspect |= super::numbers::suspect(v);
        Ok(true)
    }
    fn visit_str<E>(self, s: &str) -> Result<bool, E> {
        Ok(!s.is_empty())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        let mut n = 0;
        while seq
            .next_element_seed(self.inner())
            .map_err(|e| self.step(Step::Index(n), e))?
            .is_some()
        {
            n += 1;
        }
        Ok(n > 0)
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        let (mut any, mut n) = (false, 0);
        while let Some(key) = map.next_key_seed(Text).map_err(|e| self.step(Step::Name, e))? {
            let filled = map.next_value_seed(self.inner());
            any |= filled.map_err(|e| self.step(Step::Key(key.into_owned()), e))?;
            n += 1;
        }
        Ok(if self.top { any } else { n > 0 })
    }
}

impl Check<'_> {
    /// Notes where the error `e`, passing through, came from.
    fn step<E>(&mut self, step: Step, e: E) -> E {
        self.trail.push(step);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn kinds_follow_the_first_byte() {
        let cases = [
            ("{}", "an object"),
            ("[1]", "an array"),
            ("\"x\"", "a string"),
            ("true", "a boolean"),
            ("false", "a boolean"),
            ("null", "null"),
            ("-1.5e3", "a number"),
            ("7", "a number"),
        ];
        for (text, want) in cases {
            assert_eq!(kind(raw(text)), want, "{text}");
        }
    }

    #[test]
    fn strings_are_unescaped_and_borrowed_when_they_can_be() {
        assert!(matches!(string(raw(r#""plain""#)), Some(Ok(Cow::Borrowed("plain")))));
        let escaped = string(raw(r#""caf\u00e9\n""#)).unwrap().unwrap();
        assert_eq!(escaped, "café\n");
        assert_eq!(string(raw("12")), None);
        assert_eq!(string(raw("null")), None);
        let lone = r"contains an invalid \u escape (a lone surrogate)";
        for text in [r#""user.\ud800signup""#, r#""\udc00""#, r#""\ud800\u0041""#] {
            assert_eq!(string(raw(text)), Some(Err(lone.to_string())), "{text}");
        }
    }

    #[test]
    fn filled_fields_match_the_non_empty_rule() {
        let empty = [r#"{}"#, r#"{"a": null}"#, r#"{"a": "", "b": [], "c": {}}"#];
        for text in empty {
            assert!(!check_object(raw(text)).unwrap(), "{text}");
        }
        let filled = [
            r#"{"a": 0}"#,
            r#"{"a": false}"#,
            r#"{"a": null, "b": "x"}"#,
            r#"{"a": [null]}"#,
            r#"{"a": {"b": null}}"#,
            r#"{"a": "\u00e9"}"#,
            r#"{"a": [], "b": {"deep": [1, {"x": 2}]}, "c": ""}"#,
        ];
        for text in filled {
            assert!(check_object(raw(text)).unwrap(), "{text}");
        }
        assert!(!check_object(raw("[1]")).unwrap());
    }

    fn refused(text: &str) -> (String, String) {
        let e = check_object(raw(text)).unwrap_err();
        (e.path, e.problem)
    }

    #[test]
    fn every_string_and_number_is_decoded_at_any_depth() {
        let lone = r"contains an invalid \u escape (a lone surrogate)";
        let range = "is a number out of range (beyond a 64-bit float)";
        let cases = [
            (r#"{"email": "a@b.c", "x": ["\udc00"]}"#, ".x[0]", lone.to_string()),
            (r#"{"a": "x\ud800y"}"#, ".a", lone.to_string()),
            (r#"{"a": 1, "x": 1e400}"#, ".x", range.to_string()),
            (r#"{"a": {"b c": [0, {"d": -1e999}]}}"#, r#".a["b c"][1].d"#, range.to_string()),
            (r#"{"a": 1, "b": {"\ud800": 1}}"#, ".b", format!("has a field name that {lone}")),
            (r#"{"\ud83d": 1}"#, "", format!("has a field name that {lone}")),
        ];
        // Read back, but with other digits than sent: refused too.
        let long = r#"{"a": [1e20, {"i": 123456789012345678901234567890}]}"#;
        assert_eq!(
            refused(long),
            (".a[1].i".to_string(), super::super::numbers::PROBLEM.to_string())
        );
        for (text, path, problem) in cases {
            assert_eq!(refused(text), (path.to_string(), problem), "{text}");
            assert!(serde_json::from_str::<serde_json::Value>(text).is_err(), "{text}");
        }
        // Whatever passes reads back as a `Value`: pairs, escapes, big numbers.
        for text in [
            r#"{"a": "\ud83d\ude00", "b": ["\u00e9\n"], "\u0041": 1}"#,
            r#"{"n": 1e308, "m": -1e-400, "i": 18446744073709551615, "f": 1e20}"#,
        ] {
            assert!(check_object(raw(text)).unwrap(), "{text}");
            assert!(serde_json::from_str::<serde_json::Value>(text).is_ok(), "{text}");
        }
    }
}

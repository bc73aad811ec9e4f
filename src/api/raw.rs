//! Reading fields of a request body without building a `serde_json::Value`
//! tree. Ingest checks each field of an event from its raw JSON text and
//! stores the payload as sent: the tree (a map, a string and a hash per key)
//! was the largest allocation cost of an ingest request.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
/// `None` if the value is not a string.
pub fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(text) {
        Ok(s) => Some(Cow::Borrowed(s)),
        // Escapes (`\n`, `\u00e9`) need an owned copy.
        Err(_) => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// Deserializes a present field as `Some(raw)`, JSON `null` included (serde
/// would turn `null` into `None`, and "null" and "missing" get different
/// messages).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Whether a raw JSON object has at least one field whose value is not
/// `null`, `""`, `[]` or `{}`. Anything that is not an object answers false.
pub fn has_filled_field(object: &RawValue) -> bool {
    let mut de = serde_json::Deserializer::from_str(object.get());
    de.deserialize_map(AnyFilled).unwrap_or(false)
}

struct AnyFilled;

impl<'de> Visitor<'de> for AnyFilled {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut any = false;
        while let Some((IgnoredAny, Filled(filled))) = map.next_entry()? {
            any |= filled;
        }
        Ok(any)
    }
}

/// Whether one value is non-empty, read without keeping it.
struct Filled(bool);

impl<'de> Deserialize<'de> for Filled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FilledVisitor).map(Filled)
    }
}

struct FilledVisitor;

impl<'de> Visitor<'de> for FilledVisitor {
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
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_str<E>(self, s: &str) -> Result<bool, E> {
        Ok(!s.is_empty())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let first = seq.next_element::<IgnoredAny>()?.is_some();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let first = map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some();
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(first)
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
        assert!(matches!(string(raw(r#""plain""#)), Some(Cow::Borrowed("plain"))));
        assert_eq!(string(raw(r#""caf\u00e9\n""#)).as_deref(), Some("café\n"));
        assert_eq!(string(raw("12")), None);
        assert_eq!(string(raw("null")), None);
    }

    #[test]
    fn filled_fields_match_the_non_empty_rule() {
        let empty = [r#"{}"#, r#"{"a": null}"#, r#"{"a": "", "b": [], "c": {}}"#];
        for text in empty {
            assert!(!has_filled_field(raw(text)), "{text}");
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
            assert!(has_filled_field(raw(text)), "{text}");
        }
        assert!(!has_filled_field(raw("[1]")));
    }
}

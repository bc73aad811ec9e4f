//! Integers too long for 64 bits. serde_json reads `123456789012345678901`
//! as the float `1.2345678901234568e20`, so such a number would be stored,
//! delivered and signed with other digits than the client sent (a 128-bit
//! id in a payload, a custom field). They are refused, naming their path,
//! as `resource_id` is: sent as strings, their digits are kept.
//!
//! The value tells a float from an integer only by the text it came from,
//! and the checks that decode payloads see only the value. So they flag
//! any whole float beyond 64 bits ([`suspect`], rare: `1e20` is one), and
//! only then is the text scanned once for an integer literal ([`find`]).

use super::raw::Invalid;
use serde_json::Value;

/// What is refused, in the words of a field message.
pub const PROBLEM: &str = "is an integer beyond 64 bits: its digits would not be kept (it would be read as a float); send it as a string";

/// Whether a decoded float may have been written as an integer that did
/// not fit 64 bits (serde_json reads those as floats).
pub fn suspect(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() >= 9_223_372_036_854_775_808.0
}

/// Whether any number in `v` is [`suspect`].
pub fn value_suspect(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| n.is_f64() && suspect(f)),
        Value::Array(items) => items.iter().any(value_suspect),
        Value::Object(map) => map.values().any(value_suspect),
        _ => false,
    }
}

/// Where one container is in the walk: an object's current key, or an
/// array's current index.
enum Level {
    Object(Option<String>),
    Array(usize),
}

/// The first integer literal in `text` (valid JSON) that fits neither an
/// `i64` nor a `u64`, with its path from the top (`.a[1]["b c"]`). One
/// pass over the bytes, without building the values.
pub fn find(text: &str) -> Option<Invalid> {
    let bytes = text.as_bytes();
    let (mut stack, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i);
                if let Some(Level::Object(key @ None)) = stack.last_mut() {
                    *key = Some(serde_json::from_str(&text[i..end]).unwrap_or_default());
                }
                i = end;
                continue;
            }
            b'{' => stack.push(Level::Object(None)),
            b'[' => stack.push(Level::Array(0)),
            b'}' | b']' => drop(stack.pop()),
            b',' => match stack.last_mut() {
                Some(Level::Array(n)) => *n += 1,
                Some(Level::Object(key)) => *key = None,
                None => {}
            },
            b'-' | b'0'..=b'9' => {
                let end = number_end(bytes, i);
                if too_long(&text[i..end]) {
                    return Some(Invalid { path: path(&stack), problem: PROBLEM.to_string() });
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index just past the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let len = bytes[start..]
        .iter()
        .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        .count();
    start + len
}

/// An integer literal (no fraction, no exponent) beyond both 64-bit types.
fn too_long(number: &str) -> bool {
    !number.contains(['.', 'e', 'E'])
        && number.parse::<i64>().is_err()
        && number.parse::<u64>().is_err()
}

fn path(stack: &[Level]) -> String {
    let mut out = String::new();
    for level in stack {
        match level {
            Level::Array(n) => out.push_str(&format!("[{n}]")),
            Level::Object(Some(k)) => super::raw::push_key(&mut out, k),
            Level::Object(None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Option<String> {
        find(text).map(|i| i.path)
    }

    #[test]
    fn integers_beyond_64_bits_are_found_by_path() {
        let cases = [
            (r#"{"big": 123456789012345678901234567890}"#, ".big"),
            (r#"{"a": [1, 2, {"b c": -9223372036854775809}]}"#, r#".a[2]["b c"]"#),
            (r#"{"u": 18446744073709551616}"#, ".u"),
            (r#"{"s": "18446744073709551616", "n": [0, 99999999999999999999]}"#, ".n[1]"),
            (r#"{"k\"}": {"x": 1, "y": 100000000000000000000}}"#, r#"["k\"}"].y"#),
        ];
        for (text, path) in cases {
            assert_eq!(found(text).as_deref(), Some(path), "{text}");
            let v: Value = serde_json::from_str(text).unwrap();
            assert!(value_suspect(&v), "{text}");
        }
    }

    #[test]
    fn numbers_that_keep_their_digits_or_are_floats_pass() {
        for text in [
            r#"{"max": 18446744073709551615, "min": -9223372036854775808}"#,
            r#"{"f": 1e20, "g": 123456789012345678901.0, "h": -1.5E300, "z": -0}"#,
            r#"{"s": "123456789012345678901234567890", "\"123456789012345678901\"": 1}"#,
        ] {
            assert_eq!(found(text), None, "{text}");
        }
        assert!(suspect(1e20) && !suspect(1.5) && !suspect(9.2e18) && !suspect(f64::NAN));
    }
}

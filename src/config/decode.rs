//! The last step of a check: the document, schema- and semantically valid,
//! becomes a [`ConfigFile`].

use super::diagnostic::{Code, Issue, Path};
use super::model::ConfigFile;
use serde_json::{Number, Value};
use serde_path_to_error::Segment;

/// Integers no `f64` rounding has touched (2^53).
const EXACT: f64 = 9_007_199_254_740_992.0;

/// Rewrites whole floats (`8.0`, `1e3`) as integers. JSON Schema counts them
/// as integers, so the schema accepts them where an integer is due; serde
/// would then refuse them for a `u32` field.
pub fn integral_floats(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(int) = n.as_f64().and_then(whole) {
                *n = int;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats),
        Value::Object(o) => o.values_mut().for_each(integral_floats),
        _ => {}
    }
}

fn whole(f: f64) -> Option<Number> {
    if f.fract() != 0.0 || f.abs() > EXACT {
        return None;
    }
    // Exact: a whole number within ±2^53 converts without loss.
    #[allow(clippy::cast_possible_truncation)]
    let i = f as i64;
    Some(Number::from(i))
}

/// Decodes a checked document. What the schema let through but the types
/// refuse is a bug of ours, reported where it sits rather than at 1:1.
pub fn decode(value: Value) -> Result<ConfigFile, Issue> {
    serde_path_to_error::deserialize::<_, ConfigFile>(value).map_err(|e| {
        let path = e.path().iter().fold(Path::root(), |p, seg| match seg {
            Segment::Map { key } => p.key(key.clone()),
            Segment::Seq { index } => p.index(*index),
            Segment::Enum { .. } | Segment::Unknown => p,
        });
        let message = format!(
            "this value passed the schema but does not decode ({}); please report this",
            e.inner()
        );
        Issue::error(Code::InvalidValue, path, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_floats_become_integers_and_others_stay() {
        let mut v = json!({ "a": 8.0, "b": [1e3, 0.5], "c": -2.0, "d": 1e300, "e": 7 });
        integral_floats(&mut v);
        assert_eq!(v, json!({ "a": 8, "b": [1000, 0.5], "c": -2, "d": 1e300, "e": 7 }));
        assert!(v["a"].is_u64());
    }

    #[test]
    fn a_decode_error_is_located_at_its_field() {
        let doc = json!({ "version": 1, "delivery": { "concurrency": 99_999_999_999_u64 } });
        let issue = decode(doc).unwrap_err();
        assert_eq!(issue.path.to_string(), "delivery.concurrency");
        assert!(issue.message.contains("99999999999"), "{}", issue.message);
    }
}

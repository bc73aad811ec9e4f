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
    /// Whole milliseconds, saturating (config values stay far below the cap).
    pub fn millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The longest duration a config may hold: ten years, above any retry
/// delay, sequence wait or retention window anyone needs, and far enough
/// from `u64` milliseconds that adding it to a timestamp cannot overflow.
pub const MAX_MS: u64 = 3_650 * 86_400_000;

/// The JSON Schema `format` of every config duration: the schema check holds
/// it to [`MAX_MS`] (a pattern cannot bound a number).
pub const FORMAT: &str = "meshes-duration";

/// Why a duration string was rejected; the message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<number><unit>` pieces.
    #[error(
        "invalid duration `{0}`: expected a number followed by a unit (ms, s, m, h, d), e.g. `30s`, `5m`, `1h30m`"
    )]
    Malformed(String),
    /// Well formed but longer than [`MAX_MS`].
    #[error("invalid duration `{0}`: too large, expected at most 3650d (ten years)")]
    TooLarge(String),
}

/// Parses `1h30m`-style strings, at most [`MAX_MS`].
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(s.to_string());
    let too_large = || DurationError::TooLarge(s.to_string());
    if s.is_empty() {
        return Err(malformed());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        // Only digits, so the one way to fail is more than u64 holds.
        let n: Option<u64> = rest[..digits].parse().ok();
        rest = &rest[digits..];
        let (unit, factor) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .ok_or_else(malformed)?;
        rest = &rest[unit.len()..];
        total = n
            .and_then(|n| n.checked_mul(*factor))
            .and_then(|ms| total.checked_add(ms))
            .unwrap_or(u64::MAX);
    }
    if total > MAX_MS {
        return Err(too_large());
    }
    Ok(Duration::from_millis(total))
}

/// The `format` of a delivery timeout: at least [`MIN_TIMEOUT_MS`].
pub const TIMEOUT_FORMAT: &str = "meshes-timeout";
/// The shortest attempt timeout: below it every attempt fails before a
/// destination can answer.
pub const MIN_TIMEOUT_MS: u64 = 100;
/// The `format` of a rate-limit window: longer than zero.
pub const WINDOW_FORMAT: &str = "meshes-window";

/// The shortest value a duration `format` allows, if it sets one.
pub fn minimum_ms(format: &str) -> Option<u64> {
    match format {
        TIMEOUT_FORMAT => Some(MIN_TIMEOUT_MS),
        WINDOW_FORMAT => Some(1),
        _ => None,
    }
}

/// What a minimum `format` check accepts: values that do not parse pass,
/// the pattern and [`FORMAT`] report those.
pub fn at_least(s: &str, min_ms: u64) -> bool {
    parse(s).map_or(true, |d| d.millis() >= min_ms)
}

/// What a [`FORMAT`] check accepts: a malformed string passes here because
/// the schema's pattern reports it, once.
pub fn within_max(s: &str) -> bool {
    !matches!(parse(s), Err(DurationError::TooLarge(_)))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.millis();
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
            "format": FORMAT,
            "description": "A duration: a number and a unit (ms, s, m, h, d), combinable: `250ms`, `30s`, `5m`, `1h30m`, `3d`; at most `3650d` (ten years).",
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
    }

    #[test]
    fn rejects_more_than_ten_years_naming_the_maximum() {
        assert_eq!(parse("3650d"), Ok(Duration::from_millis(MAX_MS)));
        for big in ["3651d", "3650d1ms", "213503982334d", "99999999999999999999d"] {
            assert_eq!(parse(big), Err(DurationError::TooLarge(big.into())), "{big}");
            assert!(!within_max(big));
        }
        let message = parse("99999999999999999999d").unwrap_err().to_string();
        assert!(message.contains("at most 3650d"), "{message}");
        assert!(within_max("5 minutes"), "the pattern reports malformed values");
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(parse("90m").map(|d| d.to_string()), Ok("1h30m".into()));
        assert_eq!(parse("1500ms").map(|d| d.to_string()), Ok("1s500ms".into()));
    }
}

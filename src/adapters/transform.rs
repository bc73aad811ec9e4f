//! The mapping transforms on one JSON value. A failure says what was
//! expected; the caller adds the field and the value.

use crate::config::mapping::Transform;
use serde_json::{Number, Value};

/// Runs one transform; `Err` is what the value should have been.
pub fn apply(t: &Transform, v: Value) -> Result<Value, &'static str> {
    match t {
        Transform::ToString => text(&v).map(Value::String).ok_or("a text, number or boolean"),
        Transform::ToNumber => to_number(&v).map(Value::Number).ok_or("a number such as 42 or 3.5"),
        Transform::ToBoolean => to_boolean(&v)
            .map(Value::Bool)
            .ok_or("a boolean (true/false, yes/no, y/n, on/off, 1/0)"),
        Transform::ToDate => stamp(&v)
            .map(|s| Value::String(s.date()))
            .ok_or("a date (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, RFC 3339 or Unix time)"),
        Transform::ToDatetime => stamp(&v)
            .map(|s| Value::String(s.datetime()))
            .ok_or("a timestamp (RFC 3339, YYYY-MM-DD or Unix time)"),
        Transform::Trim => string_op(&v, |s| s.trim().to_string()),
        Transform::Lower => string_op(&v, str::to_lowercase),
        Transform::Upper => string_op(&v, str::to_uppercase),
        Transform::Substring(args) => {
            let (start, len) = substring_args(args).ok_or("valid `substring` arguments")?;
            string_op(&v, |s| {
                let chars = s.chars().skip(start);
                match len {
                    Some(n) => chars.take(n).collect(),
                    None => chars.collect(),
                }
            })
        }
    }
}

fn substring_args(args: &[i64]) -> Option<(usize, Option<usize>)> {
    let start = usize::try_from(*args.first()?).ok()?;
    match args.get(1) {
        None if args.len() == 1 => Some((start, None)),
        Some(n) if args.len() == 2 => Some((start, Some(usize::try_from(*n).ok()?))),
        _ => None,
    }
}

/// Scalars as text; objects, arrays and null have none.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_op(v: &Value, f: impl Fn(&str) -> String) -> Result<Value, &'static str> {
    text(v).map(|s| Value::String(f(&s))).ok_or("text")
}

fn to_number(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                return Some(i.into());
            }
            // `parse::<f64>` also takes "inf" and "NaN", which JSON cannot hold.
            s.parse::<f64>().ok().and_then(Number::from_f64)
        }
        _ => None,
    }
}

fn to_boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Some(true),
            "false" | "no" | "n" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A parsed date or timestamp, kept as written (no time-zone conversion).
#[derive(Debug, PartialEq)]
struct Stamp {
    ymd: (i64, u32, u32),
    /// `HH:MM:SS[.frac]` and the offset (`Z` when none was written).
    time: Option<(String, String)>,
}

impl Stamp {
    fn date(&self) -> String {
        let (y, m, d) = self.ymd;
        format!("{y:04}-{m:02}-{d:02}")
    }

    fn datetime(&self) -> String {
        match &self.time {
            Some((t, off)) => format!("{}T{t}{off}", self.date()),
            None => format!("{}T00:00:00Z", self.date()),
        }
    }
}

fn stamp(v: &Value) -> Option<Stamp> {
    match v {
        Value::Number(n) => unix(n.as_i64()?),
        Value::String(s) => parse_stamp(s.trim()),
        _ => None,
    }
}

fn parse_stamp(s: &str) -> Option<Stamp> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.len() {
            8 => date_parts(&s[..4], &s[4..6], &s[6..]).map(|ymd| Stamp { ymd, time: None }),
            9..=13 => unix(s.parse().ok()?),
            _ => None,
        };
    }
    let (date, rest) = (s.get(..10)?, s.get(10..)?);
    if !date.is_ascii() {
        return None;
    }
    let sep = date.as_bytes()[4];
    if !matches!(sep, b'-' | b'/') || date.as_bytes()[7] != sep {
        return None;
    }
    let ymd = date_parts(&date[..4], &date[5..7], &date[8..])?;
    if rest.is_empty() {
        return Some(Stamp { ymd, time: None });
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    Some(Stamp { ymd, time: Some(time_parts(rest)?) })
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok()).flatten()
}

fn date_parts(y: &str, m: &str, d: &str) -> Option<(i64, u32, u32)> {
    let (y, m, d) = (num::<i64>(y)?, num::<u32>(m)?, num::<u32>(d)?);
    ((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d)).then_some((y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `HH:MM[:SS[.frac]]` then `Z`, `±HH:MM`, `±HHMM` or nothing (taken as UTC).
fn time_parts(s: &str) -> Option<(String, String)> {
    let split = s.find(['Z', 'z', '+', '-']).unwrap_or(s.len());
    let (clock, offset) = s.split_at(split);
    let mut parts = clock.splitn(3, ':');
    let (h, m) = (num::<u32>(parts.next()?)?, num::<u32>(parts.next()?)?);
    let sec = parts.next().unwrap_or("00");
    let (whole, frac) = sec.split_once('.').map_or((sec, None), |(w, f)| (w, Some(f)));
    let s = num::<u32>(whole)?;
    if h > 23
        || m > 59
        || s > 60
        || whole.len() != 2
        || frac.is_some_and(|f| num::<u64>(f).is_none())
    {
        return None;
    }
    let frac = frac.map_or(String::new(), |f| format!(".{f}"));
    let offset = match offset {
        "" | "Z" | "z" => "Z".to_string(),
        o => {
            let (sign, hm) = o.split_at(1);
            let hm = hm.replace(':', "");
            let (oh, om) = (num::<u32>(hm.get(..2)?)?, num::<u32>(hm.get(2..)?)?);
            if hm.len() != 4 || oh > 23 || om > 59 {
                return None;
            }
            format!("{sign}{oh:02}:{om:02}")
        }
    };
    Some((format!("{h:02}:{m:02}:{s:02}{frac}"), offset))
}

/// Unix time in seconds, or milliseconds when it is too big for seconds
/// (anything after the year 5138), as UTC.
fn unix(t: i64) -> Option<Stamp> {
    let secs = if t.abs() >= 100_000_000_000 { t.div_euclid(1000) } else { t };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let ymd = crate::clock::civil_from_days(days);
    let time = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    Some(Stamp { ymd, time: Some((time, "Z".to_string())) })
}

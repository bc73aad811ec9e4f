//! RFC 3339 timestamps: written with milliseconds in UTC, read strictly.
//!
//! Timestamps come in from query parameters (`as_of`) and go back out in
//! every answer. A lenient reader answers for an instant the caller did not
//! write (`2026-02-31` as March 3rd), so anything that is not a real date
//! and time is refused with the reason, instead of normalised.

/// Why [`parse_timestamp`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)` with ASCII
    /// digits in each fixed-width part.
    #[error("not in the form `YYYY-MM-DDTHH:MM:SS[.1 to 9 digits]` then `Z` or `+hh:mm`")]
    Shape,
    /// A month outside 01 to 12.
    #[error("month {0:02} is not 01 to 12")]
    Month(u32),
    /// A day the month does not have.
    #[error("day {day:02} is not in {year:04}-{month:02} (01 to {last})")]
    Day { year: u32, month: u32, day: u32, last: u32 },
    /// An hour outside 00 to 23.
    #[error("hour {0:02} is not 00 to 23")]
    Hour(u32),
    /// A minute outside 00 to 59.
    #[error("minute {0:02} is not 00 to 59")]
    Minute(u32),
    /// A second outside 00 to 59, or 60 anywhere but at 23:59 UTC.
    #[error("second {0:02} is not 00 to 59 (60, a leap second, only at 23:59 UTC)")]
    Second(u32),
    /// An offset hour outside 00 to 23 or minute outside 00 to 59.
    #[error("offset is not within -23:59 to +23:59")]
    Offset,
    /// An instant before the Unix epoch.
    #[error("before 1970-01-01T00:00:00Z")]
    BeforeEpoch,
}

/// `2026-11-23T13:45:00.123Z` for a Unix-millisecond timestamp.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let Ok(year @ 0..=9999) = u64::try_from(y) else {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            ms % 1000
        );
    };
    // Written digit by digit: every API answer carries a few of these, and
    // `format!` was a visible part of an ingest request's cost.
    let mut out = [0u8; 24];
    let fields: [(u64, usize, u8); 7] = [
        (year, 4, b'-'),
        (m as u64, 2, b'-'),
        (d as u64, 2, b'T'),
        (rem / 3600, 2, b':'),
        (rem % 3600 / 60, 2, b':'),
        (rem % 60, 2, b'.'),
        (ms % 1000, 3, b'Z'),
    ];
    let mut at = 0;
    for (value, width, sep) in fields {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out[at + width] = sep;
        at += width + 1;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Parses what [`rfc3339`] writes (up to year 9999), or RFC 3339 as
/// others write it: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9
/// digits (truncated to milliseconds), then `Z` or an offset `+hh:mm` /
/// `-hh:mm`; `T` and `Z` may be lower case, as RFC 3339 allows.
///
/// Strict: each part is ASCII digits of its exact width, the day must exist
/// in its month (leap years counted). A leap second (`23:59:60Z`, or its
/// local time under an offset) is read as `23:59:59.999Z`: Unix time has no
/// leap seconds, and the last millisecond before midnight keeps the order
/// of timestamps. Which days really had one is not checked.
pub fn parse_timestamp(s: &str) -> Result<u64, TimestampError> {
    let b = s.as_bytes();
    let (Some(head), Some(rest)) = (b.get(..19), b.get(19..)) else {
        return Err(TimestampError::Shape);
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| head[at] != c) || !matches!(head[10], b'T' | b't') {
        return Err(TimestampError::Shape);
    }
    let year = digits(&head[0..4])?;
    let (month, day) = (digits(&head[5..7])?, digits(&head[8..10])?);
    let (hour, minute, second) =
        (digits(&head[11..13])?, digits(&head[14..16])?, digits(&head[17..19])?);
    let (millis, zone) = fraction(rest)?;
    let offset = offset_minutes(zone)?;
    check_date(year, month, day)?;
    let second_ms = second_ms(hour, minute, second, millis, offset)?;
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let local = days * 86_400_000 + i64::from(hour * 3600 + minute * 60) * 1000 + second_ms;
    u64::try_from(local - offset * 60_000).map_err(|_| TimestampError::BeforeEpoch)
}

/// [`parse_timestamp`], without the reason.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    parse_timestamp(s).ok()
}

/// A fixed-width number: ASCII digits only (`str::parse` would take a sign).
fn digits(b: &[u8]) -> Result<u32, TimestampError> {
    b.iter().try_fold(0, |n, &c| match c {
        b'0'..=b'9' => Ok(n * 10 + u32::from(c - b'0')),
        _ => Err(TimestampError::Shape),
    })
}

/// The milliseconds of an optional `.fraction` (1 to 9 digits, truncated)
/// and what follows it.
fn fraction(b: &[u8]) -> Result<(i64, &[u8]), TimestampError> {
    let Some(after) = b.strip_prefix(b".") else { return Ok((0, b)) };
    let n = after.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=9).contains(&n) {
        return Err(TimestampError::Shape);
    }
    let mut ms = [b'0'; 3];
    let kept = n.min(3);
    ms[..kept].copy_from_slice(&after[..kept]);
    Ok((i64::from(digits(&ms)?), &after[n..]))
}

/// `Z`, or `+hh:mm` / `-hh:mm` as signed minutes east of UTC.
fn offset_minutes(b: &[u8]) -> Result<i64, TimestampError> {
    let (sign, hh, mm) = match b {
        [b'Z' | b'z'] => return Ok(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => (sign, [*h1, *h2], [*m1, *m2]),
        _ => return Err(TimestampError::Shape),
    };
    let (hh, mm) = (digits(&hh)?, digits(&mm)?);
    if hh > 23 || mm > 59 {
        return Err(TimestampError::Offset);
    }
    let minutes = i64::from(hh * 60 + mm);
    Ok(if *sign == b'-' { -minutes } else { minutes })
}

fn check_date(year: u32, month: u32, day: u32) -> Result<(), TimestampError> {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let last = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(TimestampError::Month(month)),
    };
    if (1..=last).contains(&day) {
        Ok(())
    } else {
        Err(TimestampError::Day { year, month, day, last })
    }
}

/// The milliseconds into the minute, once hour, minute and second are in
/// range; a leap second (60 at 23:59 UTC) becomes the minute's last
/// millisecond.
fn second_ms(
    hour: u32,
    minute: u32,
    second: u32,
    millis: i64,
    offset: i64,
) -> Result<i64, TimestampError> {
    if hour > 23 {
        return Err(TimestampError::Hour(hour));
    }
    if minute > 59 {
        return Err(TimestampError::Minute(minute));
    }
    match second {
        0..=59 => Ok(i64::from(second) * 1000 + millis),
        60 if (i64::from(hour * 60 + minute) - offset).rem_euclid(1440) == 1439 => Ok(59_999),
        _ => Err(TimestampError::Second(second)),
    }
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Last millisecond of 9999-12-31, the latest instant with a four-digit year.
    const LAST: u64 = 253_402_300_799_999;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_435_200_123), "2026-11-23T12:00:00.123Z");
        assert_eq!(rfc3339(LAST), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(LAST + 1), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_every_form_rfc_3339_allows() {
        let noon = 1_795_441_500_000;
        for (text, want) in [
            ("2026-11-23T13:45:00Z", noon),
            ("2026-11-23t13:45:00z", noon),
            ("2026-11-23T13:45:00.5Z", noon + 500),
            ("2026-11-23T13:45:00.123456789Z", noon + 123),
            ("2026-11-23T14:45:00+01:00", noon),
            ("2026-11-23T13:45:00-00:00", noon),
            ("2026-11-23T00:15:00-13:30", noon),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T01:00:00+01:00", 0),
            ("9999-12-31T23:59:59.999Z", LAST),
        ] {
            assert_eq!(parse_timestamp(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn a_leap_second_is_the_last_millisecond_of_its_minute() {
        let midnight = 1_798_761_600_000; // 2027-01-01T00:00:00Z
        assert_eq!(parse_timestamp("2026-12-31T23:59:60Z"), Ok(midnight - 1));
        assert_eq!(parse_timestamp("2026-12-31T23:59:60.5Z"), Ok(midnight - 1));
        assert_eq!(parse_timestamp("2027-01-01T00:59:60+01:00"), Ok(midnight - 1));
        assert_eq!(parse_timestamp("2026-12-31T18:59:60-05:00"), Ok(midnight - 1));
    }

    #[test]
    fn refuses_what_is_not_a_real_instant() {
        use TimestampError as E;
        let day = |year, month, day, last| E::Day { year, month, day, last };
        for (bad, why) in [
            ("", E::Shape),
            ("2026-11-23", E::Shape),
            ("2026-11-23T13:45Z", E::Shape),
            ("2026-11-23 13:45:00Z", E::Shape),
            ("2026-11-23T13:45:00", E::Shape),
            ("2026-11-23T13:45:00.Z", E::Shape),
            ("2026-11-23T13:45:00.123abcZ", E::Shape),
            ("2026-11-23T13:45:00.1234567890Z", E::Shape),
            ("2026-11-23T13:45:00,5Z", E::Shape),
            ("2026-+1-01T+1:00:00Z", E::Shape),
            ("+026-01-01T00:00:00Z", E::Shape),
            ("２０２６-01-01T00:00:00Z", E::Shape),
            ("x-1-1T0:0:0Z", E::Shape),
            ("99999999999-01-01T00:00:00Z", E::Shape),
            ("2026-1-01T00:00:00Z", E::Shape),
            ("2026-01-01T00:00:00+0100", E::Shape),
            ("2026-01-01T00:00:00+01", E::Shape),
            ("2026-01-01T00:00:00Zjunk", E::Shape),
            ("2026-01-01T00:00:00+01:00Z", E::Shape),
            ("2026-01-01T00:00:00+-1:00", E::Shape),
            ("2026-13-01T00:00:00Z", E::Month(13)),
            ("2026-00-01T00:00:00Z", E::Month(0)),
            ("2026-02-31T00:00:00Z", day(2026, 2, 31, 28)),
            ("2026-02-29T00:00:00Z", day(2026, 2, 29, 28)),
            ("1900-02-29T00:00:00Z", day(1900, 2, 29, 28)),
            ("2026-04-31T00:00:00Z", day(2026, 4, 31, 30)),
            ("2026-01-00T00:00:00Z", day(2026, 1, 0, 31)),
            ("2026-11-23T24:00:00Z", E::Hour(24)),
            ("2026-11-23T25:00:00Z", E::Hour(25)),
            ("2026-11-23T13:60:00Z", E::Minute(60)),
            ("2026-11-23T13:45:61Z", E::Second(61)),
            ("2026-11-23T13:45:60Z", E::Second(60)),
            ("2026-12-31T23:59:60+01:00", E::Second(60)),
            ("2026-11-23T13:45:00+24:00", E::Offset),
            ("2026-11-23T13:45:00+01:60", E::Offset),
            ("1969-12-31T23:59:59.999Z", E::BeforeEpoch),
            ("1970-01-01T00:00:00+00:01", E::BeforeEpoch),
        ] {
            assert_eq!(parse_timestamp(bad), Err(why), "{bad}");
        }
    }

    /// `ms` written in local time at `offset` minutes east of UTC.
    fn with_offset(ms: u64, offset: i64) -> String {
        let local = rfc3339(ms.checked_add_signed(offset * 60_000).unwrap());
        let (sign, m) = if offset < 0 { ('-', -offset) } else { ('+', offset) };
        format!("{}{sign}{:02}:{:02}", &local[..23], m / 60, m % 60)
    }

    proptest! {
        #[test]
        fn every_written_timestamp_reads_back_as_itself(ms in 0..=LAST) {
            prop_assert_eq!(parse_timestamp(&rfc3339(ms)), Ok(ms));
        }

        #[test]
        fn an_offset_names_the_same_instant(ms in 86_400_000..=LAST - 86_400_000, offset in -1439i64..=1439) {
            prop_assert_eq!(parse_timestamp(&with_offset(ms, offset)), Ok(ms));
        }
    }
}

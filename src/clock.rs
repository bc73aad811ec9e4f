//! Wall-clock milliseconds that follow tokio's clock.
//!
//! Due times are stored as Unix milliseconds, but tests drive retries with
//! tokio's paused clock. Reading "now" as a wall-clock origin plus tokio's
//! elapsed time keeps both views consistent: in production the two advance
//! together, in a paused test time moves only when the test advances it.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Origin {
    wall_ms: u64,
    instant: tokio::time::Instant,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// Milliseconds since the Unix epoch, advancing with tokio's clock.
pub fn now_ms() -> u64 {
    let origin = ORIGIN.get_or_init(|| Origin {
        wall_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        instant: tokio::time::Instant::now(),
    });
    origin.wall_ms + origin.instant.elapsed().as_millis() as u64
}

/// `now_ms` plus `delay`, saturating: config durations are capped far below
/// overflow, but a due time must never wrap to the past (and fire at once)
/// or panic, whatever the delay.
pub fn after(now_ms: u64, delay: std::time::Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
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

/// Parses what [`rfc3339`] writes (`YYYY-MM-DDTHH:MM:SS[.mmm]Z`, UTC only).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    let ms: u64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Checked: a year like 99999999999 must be refused, not overflow.
    if !(0..=999_999).contains(&y) {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, day)).ok()?;
    let secs = days.checked_mul(86_400)?.checked_add(h * 3600 + min * 60 + sec)?;
    secs.checked_mul(1000)?.checked_add(ms)
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
    use super::*;

    #[test]
    fn parse_inverts_format() {
        for ms in [0, 1_700_000_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
        assert_eq!(parse_rfc3339("2026-11-23T13:45:00Z"), Some(1_795_441_500_000));
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-11-23T25:00:00Z",
            "x-1-1T0:0:0Z",
            "99999999999-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn after_saturates_instead_of_wrapping() {
        use std::time::Duration;
        assert_eq!(after(1_000, Duration::from_millis(250)), 1_250);
        assert_eq!(after(1_000, Duration::from_millis(u64::MAX)), u64::MAX);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(u64::MAX)), u64::MAX);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_435_200_123), "2026-11-23T12:00:00.123Z");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
    }
}

//! Wall-clock milliseconds that follow tokio's clock.
//!
//! Due times are stored as Unix milliseconds, but tests drive retries with
//! tokio's paused clock. Reading "now" as a wall-clock origin plus tokio's
//! elapsed time keeps both views consistent: in production the two advance
//! together, in a paused test time moves only when the test advances it.
//!
//! An origin read once would keep any later step of the wall clock out for
//! good: NTP correcting a clock that booted wrong, a VM restored from a
//! snapshot, a suspend (Linux's monotonic clock does not count it). Every
//! machine-key JWT would then be "issued in the future", every webhook
//! timestamp rejected by its receiver. So each reading also compares the
//! wall clock with the origin plus a `std` monotonic elapsed time (which a
//! paused tokio clock does not touch): a gap of more than [`STEP_MS`] is a
//! step, and the offset added to every reading from then on absorbs it.
//! Smaller gaps are left alone, so readings stay smooth while NTP slews.
//!
//! What a step does not change: due times already stored are absolute, so
//! a forward step makes pending retries fire early and a backward one makes
//! them late, by the size of the step (and `now_ms` goes backwards with it).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod timestamp;

pub use timestamp::{TimestampError, civil_from_days, parse_rfc3339, parse_timestamp, rfc3339};

/// A gap between the wall clock and the monotonic one larger than this is a
/// step. Large enough that scheduling noise and NTP slewing never reach it,
/// small against the 5 s a JWT `iat` may be ahead.
const STEP_MS: i64 = 1_000;
/// Longest a reading of the wall clock may take (measured on the monotonic
/// clock around it) and still be used to detect a step.
const BRACKET_MS: u64 = 50;
/// At most one warning about a step per this much (monotonic) time: a clock
/// that keeps jumping would otherwise fill the log.
const WARN_EVERY_MS: u64 = 60_000;

/// The readings taken at first use, and what has been learnt since.
struct Clock {
    wall_ms: u64,
    std_instant: std::time::Instant,
    tokio_instant: tokio::time::Instant,
    /// Milliseconds the wall clock has stepped since the origin, in total.
    offset: AtomicI64,
    /// Monotonic elapsed ms before which a step is logged at debug only.
    quiet_until: AtomicU64,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

/// Milliseconds since the Unix epoch, advancing with tokio's clock and
/// following steps of the wall clock.
pub fn now_ms() -> u64 {
    let clock = CLOCK.get_or_init(|| Clock::new(wall_ms()));
    // The offset is loaded before the wall clock is read, so a reading
    // taken before a step is never compared with the offset after it
    // (which would look like a step back and undo the correction).
    let offset = clock.offset.load(Ordering::Acquire);
    let std_elapsed = millis(clock.std_instant.elapsed());
    let wall = wall_ms();
    let tokio_elapsed = millis(clock.tokio_instant.elapsed());
    // A thread descheduled between the two readings above would see a
    // "step" of its own delay: only a reading bracketed tightly by the
    // monotonic clock may detect one.
    if millis(clock.std_instant.elapsed()).saturating_sub(std_elapsed) > BRACKET_MS {
        return compose(clock.wall_ms, offset, tokio_elapsed);
    }
    clock.now(offset, wall, std_elapsed, tokio_elapsed)
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// A duration in whole milliseconds, saturating (a `u64` of them is 584 million years).
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Clock {
    fn new(wall_ms: u64) -> Clock {
        Clock {
            wall_ms,
            std_instant: std::time::Instant::now(),
            tokio_instant: tokio::time::Instant::now(),
            offset: AtomicI64::new(0),
            quiet_until: AtomicU64::new(0),
        }
    }

    /// `now_ms` from one set of readings and the offset loaded before them.
    fn now(&self, offset: i64, wall: u64, std_elapsed: u64, tokio_elapsed: u64) -> u64 {
        let Some(step) = step(self.wall_ms, offset, wall, std_elapsed) else {
            return compose(self.wall_ms, offset, tokio_elapsed);
        };
        let to = offset.saturating_add(step);
        match self.offset.compare_exchange(offset, to, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.report(step, std_elapsed);
                compose(self.wall_ms, to, tokio_elapsed)
            }
            // Another reading saw the same step first and has absorbed it.
            Err(current) => compose(self.wall_ms, current, tokio_elapsed),
        }
    }

    fn report(&self, step: i64, std_elapsed: u64) {
        let quiet_until = self.quiet_until.load(Ordering::Relaxed);
        let loud = std_elapsed >= quiet_until
            && self
                .quiet_until
                .compare_exchange(
                    quiet_until,
                    std_elapsed.saturating_add(WARN_EVERY_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        let seconds = step.unsigned_abs() as f64 / 1000.0;
        let (direction, effect) = if step > 0 { ("forward", "early") } else { ("back", "late") };
        if loud {
            tracing::warn!(
                step_ms = step,
                "the wall clock stepped {direction} by {seconds:.1} s: timestamps follow it from \
                 now on; retries scheduled before the step run {seconds:.1} s {effect}"
            );
        } else {
            tracing::debug!(step_ms = step, "the wall clock stepped {direction} by {seconds:.1} s");
        }
    }
}

/// How far the wall clock has stepped beyond `offset`, if it has: `wall`
/// against the origin's wall time plus the monotonic `std_elapsed`.
fn step(origin_wall: u64, offset: i64, wall: u64, std_elapsed: u64) -> Option<i64> {
    let expected = i128::from(origin_wall) + i128::from(offset) + i128::from(std_elapsed);
    let gap = i128::from(wall) - expected;
    let gap = gap.clamp(i64::MIN.into(), i64::MAX.into());
    (gap.abs() > i128::from(STEP_MS)).then(|| i64::try_from(gap).unwrap_or_default())
}

/// The origin's wall time, moved by the steps seen and tokio's elapsed time.
fn compose(origin_wall: u64, offset: i64, tokio_elapsed: u64) -> u64 {
    let ms = i128::from(origin_wall) + i128::from(offset) + i128::from(tokio_elapsed);
    u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
}

/// `now_ms` plus `delay`, saturating: config durations are capped far below
/// overflow, but a due time must never wrap to the past (and fire at once)
/// or panic, whatever the delay.
pub fn after(now_ms: u64, delay: std::time::Duration) -> u64 {
    now_ms.saturating_add(millis(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: u64 = 1_795_435_200_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn a_gap_over_a_second_is_a_step_of_its_exact_size() {
        assert_eq!(step(ORIGIN, 0, ORIGIN + 5_000, 5_000), None, "in step");
        assert_eq!(step(ORIGIN, 0, ORIGIN + 5_999, 5_000), None, "within a second: slewing");
        assert_eq!(step(ORIGIN, 0, ORIGIN + 4_001, 5_000), None);
        assert_eq!(step(ORIGIN, 0, ORIGIN + 5_000 + HOUR, 5_000), Some(HOUR as i64));
        assert_eq!(step(ORIGIN, 0, ORIGIN + 5_000 - HOUR, 5_000), Some(-(HOUR as i64)));
        // Once absorbed into the offset, the same step is not seen again.
        assert_eq!(step(ORIGIN, HOUR as i64, ORIGIN + 9_000 + HOUR, 9_000), None);
        // A wall clock before 1970 (or absurd values) must not panic.
        assert_eq!(step(ORIGIN, 0, 0, 0), Some(-(ORIGIN as i64)));
        assert_eq!(step(0, i64::MIN, u64::MAX, 0), Some(i64::MAX));
    }

    #[test]
    fn readings_follow_tokio_elapsed_not_the_wall_clock() {
        // A paused tokio clock advanced by an hour while a second passed:
        // the wall clock has not stepped, so now is the origin plus an hour.
        let clock = Clock::new(ORIGIN);
        assert_eq!(clock.now(0, ORIGIN + 1_000, 1_000, HOUR), ORIGIN + HOUR);
        assert_eq!(clock.offset.load(Ordering::Relaxed), 0);
        assert_eq!(compose(ORIGIN, -(ORIGIN as i64) - 5, 1), 0, "saturates at the epoch");
        assert_eq!(compose(u64::MAX, i64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn a_step_moves_every_later_reading_once() {
        let clock = Clock::new(ORIGIN);
        // NTP steps the clock an hour forward ten seconds after the origin.
        let now = clock.now(0, ORIGIN + 10_000 + HOUR, 10_000, 10_000);
        assert_eq!(now, ORIGIN + 10_000 + HOUR);
        let offset = clock.offset.load(Ordering::Acquire);
        assert_eq!(offset, HOUR as i64);
        assert_eq!(clock.quiet_until.load(Ordering::Relaxed), 10_000 + WARN_EVERY_MS);
        // Later readings keep the offset and see no new step.
        assert_eq!(clock.now(offset, ORIGIN + 20_000 + HOUR, 20_000, 20_000), now + 10_000);
        assert_eq!(clock.offset.load(Ordering::Acquire), offset);
        // A reading that loaded the offset before it was moved, but read the
        // wall clock after the step, takes the moved offset as it is.
        assert_eq!(clock.now(0, ORIGIN + 20_000 + HOUR, 20_000, 20_000), now + 10_000);
        assert_eq!(clock.offset.load(Ordering::Acquire), offset);
        // Back by two hours: the offset is now an hour behind the origin.
        let back = clock.now(offset, ORIGIN + 30_000 - HOUR, 30_000, 30_000);
        assert_eq!(back, ORIGIN + 30_000 - HOUR);
        assert_eq!(clock.offset.load(Ordering::Acquire), -(HOUR as i64));
        // That second step, within a minute of the first, was not warned about.
        assert_eq!(clock.quiet_until.load(Ordering::Relaxed), 10_000 + WARN_EVERY_MS);
    }

    #[test]
    fn warnings_are_at_most_one_a_minute() {
        let clock = Clock::new(ORIGIN);
        clock.report(HOUR as i64, 1_000);
        assert_eq!(clock.quiet_until.load(Ordering::Relaxed), 61_000);
        clock.report(HOUR as i64, 60_999);
        assert_eq!(clock.quiet_until.load(Ordering::Relaxed), 61_000, "quiet");
        clock.report(-(HOUR as i64), 61_000);
        assert_eq!(clock.quiet_until.load(Ordering::Relaxed), 121_000, "warned again");
    }

    #[test]
    fn after_saturates_instead_of_wrapping() {
        use std::time::Duration;
        assert_eq!(after(1_000, Duration::from_millis(250)), 1_250);
        assert_eq!(after(1_000, Duration::from_millis(u64::MAX)), u64::MAX);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(u64::MAX)), u64::MAX);
    }
}

//! File descriptors. Every inbound connection holds one, and so does every
//! outbound delivery connection, the store and the config watcher. With
//! inbound connections allowed up to the process's limit (systemd's soft
//! default is 1,024), idle clients could take them all: deliveries already
//! acknowledged then failed to connect (EMFILE). So the soft limit is
//! raised to the hard one at start, and the connection cap stays under the
//! limit by a reserve the rest of the gateway keeps.

use std::time::Duration;
use tokio::time::Instant;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the soft limit
/// before and after, or an error saying why it could not be raised.
#[cfg(unix)]
pub fn raise_limit() -> Result<(Option<u64>, Option<u64>), std::io::Error> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    // Unlimited (`None`) is not a value the kernel takes for this one.
    let Some(hard) = limit.maximum else { return Ok((before, before)) };
    if before.is_some_and(|soft| soft >= hard) {
        return Ok((before, before));
    }
    setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit { current: Some(hard), maximum: Some(hard) },
    )?;
    Ok((before, soft_limit()))
}

/// Not raised where there is no `RLIMIT_NOFILE`.
#[cfg(not(unix))]
pub fn raise_limit() -> Result<(Option<u64>, Option<u64>), std::io::Error> {
    Ok((None, None))
}

/// The soft `RLIMIT_NOFILE` now; `None` when unlimited or unknown.
pub fn soft_limit() -> Option<u64> {
    #[cfg(unix)]
    return rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    #[cfg(not(unix))]
    return None;
}

/// The descriptors kept for everything but inbound connections: a quarter
/// of the limit, at least 256, but never more than half (a tiny limit still
/// serves some connections).
pub fn reserve(limit: u64) -> u64 {
    (limit / 4).max(256).min(limit / 2)
}

/// The connection cap applied: the configured one, but no more than the
/// descriptors `limit` leaves after the [`reserve`]; at least 1.
pub fn connection_cap(configured: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else { return configured.max(1) };
    let room = usize::try_from(limit - reserve(limit)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

/// Logs failed `accept`s at most once per [`AcceptLog::EVERY`], with how
/// many there were: out of descriptors, each retry fails again, and a line
/// per failure would flood the log.
#[derive(Debug, Default)]
pub struct AcceptLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl AcceptLog {
    /// Least time between two lines.
    pub const EVERY: Duration = Duration::from_secs(1);

    /// Counts a failure at `now`; `Some(failures)` when it is time to log,
    /// the count covering every failure since the last line, this one too.
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self.last.is_some_and(|last| now.duration_since(last) < Self::EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        let cases = [
            // (configured, soft limit, applied)
            (10_000, None, 10_000),
            (10_000, Some(1_024), 768),
            (10_000, Some(200), 100),
            (10_000, Some(65_536), 10_000),
            (50_000, Some(65_536), 49_152),
            (100, Some(1_024), 100),
            (10_000, Some(1), 1),
            (0, None, 1),
        ];
        for (configured, limit, applied) in cases {
            assert_eq!(connection_cap(configured, limit), applied, "{configured} under {limit:?}");
        }
        assert_eq!((reserve(1_024), reserve(200), reserve(65_536)), (256, 100, 16_384));
    }

    #[test]
    fn accept_failures_are_logged_once_per_second_with_their_count() {
        let t0 = Instant::now();
        let mut log = AcceptLog::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(log.failed(at(0)), Some(1));
        let quiet: Vec<Option<u64>> = (1..10).map(|i| log.failed(at(i * 100))).collect();
        assert_eq!(quiet, vec![None; 9]);
        assert_eq!(log.failed(at(1_000)), Some(10), "the nine unlogged and this one");
        assert_eq!(log.failed(at(5_000)), Some(1));
    }
}

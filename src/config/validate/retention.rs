//! A retention window so short that finished events are gone before anyone
//! can read them. Valid (a load test may want it), so a warning.

use super::super::diagnostic::{Code, Issue, Path};
use super::super::duration::Duration;

/// Below this, the warning: a finished event is gone within seconds,
/// sooner than a person, or often a script polling its status, looks.
/// Not higher: the quick soak (`meshes bench soak --quick`) runs with `10s`
/// on purpose, to prune within a one-minute run, and its config must stay
/// warning-free.
const SHORTEST: Duration = Duration::from_millis(10_000);

/// Warns about a `delivery.retention` under [`SHORTEST`].
pub(super) fn check(retention: Option<Duration>, out: &mut Vec<Issue>) {
    let Some(retention) = retention.filter(|r| *r < SHORTEST) else { return };
    let message = format!(
        "retention `{retention}` deletes each event, with its payload and attempts, once its deliveries have finished and it is `{retention}` old (pruning looks every second), before a person, or often a script polling its status, can look at it; expected at least `10s`, and hours or days to inspect events afterwards (with several workspaces, the longest window applies to all)"
    );
    out.push(Issue::warning(
        Code::ShortRetention,
        Path::root().key("delivery").key("retention"),
        message,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_ten_seconds_warns_and_ten_or_unset_does_not() {
        let warned = |r: Option<Duration>| {
            let mut out = Vec::new();
            check(r, &mut out);
            out.iter().map(|i| i.code).collect::<Vec<_>>()
        };
        assert_eq!(warned(Some(Duration::from_millis(0))), [Code::ShortRetention]);
        assert_eq!(warned(Some(Duration::from_millis(9_999))), [Code::ShortRetention]);
        assert!(warned(Some(SHORTEST)).is_empty());
        assert!(warned(None).is_empty(), "the default is 30 days");
    }
}

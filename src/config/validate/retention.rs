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

/// With several workspaces, warns each one whose window is shorter than
/// the longest: one gateway prunes every event at the longest window (the
/// store has no per-workspace index to prune by), so its events stay longer
/// than its file says. `windows[i]` is file `names[i]`'s (`None`: the default).
pub(in crate::config) fn across(
    names: &[&str],
    windows: &[Option<Duration>],
    issues: &mut [Vec<Issue>],
) {
    let default = crate::config::model::DeliverySettings::default().retention;
    let of = |w: &Option<Duration>| w.unwrap_or(default);
    let Some((longest, at)) = windows.iter().enumerate().map(|(i, w)| (of(w), i)).max() else {
        return;
    };
    for (i, w) in windows.iter().enumerate() {
        if of(w) < longest {
            let message = format!(
                "retention `{}` is shorter than the `{longest}` of the workspace in {}: a gateway serving both keeps every workspace's finished events for the longest window (events have no per-workspace index to prune by)",
                of(w),
                names[at]
            );
            let path = Path::root().key("delivery").key("retention");
            issues[i].push(Issue::warning(Code::ShortRetention, path, message));
        }
    }
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

    #[test]
    fn a_shorter_window_beside_a_longer_one_is_warned_that_the_longest_applies() {
        let mut issues = vec![Vec::new(), Vec::new(), Vec::new()];
        let hour = Some(Duration::from_millis(3_600_000));
        across(&["a.yaml", "b.yaml", "c.yaml"], &[hour, None, hour], &mut issues);
        let warned: Vec<usize> = issues.iter().map(Vec::len).collect();
        assert_eq!(warned, [1, 0, 1], "b.yaml has the default 30 days, the longest");
        assert!(issues[0][0].message.contains("b.yaml"), "{}", issues[0][0].message);
        let mut one = vec![Vec::new()];
        across(&["a.yaml"], &[hour], &mut one);
        assert!(one[0].is_empty(), "a single workspace keeps its own window");
    }
}

//! What becomes of a queued delivery under the config in force. A rule edit
//! applies to its pending deliveries, its connection included: a delivery
//! of a rule that now targets another connection moves to that
//! connection's queue, and is canceled only when the rule, or its
//! workspace, is gone or disabled. Automation and sequence steps are found
//! by their fingerprint (see [`crate::automations::targets`]), which hashes
//! the connection: a step that now delivers elsewhere is another step.
//! A cancellation waits until the config has been in force for
//! [`CANCEL_GRACE`]; a move need not (nothing is lost, and the next config
//! moves it back if need be), so an attempt moves its delivery at once.

use crate::automations::targets::Gone;
use crate::gateway::runtime::{Runtime, WorkspaceRt};
use crate::store::{AttemptDone, DueKey, Next, Route};
use std::time::Duration;

/// How long a config is in force before its cancellations take effect. A
/// config file written in two steps further apart than the watcher's
/// debounce (a slow copy, a network filesystem, a tool that truncates then
/// writes) can be cut on a line boundary and still be valid: applied at
/// once, it lacks the rules that were cut off, and canceling their pending
/// deliveries would lose them for good when the rest of the file lands a
/// moment later. Canceling is never urgent (nothing is sent meanwhile), so
/// it waits; a config replaced within its grace cancels nothing. The
/// startup config has a grace too: a file half written when the process
/// starts is the same hazard. A constant, not a setting: it would be read
/// from the very file that may be cut, and 10 s covers a slow write while
/// leaving a removed rule's deliveries pending only briefly.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// How much of `rt`'s grace is left: zero once its cancellations may take
/// effect.
pub fn grace_left(rt: &Runtime) -> Duration {
    CANCEL_GRACE.saturating_sub(rt.applied.elapsed())
}

/// What to do with a due entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It is queued where its rule delivers.
    Keep,
    /// Its rule delivers through another connection now.
    Move(Route),
    /// It can no longer be delivered, for this reason.
    Cancel(String),
}

/// The fate of `key` under `rt`.
pub fn fate(rt: &Runtime, key: &DueKey) -> Fate {
    let Some((ws_id, conn)) = key.conn_key.split_once('/') else { return Fate::Keep };
    let Some(ws) = rt.workspace(ws_id) else {
        return Fate::Cancel(format!("workspace `{ws_id}` was removed from the config"));
    };
    if key.rule.starts_with('@') {
        return step_fate(ws, &key.rule, conn);
    }
    match ws.target(&key.rule) {
        None => Fate::Cancel(format!("rule `{}` was removed from the config", key.rule)),
        Some(t) if !t.enabled => {
            Fate::Cancel(format!("rule `{}` was disabled in the config", key.rule))
        }
        Some(t) => match ws.connections.get(t.connection) {
            None => Fate::Cancel(connection_removed(t.connection)),
            Some(_) if t.connection == conn => Fate::Keep,
            Some(c) => Fate::Move(Route {
                connection: t.connection.to_string(),
                conn_key: c.conn_key.clone(),
            }),
        },
    }
}

/// A delivery the config in force would cancel, while that config is in
/// its grace: neither sent nor canceled, it comes due again when the grace
/// ends and is decided then, under the config in force then. No attempt is
/// recorded and nothing counts against its retry budget.
pub(super) fn postponed(key: &DueKey, left: Duration) -> AttemptDone {
    let now = crate::clock::now_ms();
    let at = after_grace(now, left);
    AttemptDone { key: key.clone(), attempt: None, next: Next::Postponed { at }, at: now }
}

/// When something put off at `now` (Unix ms) for a grace with `left` to
/// run is decided again: just past it, as a millisecond early it would
/// only be put off again.
pub fn after_grace(now: u64, left: Duration) -> u64 {
    crate::clock::after(now, left + Duration::from_millis(1))
}

fn step_fate(ws: &WorkspaceRt, rule: &str, conn: &str) -> Fate {
    let what = "automation or sequence step";
    if let Err(gone) = ws.automations.resolve(rule) {
        return Fate::Cancel(format!("{what} `{rule}` {gone}"));
    }
    match ws.target(rule) {
        None => Fate::Cancel(format!("{what} `{rule}` was removed from the config")),
        Some(t) if !t.enabled => {
            Fate::Cancel(format!("{what} `{rule}` was disabled in the config"))
        }
        // Only ids from before fingerprints can get here (positional lookup).
        Some(t) if t.connection != conn => {
            Fate::Cancel(format!("{what} `{rule}` {}", Gone::Changed))
        }
        Some(_) if !ws.connections.contains_key(conn) => Fate::Cancel(connection_removed(conn)),
        Some(_) => Fate::Keep,
    }
}

fn connection_removed(conn: &str) -> String {
    format!("connection `{conn}` was removed from the config")
}

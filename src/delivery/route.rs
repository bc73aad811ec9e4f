//! What becomes of a queued delivery under the config in force. A rule edit
//! applies to its pending deliveries, its connection included: a delivery
//! of a rule that now targets another connection moves to that
//! connection's queue, and is canceled only when the rule, or its
//! workspace, is gone or disabled. Automation and sequence steps are found
//! by their fingerprint (see [`crate::automations::targets`]), which hashes
//! the connection: a step that now delivers elsewhere is another step.

use crate::automations::targets::Gone;
use crate::gateway::runtime::{Runtime, WorkspaceRt};
use crate::store::{DueKey, Route};

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

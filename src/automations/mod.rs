//! Contact automations and sequences: the runtime behind `automations:` and
//! `sequences:` in `meshes.yaml`.
//!
//! - [`compiled`]: a workspace's automations indexed by trigger, conditions compiled once.
//! - [`contact`]: upsert merges, tags and fields, each change described as `changes`.
//! - [`context`]: the CEL variables (`contact`, `changes`, `event`, `trigger`).
//! - [`engine`]: a run: triggers → conditions → actions, with depth and total-run limits for loops.
//! - [`actions`]: what each action does (tags, fields, enrolments, deliveries, events).
//! - [`sequences`]: advancing an enrolment step by step, durably.
//! - [`service`]: the operations the contacts API calls.
//! - [`stale`]: why a queued automation or sequence delivery is no longer sent.
//! - [`targets`]: delivery ids of steps and actions, and what they name after a reload.
//! - [`worker`]: the background tasks (due sequence steps, events for `event` automations).
//!
//! Every run happens inside one writer transaction, so a contact change and
//! everything it sets off are committed together (one fsync, shared with
//! whatever else the writer batches).

pub mod actions;
pub mod compiled;
pub mod contact;
pub mod context;
pub mod engine;
pub mod sequences;
pub mod service;
pub mod stale;
pub mod targets;
pub mod worker;

pub use compiled::AutomationIndex;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_clock;
#[cfg(test)]
mod tests_fields;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_sequences;
#[cfg(test)]
mod tests_stamps;

//! Running automations: a firing (a contact change, a tag, a tracked or
//! ingested event) starts every automation whose trigger matches; each
//! condition is evaluated, actions run in order, and actions that change
//! the contact fire their own triggers — up to [`MAX_DEPTH`] levels deep
//! and [`MAX_RUNS`] runs in all.
//!
//! Everything happens inside one writer transaction ([`Tables`]): the
//! contact change, the activity log, the enrolments and the deliveries
//! commit together or not at all, so an acknowledged change is never
//! half-applied and a crash never skips or repeats an action.

use super::compiled::{AutomationRt, Firing, kind_name};
use super::contact::{self, Changes};
use super::context::{Facts, evaluate};
use crate::config::automation::TriggerKind;
use crate::gateway::runtime::WorkspaceRt;
use crate::store::{
    ActionOutcome, ActivityRecord, ContactRecord, StoreError, Tables, TriggerFact, event_key,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// How many levels of automations triggering automations run before the
/// chain is cut (and the cut recorded): loops the validator cannot see
/// statically (conditions, emitted events) still end.
pub const MAX_DEPTH: u32 = 8;

/// Most automation runs one write sets off. The depth limit alone lets k
/// automations that each change the contact again fan out to k^8 runs, all
/// in one writer transaction that ingest waits behind; this caps the total.
pub const MAX_RUNS: usize = 1_000;

/// An event as automations see it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFact {
    /// Event type (ingested) or `event_name` (tracked).
    pub name: String,
    /// Payload (ingested) or `properties` (tracked).
    pub properties: Value,
    /// The stored event's id, for ingested events.
    pub id: Option<String>,
}

/// One trigger occurrence waiting to be handled.
#[derive(Debug, Clone)]
pub struct Fired {
    /// What fired.
    pub firing: Firing,
    /// For `contact_updated`: what changed.
    pub changes: Changes,
    /// For `custom_event` and `event`.
    pub event: Option<EventFact>,
    /// 0 for what the API or an event started; +1 per automation in between.
    pub depth: u32,
}

impl Fired {
    /// A firing with nothing attached.
    pub fn new(kind: TriggerKind, name: Option<String>, depth: u32) -> Self {
        Fired {
            firing: Firing { kind, name, fields: Vec::new() },
            changes: Changes::new(),
            event: None,
            depth,
        }
    }
}

/// What a run did, so the caller can wake the workers it fed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Deliveries created (wake the delivery engine).
    pub deliveries: usize,
    /// Enrolments started (wake the sequence worker).
    pub enrolled: usize,
}

/// A run over one contact (or none, for an event without a known contact).
pub struct Run<'r, 't> {
    pub(super) t: &'r mut Tables<'t>,
    pub(super) ws: &'r WorkspaceRt,
    pub(super) now: u64,
    pub(super) contact: Option<ContactRecord>,
    /// As stored before this run (`None` for a new contact), to update indexes.
    original: Option<ContactRecord>,
    queue: VecDeque<Fired>,
    pub(super) effects: Effects,
    /// Automation runs so far, against [`MAX_RUNS`].
    runs: usize,
    /// Chains cut at [`MAX_DEPTH`], per automation: logged once per run.
    cut: BTreeMap<String, u64>,
}

impl std::fmt::Debug for Run<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("now", &self.now)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl<'r, 't> Run<'r, 't> {
    /// Starts a run; `original` is the contact as stored (None when new).
    pub fn new(
        t: &'r mut Tables<'t>,
        ws: &'r WorkspaceRt,
        now: u64,
        contact: Option<ContactRecord>,
        original: Option<ContactRecord>,
    ) -> Self {
        let (queue, effects) = (VecDeque::new(), Effects::default());
        Run { t, ws, now, contact, original, queue, effects, runs: 0, cut: BTreeMap::new() }
    }

    /// Queues a firing.
    pub fn fire(&mut self, f: Fired) {
        self.queue.push_back(f);
    }

    /// Queues what a contact change fires: `contact_updated` with the
    /// changes, plus `tag_added`/`tag_removed` per tag.
    pub fn fire_changes(&mut self, mut changes: Changes, depth: u32) {
        // A tag removed and added back in one step is no change at all.
        changes.retain(|_, c| c.from != c.to);
        if changes.is_empty() {
            return;
        }
        if let Some(tags) = changes.get("tags") {
            // Sets, so a change to a long tag list is diffed in linear time.
            let set = |v: &Value| -> BTreeSet<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .map(str::to_string)
                    .collect()
            };
            let (from, to) = (set(&tags.from), set(&tags.to));
            for t in to.difference(&from) {
                self.fire(Fired::new(TriggerKind::TagAdded, Some(t.clone()), depth));
            }
            for t in from.difference(&to) {
                self.fire(Fired::new(TriggerKind::TagRemoved, Some(t.clone()), depth));
            }
        }
        let mut f = Fired::new(TriggerKind::ContactUpdated, None, depth);
        f.firing.fields = changes.keys().cloned().collect();
        f.changes = changes;
        self.fire(f);
    }

    /// Handles every queued firing (and what they fire), then stores the
    /// contact. Returns the contact as stored and what the run created.
    pub fn finish(mut self) -> Result<(Option<ContactRecord>, Effects), StoreError> {
        let mut skipped = Skipped::default();
        while let Some(f) = self.queue.pop_front() {
            let autos: Vec<Arc<AutomationRt>> =
                self.ws.automations.matching(&f.firing).cloned().collect();
            for a in autos {
                if self.runs >= MAX_RUNS {
                    skipped.add(&a, &f);
                    continue;
                }
                self.runs += 1;
                self.run_one(&a, &f)?;
            }
        }
        self.over_budget(skipped)?;
        self.log_cut();
        if let Some(c) = &mut self.contact
            && self.original.as_ref() != Some(c)
        {
            c.updated_at = self.now;
            self.t.put_contact(c, self.original.as_ref())?;
        }
        Ok((self.contact, self.effects))
    }

    fn run_one(&mut self, a: &AutomationRt, f: &Fired) -> Result<(), StoreError> {
        let id = a.automation.id.as_str();
        let mut record = self.activity("automation", Some(f));
        record.automation = Some(id.to_string());
        if f.depth >= MAX_DEPTH {
            metrics::counter!("meshes_automation_loop_limit_total", "workspace" => self.ws.id.clone(), "automation" => id.to_string())
                .increment(1);
            *self.cut.entry(id.to_string()).or_default() += 1;
            record.kind = "loop_limit".into();
            record.note = Some(format!(
                "not run: {} automations deep (limit {MAX_DEPTH}); automations are triggering each other in a loop",
                f.depth
            ));
            return self.log(record);
        }
        let pass = match &a.condition {
            None => true,
            Some(program) => {
                let result = self.condition(program, f);
                if let Err(e) = &result {
                    condition_failed(&self.ws.id, a, e);
                    record.condition_error = Some(e.clone());
                }
                let pass = result.unwrap_or(false);
                record.condition = Some(pass);
                pass
            }
        };
        if pass {
            metrics::counter!("meshes_automation_runs_total", "workspace" => self.ws.id.clone(), "automation" => id.to_string())
                .increment(1);
            for (i, action) in a.automation.actions.iter().enumerate() {
                let outcome = self.act(a, i, action, f)?;
                record.actions.push(outcome);
            }
        }
        self.log(record)
    }

    /// Counts, logs and records the runs [`MAX_RUNS`] left out.
    fn over_budget(&mut self, skipped: Skipped) -> Result<(), StoreError> {
        let Some(first) = skipped.first else { return Ok(()) };
        let total: u64 = skipped.by_automation.values().sum();
        for (id, n) in &skipped.by_automation {
            metrics::counter!("meshes_automation_run_limit_total", "workspace" => self.ws.id.clone(), "automation" => id.clone())
                .increment(*n);
        }
        tracing::warn!(
            workspace = %self.ws.id,
            skipped = total,
            limit = MAX_RUNS,
            "automation runs cut at the per-change limit (a loop?)"
        );
        let mut record = self.activity("loop_limit", Some(&first));
        record.note = Some(format!(
            "not run: {total} more automation runs ({}); this change already set off {MAX_RUNS} runs (limit {MAX_RUNS}); automations are triggering each other in a loop",
            named(&skipped.by_automation)
        ));
        self.log(record)
    }

    /// One line for every chain this run cut at [`MAX_DEPTH`]: a loop that
    /// fans out is cut hundreds of times per write, and a line per cut
    /// flooded the log (each cut is in the contact's activity log and in
    /// `meshes_automation_loop_limit_total`).
    fn log_cut(&self) {
        if self.cut.is_empty() {
            return;
        }
        tracing::warn!(
            workspace = %self.ws.id,
            cut = self.cut.values().sum::<u64>(),
            automations = %named(&self.cut),
            limit = MAX_DEPTH,
            "automation chains cut at the depth limit (a loop?)"
        );
    }

    fn condition(&self, program: &cel::Program, f: &Fired) -> Result<bool, String> {
        let contact = self.contact.as_ref().map_or(Value::Null, contact::view);
        let changes = contact::changes_view(&f.changes);
        let event = f.event.as_ref().map_or(
            Value::Null,
            |e| json!({"name": e.name, "properties": e.properties, "id": e.id}),
        );
        let trigger = json!({"kind": kind_name(f.firing.kind), "name": f.firing.name});
        evaluate(
            program,
            &Facts { contact: &contact, changes: &changes, event: &event, trigger: &trigger },
        )
    }

    /// A new activity entry, started by `f` (none for sequence steps).
    pub(super) fn activity(&self, kind: &str, f: Option<&Fired>) -> ActivityRecord {
        ActivityRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now,
            kind: kind.into(),
            automation: None,
            sequence: None,
            step: None,
            trigger: f.map(|f| TriggerFact {
                kind: kind_name(f.firing.kind).into(),
                name: f.firing.name.clone(),
            }),
            condition: None,
            condition_error: None,
            actions: Vec::new(),
            depth: f.map_or(0, |f| f.depth),
            note: None,
        }
    }

    /// Appends to the contact's activity log (runs without a contact are
    /// only traced: there is no log to put them in).
    pub(super) fn log(&mut self, record: ActivityRecord) -> Result<(), StoreError> {
        let Some(id) = self.contact.as_ref().and_then(|c| event_key(&c.id)) else {
            tracing::debug!(automation = ?record.automation, actions = record.actions.len(), "automation ran without a contact");
            return Ok(());
        };
        self.t.add_activity(id, &record)
    }
}

/// Runs left out by [`MAX_RUNS`]: how many per automation, and the first
/// firing cut (the activity entry shows its trigger and depth).
#[derive(Default)]
struct Skipped {
    by_automation: BTreeMap<String, u64>,
    first: Option<Fired>,
}

impl Skipped {
    fn add(&mut self, a: &AutomationRt, f: &Fired) {
        *self.by_automation.entry(a.automation.id.clone()).or_default() += 1;
        if self.first.is_none() {
            self.first = Some(f.clone());
        }
    }
}

/// `id ×n` for the first five automations, then how many more.
fn named(by_automation: &BTreeMap<String, u64>) -> String {
    let mut named: Vec<String> =
        by_automation.iter().take(5).map(|(id, n)| format!("{id} ×{n}")).collect();
    if by_automation.len() > 5 {
        named.push(format!("{} more automations", by_automation.len() - 5));
    }
    named.join(", ")
}

/// Counts a failing condition and logs it once per automation and load.
pub(super) fn condition_failed(workspace: &str, a: &AutomationRt, error: &str) {
    let id = a.automation.id.as_str();
    metrics::counter!("meshes_automation_condition_errors_total", "workspace" => workspace.to_string(), "automation" => id.to_string())
        .increment(1);
    if !a.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            workspace,
            automation = id,
            error,
            "automation condition failed; treated as false (logged once per automation; see meshes_automation_condition_errors_total)"
        );
    }
}

/// An action outcome.
pub(super) fn outcome(action: &str, target: Option<&str>, outcome: &str) -> ActionOutcome {
    ActionOutcome {
        action: action.into(),
        target: target.map(str::to_string),
        outcome: outcome.into(),
        detail: None,
        event_id: None,
    }
}

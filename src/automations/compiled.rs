//! A workspace's automations and sequences, compiled once per config load:
//! conditions parsed, automations indexed by trigger kind.

use super::targets::{self, Gone, Slot};
use crate::config::automation::{
    Automation, AutomationAction, Sequence, Step, Trigger, TriggerFilter, TriggerKind,
};
use crate::config::condition;
use crate::config::model::{ConfigFile, Metadata};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// An automation with its compiled `when`.
#[derive(Debug)]
pub struct AutomationRt {
    /// As configured.
    pub automation: Automation,
    /// The compiled `when`, if any.
    pub condition: Option<cel::Program>,
    /// Set once a failing condition has been logged at warn level.
    pub(crate) warned: AtomicBool,
    /// Each action's [`targets::fingerprint`] (`None` unless it is a `notify`).
    fingerprints: Vec<Option<String>>,
}

impl AutomationRt {
    /// The delivery id of the `notify` action at `index`.
    pub fn delivery_id(&self, index: usize) -> String {
        let fp = self.fingerprints.get(index).cloned().flatten().unwrap_or_default();
        targets::delivery_id(AUTOMATION_PREFIX, &self.automation.id, index, &fp)
    }

    fn slot(&self, index: usize) -> Option<Slot<'_>> {
        match self.automation.actions.get(index)? {
            AutomationAction::Notify(n) => Some(Slot {
                connection: &n.connection,
                metadata: &n.metadata,
                fingerprint: self.fingerprints.get(index)?.as_deref()?,
            }),
            _ => None,
        }
    }
}

/// A sequence with its compiled `exit_when`.
#[derive(Debug)]
pub struct SequenceRt {
    /// Name.
    pub name: String,
    /// As configured.
    pub sequence: Sequence,
    /// The compiled `exit_when`, if any.
    pub exit: Option<cel::Program>,
    /// Set once a failing condition has been logged at warn level.
    pub(crate) warned: AtomicBool,
    /// Each step's [`targets::fingerprint`] (`None` for a wait).
    fingerprints: Vec<Option<String>>,
}

impl SequenceRt {
    /// The delivery id of the delivery step at `index`.
    pub fn delivery_id(&self, index: usize) -> String {
        let fp = self.fingerprints.get(index).cloned().flatten().unwrap_or_default();
        targets::delivery_id(SEQUENCE_PREFIX, &self.name, index, &fp)
    }

    fn slot(&self, index: usize) -> Option<Slot<'_>> {
        match self.sequence.steps.get(index)? {
            Step::Deliver(d) => Some(Slot {
                connection: &d.connection,
                metadata: &d.metadata,
                fingerprint: self.fingerprints.get(index)?.as_deref()?,
            }),
            Step::Wait(_) => None,
        }
    }
}

/// What fired: a trigger kind and the name it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The kind.
    pub kind: TriggerKind,
    /// The tag, event name, sequence or event type (none for created/updated).
    pub name: Option<String>,
    /// For `contact_updated`: the changed field names (`plan`,
    /// `custom_fields.plan`, `tags`).
    pub fields: Vec<String>,
}

/// A workspace's automations and sequences.
#[derive(Debug, Default)]
pub struct AutomationIndex {
    by_kind: HashMap<TriggerKind, Vec<Arc<AutomationRt>>>,
    by_id: HashMap<String, Arc<AutomationRt>>,
    sequences: HashMap<String, Arc<SequenceRt>>,
    upsert_from_events: bool,
}

/// Prefix of the delivery ids (`rule_id`s) that automations create.
pub const AUTOMATION_PREFIX: &str = "@automation:";
/// Prefix of the delivery ids (`rule_id`s) that sequence steps create.
pub const SEQUENCE_PREFIX: &str = "@sequence:";

impl AutomationIndex {
    /// Compiles every condition; a validated config always compiles.
    pub fn build(cfg: &ConfigFile) -> Result<Self, String> {
        let mut index = AutomationIndex {
            upsert_from_events: cfg.contacts.upsert_from_events,
            ..Self::default()
        };
        for a in &cfg.automations {
            let condition = compile(a.when.as_deref(), condition::AUTOMATION_VARIABLES)
                .map_err(|e| format!("automation `{}`: {e}", a.id))?;
            let rt = Arc::new(AutomationRt {
                automation: a.clone(),
                condition,
                warned: AtomicBool::new(false),
                fingerprints: a.actions.iter().map(action_fingerprint).collect(),
            });
            index.by_id.insert(a.id.clone(), rt.clone());
            if a.enabled {
                index.by_kind.entry(kind(&a.trigger)).or_default().push(rt);
            }
        }
        for (name, s) in &cfg.sequences {
            let exit = compile(s.exit_when.as_deref(), condition::SEQUENCE_VARIABLES)
                .map_err(|e| format!("sequence `{name}`: {e}"))?;
            let rt = SequenceRt {
                name: name.clone(),
                sequence: s.clone(),
                exit,
                warned: AtomicBool::new(false),
                fingerprints: s.steps.iter().map(step_fingerprint).collect(),
            };
            index.sequences.insert(name.clone(), Arc::new(rt));
        }
        Ok(index)
    }

    /// Whether ingested events must pass through the automation inbox.
    pub fn wants_events(&self) -> bool {
        self.upsert_from_events || self.by_kind.contains_key(&TriggerKind::Event)
    }

    /// Whether ingested events with an `email` upsert a contact.
    pub fn upsert_from_events(&self) -> bool {
        self.upsert_from_events
    }

    /// The enabled automations a firing starts, in file order.
    pub fn matching<'a>(&'a self, f: &'a Firing) -> impl Iterator<Item = &'a Arc<AutomationRt>> {
        self.by_kind
            .get(&f.kind)
            .into_iter()
            .flatten()
            .filter(move |a| filter_matches(&a.automation.trigger, f))
    }

    /// A sequence by name.
    pub fn sequence(&self, name: &str) -> Option<&Arc<SequenceRt>> {
        self.sequences.get(name)
    }

    /// Each sequence's name and number of steps.
    pub fn sequence_lengths(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.sequences.iter().map(|(name, s)| (name.as_str(), s.sequence.steps.len()))
    }

    /// The connection and metadata behind an automation or sequence
    /// delivery id, as [`targets::resolve`] finds them in this config.
    pub fn target(&self, rule_id: &str) -> Option<(&str, &Metadata)> {
        self.resolve(rule_id).ok().map(|s| (s.connection, s.metadata))
    }

    /// The step behind a delivery id, or why there is none.
    pub fn resolve(&self, rule_id: &str) -> Result<Slot<'_>, Gone> {
        if let Some(rest) = rule_id.strip_prefix(AUTOMATION_PREFIX) {
            let id = targets::parse(rest).ok_or(Gone::Removed)?;
            let a = self.by_id.get(id.owner).ok_or(Gone::Removed)?;
            if !a.automation.enabled {
                return Err(Gone::Disabled);
            }
            targets::resolve(a.automation.actions.len(), |i| a.slot(i), id)
        } else {
            let rest = rule_id.strip_prefix(SEQUENCE_PREFIX).ok_or(Gone::Removed)?;
            let id = targets::parse(rest).ok_or(Gone::Removed)?;
            let s = self.sequences.get(id.owner).ok_or(Gone::Removed)?;
            targets::resolve(s.sequence.steps.len(), |i| s.slot(i), id)
        }
    }
}

fn action_fingerprint(a: &AutomationAction) -> Option<String> {
    match a {
        AutomationAction::Notify(n) => Some(targets::fingerprint(&n.connection, &n.metadata)),
        _ => None,
    }
}

fn step_fingerprint(s: &Step) -> Option<String> {
    match s {
        Step::Deliver(d) => Some(targets::fingerprint(&d.connection, &d.metadata)),
        Step::Wait(_) => None,
    }
}

fn compile(src: Option<&str>, vars: &[&str]) -> Result<Option<cel::Program>, String> {
    src.map(|s| condition::compile(s, vars)).transpose()
}

/// The kind a trigger listens to.
pub fn kind(t: &Trigger) -> TriggerKind {
    match t {
        Trigger::Any(k) => *k,
        Trigger::Filtered(f) => match f {
            TriggerFilter::ContactUpdated(_) => TriggerKind::ContactUpdated,
            TriggerFilter::TagAdded(_) => TriggerKind::TagAdded,
            TriggerFilter::TagRemoved(_) => TriggerKind::TagRemoved,
            TriggerFilter::CustomEvent(_) => TriggerKind::CustomEvent,
            TriggerFilter::SequenceEnrolled(_) => TriggerKind::SequenceEnrolled,
            TriggerFilter::Event(_) => TriggerKind::Event,
        },
    }
}

/// Whether a trigger's filter accepts a firing of its kind. A field filter
/// names a custom field either bare (`plan`) or in full (`custom_fields.plan`);
/// a bare reserved name (`unsubscribed`, `tags`, `email`) is only ever the
/// standard one, never a custom field of that name stored before those
/// were refused.
fn filter_matches(t: &Trigger, f: &Firing) -> bool {
    let name = f.name.as_deref();
    match t {
        Trigger::Any(_) => true,
        Trigger::Filtered(filter) => match filter {
            TriggerFilter::ContactUpdated(fields) => fields.iter().any(|want| {
                f.fields.iter().any(|got| {
                    got == want
                        || (!super::contact::reserved(want)
                            && got.strip_prefix("custom_fields.") == Some(want.as_str()))
                })
            }),
            TriggerFilter::TagAdded(x)
            | TriggerFilter::TagRemoved(x)
            | TriggerFilter::CustomEvent(x)
            | TriggerFilter::SequenceEnrolled(x)
            | TriggerFilter::Event(x) => name == Some(x.as_str()),
        },
    }
}

/// The wire name of a trigger kind.
pub fn kind_name(k: TriggerKind) -> &'static str {
    match k {
        TriggerKind::ContactCreated => "contact_created",
        TriggerKind::ContactUpdated => "contact_updated",
        TriggerKind::TagAdded => "tag_added",
        TriggerKind::TagRemoved => "tag_removed",
        TriggerKind::CustomEvent => "custom_event",
        TriggerKind::SequenceEnrolled => "sequence_enrolled",
        TriggerKind::Event => "event",
    }
}

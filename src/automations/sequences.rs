//! Advancing a contact through a sequence.
//!
//! An active enrolment has a due time in the `sequence_due` index. When it
//! comes, one writer transaction checks `exit_when`, runs the deliveries up
//! to the next wait (each one an event with its own durable delivery),
//! records each step in the activity log and stores the next due time. The
//! step counter and the deliveries commit together, so a restart resumes at
//! exactly the next step: none skipped, none repeated.

use super::compiled::SequenceRt;
use super::contact;
use super::context::{Facts, evaluate};
use super::engine::{Effects, Run};
use crate::config::automation::{Notify, Step};
use crate::gateway::runtime::Runtime;
use crate::store::{ContactRecord, EnrollmentRecord, EnrollmentStatus, StoreError, Tables};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Most delivery steps one writer job runs. Enrolments are batched by
/// count, but one enrolment may run a long stretch of deliveries with no
/// wait between them: a few hundred contacts due at once on such a
/// sequence made one transaction that ingest waited seconds behind. What is
/// left stays due, and the next job (at once) carries on from that step.
pub const MAX_STEPS: usize = 1_000;

/// What one writer job of due steps runs under.
#[derive(Debug)]
pub struct Job {
    /// The config in force.
    pub rt: Arc<Runtime>,
    /// Unix ms.
    pub now: u64,
    /// What that config may still hold back.
    pub grace: Grace,
    /// Delivery steps the job may still run ([`MAX_STEPS`] at its start).
    pub left: usize,
}

impl Job {
    /// A job with the whole [`MAX_STEPS`] budget.
    pub fn new(rt: Arc<Runtime>, now: u64, grace: Grace) -> Self {
        Job { rt, now, grace, left: MAX_STEPS }
    }
}

/// The cancellation grace of the config in force, as sequences use it.
#[derive(Debug, Clone, Default)]
pub struct Grace {
    /// What is left of it ([`crate::delivery::route::grace_left`]),
    /// measured by the caller: the writer thread runs outside the runtime
    /// and its clock.
    pub left: Duration,
}

impl Job {
    /// Whether the config before the one in force had steps of `sequence`
    /// from index `step` on, which this one lacks, and this one is in its
    /// grace: a file cut short while it was written loses the last steps of
    /// a sequence, and the enrolment must not end "completed" for good when
    /// the rest lands a moment later. A sequence the last reload left alone,
    /// or a startup config, holds nothing: every re-enrolment counts.
    fn lacks_steps(&self, ws: &str, sequence: &str, step: u32) -> bool {
        let key = (ws.to_string(), sequence.to_string());
        !self.grace.left.is_zero()
            && self.rt.shortened.get(&key).is_some_and(|&steps| steps > step as usize)
    }
}

/// Runs the due steps of one enrolment. `due` is the index entry that came
/// due; anything else (already advanced, unenrolled) is left alone, so a
/// stale read never runs a step twice.
pub fn advance(
    t: &mut Tables<'_>,
    job: &mut Job,
    (contact_id, sequence): (u128, &str),
    due: u64,
) -> Result<Effects, StoreError> {
    let Some(old) = t.enrollment(contact_id, sequence)? else { return Ok(Effects::default()) };
    if old.status != EnrollmentStatus::Active || old.due != Some(due) {
        return Ok(Effects::default());
    }
    let (stored, now) = (t.contact(contact_id)?, job.now);
    // A reason on an active enrolment says why it was held; it runs on now.
    let mut e = EnrollmentRecord { updated_at: now, reason: None, ..old.clone() };
    let ws = stored.as_ref().and_then(|c| job.rt.workspace(&c.workspace));
    let seq = ws.and_then(|w| w.automations.sequence(sequence)).cloned();
    let (Some(ws), Some(seq), Some(c)) = (ws, seq, stored.clone()) else {
        if stored.is_some() && !job.grace.left.is_zero() {
            // A config cut short by a slow write may lack the sequence for
            // a moment: decided again when its grace ends, under the
            // config in force then (as deliveries are).
            hold(&mut e, now, job.grace.left, MISSING);
        } else {
            // Ended, not left due: a due entry nobody can run would come back forever.
            let why = "the sequence (or its workspace, or the contact) left the config";
            end(&mut e, EnrollmentStatus::Unenrolled, why);
        }
        t.put_enrollment(contact_id, &e, old.due)?;
        return Ok(Effects::default());
    };
    let mut run = Run::new(t, ws, now, Some(c), stored);
    steps(&mut run, &seq, &mut e, &mut job.left)?;
    if e.status == EnrollmentStatus::Completed && job.lacks_steps(&ws.id, sequence, e.step) {
        // Decided again after the grace, from the step it reached.
        hold(&mut e, now, job.grace.left, CUT);
    }
    run.t.put_enrollment(contact_id, &e, old.due)?;
    Ok(run.finish()?.1)
}

/// Why an enrolment stays active under a config in its grace that lacks its sequence.
const MISSING: &str = "held: the config in force, in force for under 10 s, lacks this sequence (a file cut short while it was written?); decided again at next_step_at, under the config in force then";
/// Why an enrolment stays active under a config in its grace that lacks
/// the steps it was to run next.
const CUT: &str = "held: the config in force, in force for under 10 s, lacks steps of this sequence that the config before it had (a file cut short while it was written?); decided again at next_step_at, under the config in force then";

/// Keeps an enrolment active that a config in its grace would end, due
/// again once the grace is over, when the config in force then decides.
/// The reason says so in the API.
fn hold(e: &mut EnrollmentRecord, now: u64, grace: Duration, why: &str) {
    e.status = EnrollmentStatus::Active;
    e.reason = Some(why.into());
    e.due = Some(crate::delivery::route::after_grace(now, grace));
}

/// Whether `e` is still running: active, held ones included. A held
/// enrolment may be past the end of the config in force, but that config
/// may be a file cut short; starting over would send its first steps again
/// when the whole file lands and the hold resumes it.
pub fn running(e: &EnrollmentRecord) -> bool {
    e.status == EnrollmentStatus::Active
}

fn end(e: &mut EnrollmentRecord, status: EnrollmentStatus, why: &str) {
    e.status = status;
    e.due = None;
    e.reason = Some(why.into());
}

/// Runs steps from `e.step` until a wait, the end, `exit_when`, or the
/// job's budget of deliveries (`left`): then `e` stays due as it was.
fn steps(
    run: &mut Run<'_, '_>,
    seq: &SequenceRt,
    e: &mut EnrollmentRecord,
    left: &mut usize,
) -> Result<(), StoreError> {
    loop {
        let index = e.step as usize;
        let Some(step) = seq.sequence.steps.get(index) else {
            end(e, EnrollmentStatus::Completed, "every step ran");
            return Ok(());
        };
        if *left == 0 && matches!(step, Step::Deliver(_)) {
            return Ok(());
        }
        let verdict = exit(run, seq);
        if let Exit::Leave(why) = verdict {
            let mut record = step_record(run, seq, index);
            record.condition = Some(true);
            record.note = Some(why.clone());
            run.log(record)?;
            end(e, EnrollmentStatus::Exited, &why);
            return Ok(());
        }
        e.step += 1;
        match step {
            Step::Wait(w) => {
                e.due = Some(crate::clock::after(run.now, w.wait.get()));
                return Ok(());
            }
            Step::Deliver(d) => {
                *left -= 1;
                deliver(run, seq, index, d, verdict)?;
            }
        }
    }
}

/// Creates step `index`'s delivery and records it with how `exit_when`
/// (if any) came out: false, or the error that counted as false.
fn deliver(
    run: &mut Run<'_, '_>,
    seq: &SequenceRt,
    index: usize,
    d: &Notify,
    verdict: Exit,
) -> Result<(), StoreError> {
    let rule_id = seq.delivery_id(index);
    let event = format!("sequence.{}", seq.name);
    let by = format!("sequence:{}", seq.name);
    let mut o = run.deliver(&event, None, &rule_id, &d.connection, &d.metadata.action, &by)?;
    o.action = d.metadata.action.clone();
    let mut record = step_record(run, seq, index);
    if seq.exit.is_some() {
        record.condition = Some(false);
    }
    if let Exit::Failed(error) = verdict {
        record.condition_error = Some(error);
    }
    record.actions.push(o);
    run.log(record)
}

/// What `exit_when` says before a step.
enum Exit {
    /// No `exit_when`, or it is false: the step runs.
    Stay,
    /// It held: the contact leaves, for this reason.
    Leave(String),
    /// It failed, which counts as false (the step is what the author
    /// wrote); the error is recorded with the step.
    Failed(String),
}

/// Runs an `exit_when` over `c` (its only variable).
pub(super) fn exit_when(program: &cel::Program, c: Option<&ContactRecord>) -> Result<bool, String> {
    let view = c.map_or(Value::Null, contact::view);
    let (empty, null) = (Value::Object(serde_json::Map::new()), Value::Null);
    evaluate(program, &Facts { contact: &view, changes: &empty, event: &null, trigger: &null })
}

fn exit(run: &Run<'_, '_>, seq: &SequenceRt) -> Exit {
    let Some(program) = seq.exit.as_ref() else { return Exit::Stay };
    match exit_when(program, run.contact.as_ref()) {
        Ok(true) => Exit::Leave("exit_when held".into()),
        Ok(false) => Exit::Stay,
        Err(error) => {
            let workspace = run.ws.id.clone();
            metrics::counter!("meshes_sequence_condition_errors_total", "workspace" => workspace.clone(), "sequence" => seq.name.clone())
                .increment(1);
            if !seq.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(%workspace, sequence = %seq.name, %error, "exit_when failed; treated as false (logged once per sequence)");
            }
            Exit::Failed(error)
        }
    }
}

fn step_record(run: &Run<'_, '_>, seq: &SequenceRt, index: usize) -> crate::store::ActivityRecord {
    let mut record = run.activity("sequence_step", None);
    record.sequence = Some(seq.name.clone());
    record.step = Some(index as u32);
    record
}

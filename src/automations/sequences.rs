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
use crate::config::automation::Step;
use crate::gateway::runtime::Runtime;
use crate::store::{EnrollmentRecord, EnrollmentStatus, StoreError, Tables};
use serde_json::Value;

/// Runs the due steps of one enrolment. `due` is the index entry that came
/// due; anything else (already advanced, unenrolled) is left alone, so a
/// stale read never runs a step twice. `grace` is what is left of `rt`'s
/// cancellation grace ([`crate::delivery::route::grace_left`]), measured by
/// the caller: the writer thread runs outside the runtime and its clock.
pub fn advance(
    t: &mut Tables<'_>,
    rt: &Runtime,
    (contact_id, sequence): (u128, &str),
    due: u64,
    now: u64,
    grace: std::time::Duration,
) -> Result<Effects, StoreError> {
    let Some(old) = t.enrollment(contact_id, sequence)? else { return Ok(Effects::default()) };
    if old.status != EnrollmentStatus::Active || old.due != Some(due) {
        return Ok(Effects::default());
    }
    let stored = t.contact(contact_id)?;
    let mut e = EnrollmentRecord { updated_at: now, ..old.clone() };
    let ws = stored.as_ref().and_then(|c| rt.workspace(&c.workspace));
    let seq = ws.and_then(|w| w.automations.sequence(sequence)).cloned();
    let (Some(ws), Some(seq), Some(c)) = (ws, seq, stored.clone()) else {
        if stored.is_some() && !grace.is_zero() {
            // A config cut short by a slow write may lack the sequence for
            // a moment: decided again when its grace ends, under the
            // config in force then (as deliveries are).
            hold(&mut e, now, grace);
        } else {
            // Ended, not left due: a due entry nobody can run would come back forever.
            let why = "the sequence (or its workspace, or the contact) left the config";
            end(&mut e, EnrollmentStatus::Unenrolled, why);
        }
        t.put_enrollment(contact_id, &e, old.due)?;
        return Ok(Effects::default());
    };
    let mut run = Run::new(t, ws, now, Some(c), stored);
    steps(&mut run, &seq, &mut e)?;
    if e.status == EnrollmentStatus::Completed && !grace.is_zero() {
        // Its last steps may be what a cut file lacks: the end is decided
        // again after the grace, from the step it reached.
        hold(&mut e, now, grace);
    }
    run.t.put_enrollment(contact_id, &e, old.due)?;
    Ok(run.finish()?.1)
}

/// Keeps an enrolment active that a config in its grace would end, due
/// again once the grace is over, when the config in force then decides.
fn hold(e: &mut EnrollmentRecord, now: u64, grace: std::time::Duration) {
    e.status = EnrollmentStatus::Active;
    e.reason = None;
    e.due = Some(crate::delivery::route::after_grace(now, grace));
}

fn end(e: &mut EnrollmentRecord, status: EnrollmentStatus, why: &str) {
    e.status = status;
    e.due = None;
    e.reason = Some(why.into());
}

/// Runs steps from `e.step` until a wait, the end, or `exit_when`.
fn steps(
    run: &mut Run<'_, '_>,
    seq: &SequenceRt,
    e: &mut EnrollmentRecord,
) -> Result<(), StoreError> {
    loop {
        let index = e.step as usize;
        let Some(step) = seq.sequence.steps.get(index) else {
            end(e, EnrollmentStatus::Completed, "every step ran");
            return Ok(());
        };
        if let Some(why) = exit(run, seq) {
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
                let rule_id = seq.delivery_id(index);
                let event = format!("sequence.{}", seq.name);
                let by = format!("sequence:{}", seq.name);
                let mut o =
                    run.deliver(&event, None, &rule_id, &d.connection, &d.metadata.action, &by)?;
                o.action = d.metadata.action.clone();
                let mut record = step_record(run, seq, index);
                if seq.exit.is_some() {
                    record.condition = Some(false);
                }
                record.actions.push(o);
                run.log(record)?;
            }
        }
    }
}

/// `Some(reason)` when the contact must leave the sequence before the next step.
fn exit(run: &Run<'_, '_>, seq: &SequenceRt) -> Option<String> {
    let program = seq.exit.as_ref()?;
    let view = run.contact.as_ref().map_or(Value::Null, contact::view);
    let (empty, null) = (Value::Object(serde_json::Map::new()), Value::Null);
    let facts = Facts { contact: &view, changes: &empty, event: &null, trigger: &null };
    match evaluate(program, &facts) {
        Ok(true) => Some("exit_when held".into()),
        Ok(false) => None,
        Err(error) => {
            // Failing safe means continuing: the step is what the author wrote.
            let workspace = run.ws.id.clone();
            metrics::counter!("meshes_sequence_condition_errors_total", "workspace" => workspace.clone(), "sequence" => seq.name.clone())
                .increment(1);
            if !seq.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(%workspace, sequence = %seq.name, %error, "exit_when failed; treated as false (logged once per sequence)");
            }
            None
        }
    }
}

fn step_record(run: &Run<'_, '_>, seq: &SequenceRt, index: usize) -> crate::store::ActivityRecord {
    let mut record = run.activity("sequence_step", None);
    record.sequence = Some(seq.name.clone());
    record.step = Some(index as u32);
    record
}

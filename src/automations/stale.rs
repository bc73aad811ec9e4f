//! Why an automation or sequence delivery already queued must not go out
//! any more. Retries can span days, so each attempt asks again: is the
//! contact suppressed now (for an email), or has the contact left the
//! sequence whose step created it, by `unenroll` or `exit_when`? One or
//! two point reads, and only for deliveries automations created: ordinary
//! rules never read contacts.

use super::actions::{suppressible, suppression};
use super::compiled::SEQUENCE_PREFIX;
use crate::gateway::runtime::WorkspaceRt;
use crate::store::{
    ContactRecord, EnrollmentRecord, EnrollmentStatus, EventRecord, Store, StoreError, event_key,
};

/// Why the delivery `rule` (with `action`) of `event` must not be sent now,
/// if it must not; `ws` is its workspace in the config in force.
pub fn stale(
    store: &Store,
    ws: Option<&WorkspaceRt>,
    event: &EventRecord,
    rule: &str,
    action: &str,
) -> Result<Option<String>, StoreError> {
    if !rule.starts_with('@') || event.resource != "contact" {
        return Ok(None);
    }
    let sequence = rule.strip_prefix(SEQUENCE_PREFIX).and_then(super::targets::parse);
    let sequence = sequence.map(|p| p.owner);
    if sequence.is_none() && !suppressible(action) {
        return Ok(None);
    }
    let Some(id) = event.resource_id.as_deref().and_then(event_key) else { return Ok(None) };
    let Some(c) = store.contact(id)?.filter(|c| c.workspace == event.workspace) else {
        return Ok(None);
    };
    if let Some(why) = suppression(&c, action) {
        return Ok(Some(format!("{why} since this email was queued; it is not sent")));
    }
    let Some(name) = sequence else { return Ok(None) };
    let Some(e) = store.enrollments(id)?.into_iter().find(|e| e.sequence == name) else {
        return Ok(None);
    };
    Ok(left(&e, &c, ws, event.created_at)
        .map(|why| format!("{why} since this delivery was queued; it is not sent")))
}

/// Why the contact has left the enrolment `e` that created a delivery at
/// `created_at`, if it has: it ended by `unenroll` (or its sequence left
/// the config) or `exit_when`, or `exit_when` holds now (the enrolment
/// exits at its next step; a delivery retrying meanwhile no longer
/// applies either). An enrolment started after the delivery is another
/// one: the delivery's own ended in a way no longer stored, so it is sent.
fn left(
    e: &EnrollmentRecord,
    c: &ContactRecord,
    ws: Option<&WorkspaceRt>,
    created_at: u64,
) -> Option<String> {
    if e.enrolled_at > created_at {
        return None;
    }
    let name = &e.sequence;
    match e.status {
        EnrollmentStatus::Exited | EnrollmentStatus::Unenrolled => {
            let why = e.reason.as_deref().unwrap_or("unenrolled");
            Some(format!("the contact left sequence `{name}` ({why})"))
        }
        EnrollmentStatus::Active | EnrollmentStatus::Completed => {
            let program = ws?.automations.sequence(name)?.exit.as_ref()?;
            // A failing exit_when counts as false here too (the step ran,
            // and recorded the error).
            let holds = super::sequences::exit_when(program, Some(c)).unwrap_or(false);
            holds.then(|| format!("the contact meets the exit_when of sequence `{name}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolment(status: EnrollmentStatus, enrolled_at: u64) -> EnrollmentRecord {
        let reason = Some("unenroll action".to_string());
        let (sequence, step, due, updated_at) = ("drip".to_string(), 1, None, enrolled_at);
        EnrollmentRecord { sequence, status, step, due, enrolled_at, updated_at, reason }
    }

    /// Only the enrolment that created the delivery counts: one started
    /// after it (the contact enrolled again) says nothing about it, and a
    /// completed one without an `exit_when` that holds leaves it be.
    #[test]
    fn only_an_ended_enrolment_from_before_the_delivery_stops_it() {
        let c = ContactRecord::new(uuid::Uuid::now_v7().to_string(), "ws".into(), 1);
        let ended = enrolment(EnrollmentStatus::Unenrolled, 100);
        assert_eq!(
            left(&ended, &c, None, 100).as_deref(),
            Some("the contact left sequence `drip` (unenroll action)")
        );
        assert_eq!(left(&ended, &c, None, 99), None, "created before that enrolment");
        for status in [EnrollmentStatus::Active, EnrollmentStatus::Completed] {
            assert_eq!(left(&enrolment(status, 100), &c, None, 200), None, "{status:?}");
        }
    }
}

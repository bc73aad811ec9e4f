//! Checks of automations and sequences: triggers, actions, tags, fields,
//! and the sequences they name.

use super::{Parts, check_cel, check_target};
use crate::config::automation::{
    Automation, AutomationAction, Notify, Sequence, Step, Trigger, TriggerFilter,
};
use crate::config::condition;
use crate::config::diagnostic::{Code, Issue, Path, expected_one_of};

pub(super) fn check_automation<'a>(
    parts: &'a Parts,
    a: &'a Automation,
    at: &Path,
    out: &mut Vec<Issue>,
) {
    if let Some(when) = &a.when {
        check_cel(when, condition::AUTOMATION_VARIABLES, at.key("when"), out);
    }
    match &a.trigger {
        Trigger::Filtered(TriggerFilter::SequenceEnrolled(name)) => {
            check_sequence_ref(parts, name, at.key("trigger").key("sequence_enrolled"), out);
        }
        Trigger::Filtered(TriggerFilter::TagAdded(t)) => {
            check_tag(t, at.key("trigger").key("tag_added"), out);
        }
        Trigger::Filtered(TriggerFilter::TagRemoved(t)) => {
            check_tag(t, at.key("trigger").key("tag_removed"), out);
        }
        Trigger::Filtered(TriggerFilter::Event(name)) => {
            check_event_name(name, at.key("trigger").key("event"), out);
        }
        Trigger::Filtered(TriggerFilter::CustomEvent(name)) => {
            check_event_name(name, at.key("trigger").key("custom_event"), out);
        }
        _ => {}
    }
    for (j, action) in a.actions.iter().enumerate() {
        let here = at.key("actions").index(j);
        match action {
            AutomationAction::AddTag(t) => check_tag(t, here.key("add_tag"), out),
            AutomationAction::RemoveTag(t) => check_tag(t, here.key("remove_tag"), out),
            AutomationAction::SetField(f) => {
                let at = here.key("set_field");
                check_set_field(&f.field, at.key("field"), out);
                check_set_value(&f.field, &f.value, at.key("value"), out);
            }
            AutomationAction::Enroll(s) => check_sequence_ref(parts, s, here.key("enroll"), out),
            AutomationAction::Unenroll(s) => {
                check_sequence_ref(parts, s, here.key("unenroll"), out)
            }
            AutomationAction::Notify(n) => check_notify(parts, n, &here.key("notify"), out),
            _ => {}
        }
    }
}

/// An event or custom event name a trigger waits for must be one the API
/// accepts, or the automation never runs.
fn check_event_name(name: &str, at: Path, out: &mut Vec<Issue>) {
    if let Some(problem) = crate::config::model::name_problem(name) {
        let message = format!("{name:?} {problem} (no event could ever match)");
        out.push(Issue::error(Code::InvalidValue, at, message));
    }
}

/// Tags follow the contacts API's rules, so a tag an automation adds is one
/// the API could have added (and can remove).
fn check_tag(tag: &str, at: Path, out: &mut Vec<Issue>) {
    let problem = if tag.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if tag.chars().count() > 100 {
        Some(format!("is {} characters long; expected at most 100", tag.chars().count()))
    } else if tag.chars().any(char::is_control) || tag.trim() != tag {
        Some("must not contain control characters or start or end with spaces".to_string())
    } else {
        None
    };
    if let Some(p) = problem {
        out.push(Issue::error(Code::InvalidValue, at, format!("tag `{tag}` {p}")));
    }
}

/// `email` and `external_id` identify the contact (the API matches on
/// them); `tags` have their own actions.
fn check_set_field(field: &str, at: Path, out: &mut Vec<Issue>) {
    let problem = match field {
        "email" | "external_id" | "id" => {
            Some("identifies the contact and is set through the contacts API, not by automations")
        }
        "tags" | "custom_fields" => {
            Some("is not a single field; use add_tag/remove_tag or `custom_fields.<key>`")
        }
        f if f.strip_prefix("custom_fields.").is_some_and(str::is_empty) || f.is_empty() => Some(
            "names no field; expected `first_name`, `last_name`, `name`, `phone` or `custom_fields.<key>`",
        ),
        // A name that is not a standard field is a custom field, prefixed
        // or not; the reserved names would pass for the standard fields
        // (the contacts API refuses them too), so every run would fail.
        f if crate::automations::contact::reserved(
            f.strip_prefix("custom_fields.").unwrap_or(f),
        ) && !crate::automations::contact::STANDARD_FIELDS.contains(&f) =>
        {
            Some("is a reserved name, not a custom field a contact may hold; choose another key")
        }
        _ => None,
    };
    if let Some(p) = problem {
        out.push(Issue::error(Code::InvalidValue, at, format!("field `{field}` {p}")));
    }
}

/// Standard fields hold text: a number or boolean is written as its text
/// and `null` clears, but a list or map has no text to write.
fn check_set_value(field: &str, value: &serde_json::Value, at: Path, out: &mut Vec<Issue>) {
    let kind = match value {
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
        _ => return,
    };
    if !["first_name", "last_name", "name", "phone"].contains(&field) {
        return;
    }
    let mut shown = value.to_string();
    if shown.len() > 60 {
        let cut = (0..=57).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown = format!("{}…", &shown[..cut]);
    }
    out.push(Issue::error(
        Code::InvalidValue,
        at,
        format!(
            "value `{shown}` for the standard field `{field}` is {kind}; expected text, a number or boolean (written as its text) or null (clears it); structured values go in a `custom_fields.<key>` field"
        ),
    ));
}

fn check_notify<'a>(parts: &'a Parts, n: &'a Notify, at: &Path, out: &mut Vec<Issue>) {
    check_target(parts, &n.connection, &n.metadata, at, out);
}

fn check_sequence_ref(parts: &Parts, name: &str, at: Path, out: &mut Vec<Issue>) {
    if !parts.has_sequence(name) {
        let names = parts.sequences.iter().map(|(n, _)| n.as_str());
        let message = format!("unknown sequence `{name}`, {}", expected_one_of(name, names));
        out.push(Issue::error(Code::UnknownSequence, at, message));
    }
}

pub(super) fn check_sequence<'a>(
    parts: &'a Parts,
    seq: &'a Sequence,
    at: &Path,
    out: &mut Vec<Issue>,
) {
    if let Some(exit) = &seq.exit_when {
        check_cel(exit, condition::SEQUENCE_VARIABLES, at.key("exit_when"), out);
    }
    for (j, step) in seq.steps.iter().enumerate() {
        if let Step::Deliver(n) = step {
            check_notify(parts, n, &at.key("steps").index(j), out);
        }
    }
}

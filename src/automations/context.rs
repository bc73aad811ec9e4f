//! What conditions see, and evaluating them.

use crate::gateway::rules::{ROOT, json_to_cel, verdict};
use serde_json::Value;

/// The variables of an automation's `when` (a sequence's `exit_when` uses
/// `contact` only; the others are null there).
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// [`super::contact::view`] of the contact (null when there is none).
    pub contact: &'a Value,
    /// [`super::contact::changes_view`] (an empty map when nothing changed).
    pub changes: &'a Value,
    /// The event: `{name, properties, …}`, or null.
    pub event: &'a Value,
    /// `{kind, name}` of the trigger.
    pub trigger: &'a Value,
}

/// Runs a condition: `Ok(true/false)`, or `Err` with what went wrong (which
/// the caller records, logs and treats as false; it names types, never
/// values, which are contact and event data). A missing field is just false:
/// contacts and events differ, and `changes.plan` only exists when the plan changed.
pub fn evaluate(program: &cel::Program, f: &Facts<'_>) -> Result<bool, String> {
    let mut ctx = ROOT.new_inner_scope();
    ctx.add_variable_from_value("contact", json_to_cel(f.contact));
    ctx.add_variable_from_value("changes", json_to_cel(f.changes));
    ctx.add_variable_from_value("event", json_to_cel(f.event));
    ctx.add_variable_from_value("trigger", json_to_cel(f.trigger));
    verdict(program.execute(&ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(src: &str, contact: Value, changes: Value) -> Result<bool, String> {
        let program =
            crate::config::condition::compile(src, crate::config::condition::AUTOMATION_VARIABLES)
                .unwrap();
        let (event, trigger) = (Value::Null, json!({"kind": "contact_updated"}));
        evaluate(
            &program,
            &Facts { contact: &contact, changes: &changes, event: &event, trigger: &trigger },
        )
    }

    #[test]
    fn edge_cases() {
        let plan = json!({"plan": {"from": "free", "to": "pro"}});
        let when = r#"changes.plan.from == "free" && changes.plan.to != "free""#;
        assert_eq!(eval(when, json!({}), plan.clone()), Ok(true));
        // No plan change: the field is missing, which is false, not an error.
        assert_eq!(eval(when, json!({}), json!({"tags": {}})), Ok(false));
        assert_eq!(
            eval(r#""paying" in contact.tags"#, json!({"tags": ["paying"]}), json!({})),
            Ok(true)
        );
        assert_eq!(eval("contact.seats > 2", json!({"seats": 3}), json!({})), Ok(true));
        // A type error is reported (and the caller counts it as false).
        assert!(eval("contact.seats > 2", json!({"seats": "many"}), json!({})).is_err());
        // A non-boolean result is an error too.
        assert!(eval("contact.seats", json!({"seats": 3}), json!({})).is_err());
    }

    /// Errors are recorded in the activity log and logged: they name the
    /// CEL type and the kind of failure, never the contact's or event's data.
    #[test]
    fn errors_name_types_not_values() {
        let secret = json!({"email": "victim@x.com", "n": 7, "zero": 0});
        let cases = [
            ("contact.email", "returned a string, not a boolean"),
            ("contact.n", "returned an int, not a boolean"),
            ("contact.n / contact.zero == 1", "division by zero (an int)"),
            ("contact.n % contact.zero == 1", "remainder by zero (an int)"),
            (
                "contact.email.startsWith(1)",
                "found no matching overload for 'startsWith' applied to (string, int)",
            ),
            ("contact.email < contact.n", "found no matching overload"),
            ("int(contact.email) == 1", "error executing function"),
        ];
        for (when, want) in cases {
            let err = eval(when, secret.clone(), json!({})).unwrap_err();
            assert!(err.starts_with(want), "{when}: {err}");
            assert!(!err.contains("victim") && !err.contains('7'), "{when}: {err}");
        }
    }
}

//! `{{path.to.field}}` templates for chat messages and email subjects/bodies.
//!
//! Paths are dotted keys (array indexes as numbers) into the delivery's
//! context: `payload.*`, `event`, `event_id`, `resource`, `resource_id`,
//! `workspace`, `rule_id`. Strings render as-is, numbers and booleans as
//! JSON, objects and arrays as compact JSON.
//!
//! A missing path renders as the empty string, by choice: optional fields
//! are normal in events (`{{payload.company}}` for a person without one),
//! and a chat message with a blank is more useful than a dead delivery.
//! Text that is not a complete `{{…}}` is kept literally.

use super::adapter::Delivery;
use serde_json::{Value, json};

/// The values templates can reach for one delivery.
pub fn context(d: &Delivery) -> Value {
    json!({
        "payload": d.payload,
        "event": d.event,
        "event_id": d.event_id,
        "resource": d.resource,
        "resource_id": d.resource_id,
        "workspace": d.workspace,
        "rule_id": d.rule_id,
    })
}

/// Renders `template` against `ctx`.
pub fn render(template: &str, ctx: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(&value_text(lookup(ctx, after[..end].trim())));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The value at a dotted path, if any.
pub fn lookup<'v>(ctx: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(ctx, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Value {
        json!({"payload": {"email": "a@b.co", "amount": 42.5, "paid": true,
                           "tags": ["x", "y"], "plan": {"name": "pro"}, "none": null},
               "event": "user.signup"})
    }

    #[test]
    fn renders_paths_of_every_type() {
        let out = render(
            "{{ payload.email }} paid {{payload.amount}} ({{payload.paid}}) on {{payload.plan.name}} \
             [{{payload.tags.1}}] {{payload.tags}} for {{event}}",
            &ctx(),
        );
        assert_eq!(out, "a@b.co paid 42.5 (true) on pro [y] [\"x\",\"y\"] for user.signup");
    }

    #[test]
    fn missing_paths_render_empty() {
        assert_eq!(
            render("[{{payload.company}}|{{payload.none}}|{{}}|{{payload.email.x}}]", &ctx()),
            "[|||]"
        );
    }

    #[test]
    fn incomplete_braces_stay_literal() {
        assert_eq!(render("a {{payload.email", &ctx()), "a {{payload.email");
        assert_eq!(render("} {x} }}{{event}}", &ctx()), "} {x} }}user.signup");
        assert_eq!(render("no placeholders", &ctx()), "no placeholders");
    }

    #[test]
    fn values_are_not_re_expanded() {
        let c = json!({"payload": {"a": "{{payload.b}}", "b": "secret"}});
        assert_eq!(render("{{payload.a}}", &c), "{{payload.b}}");
    }
}

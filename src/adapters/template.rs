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
use serde_json::Value;

/// Where placeholders read their values.
pub trait Vars {
    /// The value at a dotted path, if any.
    fn get(&self, path: &str) -> Option<Value>;

    /// The values at several paths, in their order.
    fn get_all(&self, paths: &[&str]) -> Vec<Option<Value>> {
        paths.iter().map(|p| self.get(p)).collect()
    }
}

impl Vars for Value {
    fn get(&self, path: &str) -> Option<Value> {
        lookup(self, path).cloned()
    }
}

/// The values templates can reach for one delivery. A template's payload
/// placeholders are read from the payload's text in one pass: the payload
/// is never parsed whole (see [`super::payload`]).
#[derive(Debug, Clone, Copy)]
pub struct Context<'d>(&'d Delivery);

/// The values templates can reach for one delivery.
pub fn context(d: &Delivery) -> Context<'_> {
    Context(d)
}

impl Vars for Context<'_> {
    fn get(&self, path: &str) -> Option<Value> {
        if path.is_empty() {
            return None;
        }
        let d = self.0;
        let mut keys = path.split('.');
        let top = match keys.next()? {
            "payload" => return d.payload.lookup(&keys.collect::<Vec<_>>()),
            "event" => Value::String(d.event.clone()),
            "event_id" => Value::String(d.event_id.clone()),
            "resource" => Value::String(d.resource.clone()),
            "resource_id" => d.resource_id.clone().map_or(Value::Null, Value::String),
            "workspace" => Value::String(d.workspace.clone()),
            "rule_id" => Value::String(d.rule_id.clone()),
            _ => return None,
        };
        // Text and null have nothing inside.
        keys.next().is_none().then_some(top)
    }

    fn get_all(&self, paths: &[&str]) -> Vec<Option<Value>> {
        let steps: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
        let in_payload: Vec<(usize, &[&str])> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s[0] == "payload")
            .map(|(i, s)| (i, &s[1..]))
            .collect();
        let wanted: Vec<&[&str]> = in_payload.iter().map(|&(_, rest)| rest).collect();
        let found = self.0.payload.lookup_all(&wanted);
        let mut out: Vec<Option<Value>> = paths.iter().map(|p| self.get_other(p)).collect();
        for ((slot, _), v) in in_payload.iter().zip(found) {
            out[*slot] = v;
        }
        out
    }
}

impl Context<'_> {
    /// [`Vars::get`] for paths outside the payload (`None` for the payload's).
    fn get_other(&self, path: &str) -> Option<Value> {
        let payload = path == "payload" || path.starts_with("payload.");
        (!payload).then(|| self.get(path)).flatten()
    }
}

/// Renders `template` against `ctx`.
pub fn render(template: &str, ctx: &impl Vars) -> String {
    render_escaped(template, ctx, |s| s.to_string())
}

/// An optional field's template rendered against `ctx`; `None` when it is
/// absent or renders blank (a placeholder the event does not fill), so the
/// field falls back to its default rather than going out empty.
pub fn render_filled(template: Option<&String>, ctx: &impl Vars) -> Option<String> {
    template.map(|t| render(t, ctx)).filter(|t| !t.trim().is_empty())
}

/// Renders `template` against `ctx`, passing each substituted value (never
/// the template's own text) through `escape`.
pub fn render_escaped(template: &str, ctx: &impl Vars, escape: impl Fn(&str) -> String) -> String {
    let (pieces, tail) = placeholders(template);
    let paths: Vec<&str> = pieces.iter().map(|&(_, path)| path).collect();
    let values = ctx.get_all(&paths);
    let mut out = String::with_capacity(template.len());
    for ((text, _), v) in pieces.iter().zip(&values) {
        out.push_str(text);
        out.push_str(&escape(&value_text(v.as_ref())));
    }
    out.push_str(tail);
    out
}

/// The template as (literal text, placeholder path) pairs, then the text
/// after the last complete placeholder.
fn placeholders(template: &str) -> (Vec<(&str, &str)>, &str) {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        pieces.push((&rest[..start], after[..end].trim()));
        rest = &after[end + 2..];
    }
    (pieces, rest)
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
    use serde_json::json;

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
    fn a_delivery_renders_as_its_old_whole_value_context_did() {
        let payload = json!({"email": "a@b.co", "n": [1.5, {"k": "v"}], "none": null, "": 1});
        let d = Delivery {
            delivery_id: "dlv".into(),
            attempt: 1,
            event_id: "e1".into(),
            event: "user.signup".into(),
            resource: "contact".into(),
            resource_id: None,
            workspace: "ws".into(),
            created_at_ms: 0,
            rule_id: "r1".into(),
            metadata: serde_json::from_value(json!({"action": "send_email"})).unwrap(),
            payload: payload.clone().into(),
            mapping: Default::default(),
            warnings: Default::default(),
        };
        // The context every attempt used to build, payload tree included.
        let whole = json!({"payload": payload, "event": d.event, "event_id": d.event_id,
            "resource": d.resource, "resource_id": d.resource_id, "workspace": d.workspace,
            "rule_id": d.rule_id});
        let template = "{{payload}}|{{payload.email}}|{{payload.n}}|{{payload.n.0}}|\
            {{payload.n.1.k}}|{{payload.n.2}}|{{payload.none}}|{{payload.}}|{{payload.email.x}}|\
            {{event}}|{{event.x}}|{{event_id}}|{{resource}}|{{resource_id}}|{{resource_id.x}}|\
            {{workspace}}|{{rule_id}}|{{delivery_id}}|{{nope}}|{{}}|{{payload.n.0}}|{{payload.email}}";
        assert_eq!(render(template, &context(&d)), render(template, &whole));
        assert_eq!(
            render(template, &context(&d)),
            "{\"email\":\"a@b.co\",\"n\":[1.5,{\"k\":\"v\"}],\"none\":null,\"\":1}|a@b.co|\
             [1.5,{\"k\":\"v\"}]|1.5|v|||1||user.signup||e1|contact|||ws|r1||||1.5|a@b.co"
        );
    }

    #[test]
    fn values_are_not_re_expanded() {
        let c = json!({"payload": {"a": "{{payload.b}}", "b": "secret"}});
        assert_eq!(render("{{payload.a}}", &c), "{{payload.b}}");
    }
}

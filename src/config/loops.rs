//! Static loop detection: automations whose actions fire each other's triggers.
//!
//! A loop is reported as a warning, not an error: conditions may stop it at
//! run time, and the runtime's depth limit stops it regardless.

use super::automation::{Automation, AutomationAction, Trigger, TriggerFilter, TriggerKind};
use super::diagnostic::{Code, Issue, Path};
use super::validate::Parts;

/// What an action fires: trigger kinds and the names they concern (a tag
/// change is also a `contact_updated` of `tags`, as at run time).
fn fired(action: &AutomationAction) -> Vec<(TriggerKind, &str)> {
    match action {
        AutomationAction::AddTag(t) => {
            vec![(TriggerKind::TagAdded, t), (TriggerKind::ContactUpdated, "tags")]
        }
        AutomationAction::RemoveTag(t) => {
            vec![(TriggerKind::TagRemoved, t), (TriggerKind::ContactUpdated, "tags")]
        }
        AutomationAction::SetField(f) => vec![(TriggerKind::ContactUpdated, field(&f.field))],
        AutomationAction::Enroll(s) => vec![(TriggerKind::SequenceEnrolled, s)],
        AutomationAction::Emit(e) => vec![(TriggerKind::Event, &e.event)],
        AutomationAction::Unenroll(_) | AutomationAction::Notify(_) => Vec::new(),
    }
}

/// `custom_fields.plan` and `plan` name the same field in filters.
fn field(name: &str) -> &str {
    name.strip_prefix("custom_fields.").unwrap_or(name)
}

fn matches(trigger: &Trigger, kind: TriggerKind, name: &str) -> bool {
    match trigger {
        Trigger::Any(k) => *k == kind,
        Trigger::Filtered(f) => match f {
            TriggerFilter::ContactUpdated(fields) => {
                kind == TriggerKind::ContactUpdated && fields.iter().any(|x| field(x) == name)
            }
            TriggerFilter::TagAdded(t) => kind == TriggerKind::TagAdded && t == name,
            TriggerFilter::TagRemoved(t) => kind == TriggerKind::TagRemoved && t == name,
            TriggerFilter::SequenceEnrolled(s) => {
                kind == TriggerKind::SequenceEnrolled && s == name
            }
            TriggerFilter::Event(e) => kind == TriggerKind::Event && e == name,
            TriggerFilter::CustomEvent(_) => false,
        },
    }
}

/// Whether `a`'s actions start `b`. An automation re-started only by its
/// own tag edits is not a loop: the second run's tag actions change nothing
/// and fire nothing.
fn fires(a: &Automation, b: &Automation) -> bool {
    let own_tags =
        |kind, name| std::ptr::eq(a, b) && kind == TriggerKind::ContactUpdated && name == "tags";
    a.actions
        .iter()
        .flat_map(fired)
        .any(|(kind, name)| !own_tags(kind, name) && matches(&b.trigger, kind, name))
}

/// Reports each cycle once, at the trigger of its first automation in file order.
pub fn check(parts: &Parts, out: &mut Vec<Issue>) {
    let autos: Vec<&(usize, Automation)> =
        parts.automations.iter().filter(|(_, a)| a.enabled).collect();
    let edges: Vec<Vec<usize>> = autos
        .iter()
        .map(|(_, a)| (0..autos.len()).filter(|&j| fires(a, &autos[j].1)).collect())
        .collect();
    let mut reported = vec![false; autos.len()];
    for start in 0..autos.len() {
        if reported[start] {
            continue;
        }
        let Some(cycle) = find_cycle(start, &edges) else { continue };
        cycle.iter().for_each(|&i| reported[i] = true);
        let names: Vec<&str> =
            cycle.iter().chain(cycle.first()).map(|&i| autos[i].1.id.as_str()).collect();
        let at = Path::root().key("automations").index(autos[start].0).key("trigger");
        let message = format!(
            "automations can trigger each other in a loop: {}; the runtime stops such chains at its depth limit",
            names.join(" → ")
        );
        out.push(Issue::warning(Code::AutomationLoop, at, message));
    }
}

/// A path from `start` back to itself, if any (depth-first).
fn find_cycle(start: usize, edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut stack = vec![(start, 0usize)];
    let mut on_path = vec![start];
    let mut visited = vec![false; edges.len()];
    visited[start] = true;
    while let Some((node, next)) = stack.pop() {
        let Some(&to) = edges[node].get(next) else {
            on_path.pop();
            continue;
        };
        stack.push((node, next + 1));
        if to == start {
            return Some(on_path);
        }
        if !visited[to] {
            visited[to] = true;
            on_path.push(to);
            stack.push((to, 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::config::{CheckOptions, Source, check_sources};

    fn loops(automations: &str) -> Vec<String> {
        let text = format!(
            "version: 1\nworkspace: {{ id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: t, publishable_key: mesh_pub_t }}\nautomations:\n{automations}"
        );
        let report =
            check_sources(&[Source { name: "t.yaml".into(), text }], CheckOptions::default());
        report
            .diagnostics
            .iter()
            .filter(|d| d.to_string().contains("automation-loop"))
            .map(|d| d.to_string().split("loop: ").nth(1).unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn sees_field_and_tag_loops_but_not_idempotent_self_edits() {
        // `plan` in a filter is the custom field `set_field` writes.
        let field = "  - { id: a, trigger: { contact_updated: [plan] }, actions: [ { set_field: { field: custom_fields.tier, value: x } } ] }\n  - { id: b, trigger: { contact_updated: [tier] }, actions: [ { set_field: { field: custom_fields.plan, value: y } } ] }\n";
        assert_eq!(loops(field), ["a → b → a; the runtime stops such chains at its depth limit"]);
        // Two automations flipping a tag on every update.
        let flip = "  - { id: tag-on, trigger: contact_updated, actions: [ { add_tag: x } ] }\n  - { id: tag-off, trigger: contact_updated, actions: [ { remove_tag: x } ] }\n";
        assert_eq!(loops(flip).len(), 1);
        // Tagging on every update is idempotent: no loop.
        let tag = "  - { id: t, trigger: contact_updated, actions: [ { add_tag: x } ] }\n";
        assert!(loops(tag).is_empty());
    }
}

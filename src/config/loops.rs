//! Static loop detection: automations whose actions fire each other's triggers.
//!
//! A loop is reported as a warning, not an error: conditions may stop it at
//! run time, and the runtime's depth limit stops it regardless.

use super::automation::{Automation, AutomationAction, Trigger, TriggerFilter, TriggerKind};
use super::diagnostic::{Code, Issue, Path};
use super::validate::Parts;

/// What an action fires: a trigger kind and the name it concerns.
fn fired(action: &AutomationAction) -> Option<(TriggerKind, &str)> {
    match action {
        AutomationAction::AddTag(t) => Some((TriggerKind::TagAdded, t)),
        AutomationAction::RemoveTag(t) => Some((TriggerKind::TagRemoved, t)),
        AutomationAction::SetField(f) => Some((TriggerKind::ContactUpdated, &f.field)),
        AutomationAction::Enroll(s) => Some((TriggerKind::SequenceEnrolled, s)),
        AutomationAction::Emit(e) => Some((TriggerKind::Event, &e.event)),
        AutomationAction::Unenroll(_) | AutomationAction::Notify(_) => None,
    }
}

fn matches(trigger: &Trigger, kind: TriggerKind, name: &str) -> bool {
    match trigger {
        Trigger::Any(k) => *k == kind,
        Trigger::Filtered(f) => match f {
            TriggerFilter::ContactUpdated(fields) => {
                kind == TriggerKind::ContactUpdated && fields.iter().any(|x| x == name)
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

fn fires(a: &Automation, b: &Automation) -> bool {
    a.actions.iter().filter_map(fired).any(|(kind, name)| matches(&b.trigger, kind, name))
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

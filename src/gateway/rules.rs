//! Rule matching: O(1) by event type, then the optional filters and CEL.

use crate::config::condition;
use crate::config::model::Rule;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A rule with its compiled condition.
#[derive(Debug)]
pub struct RuleRt {
    /// The rule as configured.
    pub rule: Rule,
    /// The compiled `when`, if any.
    pub condition: Option<cel::Program>,
    /// Set once a type error in `when` has been logged at warn level.
    warned: std::sync::atomic::AtomicBool,
}

/// A workspace's rules, indexed by event type and id.
#[derive(Debug, Default)]
pub struct RuleIndex {
    /// The workspace the rules belong to: a label of their metrics and logs,
    /// so same-named rules of two workspaces are told apart.
    workspace: Arc<str>,
    by_event: HashMap<String, Vec<Arc<RuleRt>>>,
    by_id: HashMap<String, Arc<RuleRt>>,
    ordered: Vec<Arc<RuleRt>>,
}

/// What a rule's `when` sees.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    /// Event type.
    pub event: &'a str,
    /// Resource.
    pub resource: &'a str,
    /// Resource id.
    pub resource_id: Option<&'a str>,
    /// Payload object, raw: it is only parsed when a condition reads it.
    pub payload: &'a serde_json::value::RawValue,
}

impl RuleIndex {
    /// Compiles every rule's condition; a validated config always compiles.
    pub fn build(workspace: &str, rules: &[Rule]) -> Result<Self, String> {
        let mut index = RuleIndex { workspace: workspace.into(), ..RuleIndex::default() };
        for rule in rules {
            let condition = match &rule.when {
                Some(src) => Some(
                    condition::compile(src, condition::RULE_VARIABLES)
                        .map_err(|e| format!("rule `{}`: {e}", rule.id))?,
                ),
                None => None,
            };
            let rt = Arc::new(RuleRt { rule: rule.clone(), condition, warned: Default::default() });
            index.by_id.insert(rule.id.clone(), rt.clone());
            index.ordered.push(rt.clone());
            if rule.enabled {
                index.by_event.entry(rule.event.clone()).or_default().push(rt);
            }
        }
        Ok(index)
    }

    /// A rule by id (enabled or not).
    pub fn get(&self, id: &str) -> Option<&Arc<RuleRt>> {
        self.by_id.get(id)
    }

    /// Every rule in file order.
    pub fn all(&self) -> &[Arc<RuleRt>] {
        &self.ordered
    }

    /// The enabled rules that match an event. A condition that fails to
    /// evaluate (a missing field, a type error) counts as false: the event
    /// is still accepted, it just does not go there. Type errors go to
    /// `errors`, to be reported ([`ConditionError::report`]) once the event
    /// is stored: a replayed event is not evaluated again, as far as the
    /// metrics can tell.
    pub fn matching(
        &self,
        facts: &EventFacts<'_>,
        errors: &mut Vec<ConditionError>,
    ) -> Vec<Arc<RuleRt>> {
        let Some(candidates) = self.by_event.get(facts.event) else { return Vec::new() };
        let mut context: Option<cel::Context<'_, '_>> = None;
        candidates
            .iter()
            .filter(|r| r.rule.resource.as_deref().is_none_or(|x| x == facts.resource))
            .filter(|r| {
                r.rule.resource_id.is_none() || r.rule.resource_id.as_deref() == facts.resource_id
            })
            .filter(|r| match &r.condition {
                None => true,
                Some(program) => {
                    let ctx = context.get_or_insert_with(|| cel_context(facts));
                    evaluate(program, ctx, r).unwrap_or_else(|problem| {
                        let workspace = Arc::clone(&self.workspace);
                        errors.push(ConditionError { rule: Arc::clone(r), workspace, problem });
                        false
                    })
                }
            })
            .cloned()
            .collect()
    }
}

/// A rule's condition that failed on an event for a reason other than a
/// missing field (a bug in the rule).
#[derive(Debug)]
pub struct ConditionError {
    rule: Arc<RuleRt>,
    workspace: Arc<str>,
    /// Value-free ([`verdict`]): it is logged.
    problem: String,
}

impl ConditionError {
    /// Counts it in `meshes_rule_condition_errors_total` and logs it at
    /// warn level once per rule and config load, so a hot rule cannot
    /// flood the log.
    pub fn report(&self) {
        let (rule, workspace) = (self.rule.rule.id.as_str(), &*self.workspace);
        metrics::counter!("meshes_rule_condition_errors_total", "workspace" => workspace.to_string(), "rule" => rule.to_string())
            .increment(1);
        if !self.rule.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(workspace, rule, error = %self.problem, "rule condition failed; treated as false (logged once per rule; see meshes_rule_condition_errors_total)");
        }
    }
}

/// The standard library, built once: `Context::default()` registers every
/// CEL function, which cost ~25 µs per event when done per evaluation.
pub(crate) static ROOT: std::sync::LazyLock<cel::Context<'static, 'static>> =
    std::sync::LazyLock::new(cel::Context::default);

fn cel_context(f: &EventFacts<'_>) -> cel::Context<'static, 'static> {
    let mut ctx = ROOT.new_inner_scope();
    ctx.add_variable_from_value("event", f.event.to_string());
    ctx.add_variable_from_value("resource", f.resource.to_string());
    let rid = f.resource_id.map_or(cel::Value::Null, |r| cel::Value::from(r.to_string()));
    ctx.add_variable_from_value("resource_id", rid);
    // Validated at ingest; parsed here only because a condition needs it.
    let payload = serde_json::from_str::<Value>(f.payload.get()).unwrap_or(Value::Null);
    ctx.add_variable_from_value("payload", json_to_cel(&payload));
    ctx
}

/// JSON to CEL with integers as `int` (`uint` only above `i64::MAX`), so
/// `payload.n % 7 == 3` works as written; serde's mapping makes every
/// non-negative integer a `uint`, which has no overloads with `int` literals.
pub fn json_to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::from(s.clone()),
        Value::Array(items) => {
            cel::Value::List(std::sync::Arc::new(items.iter().map(json_to_cel).collect()))
        }
        Value::Object(map) => {
            let map: std::collections::HashMap<String, cel::Value> =
                map.iter().map(|(k, v)| (k.clone(), json_to_cel(v))).collect();
            cel::Value::Map(map.into())
        }
    }
}

/// Runs a rule's condition: `Ok(true)` only for `true`. A missing field is
/// expected (events differ): false, only logged at debug level. Anything
/// else (a type mismatch, a non-boolean result) is a bug in the rule: its
/// description.
fn evaluate(
    program: &cel::Program,
    ctx: &cel::Context<'_, '_>,
    r: &RuleRt,
) -> Result<bool, String> {
    let result = program.execute(ctx);
    if matches!(result, Err(cel::ExecutionError::NoSuchKey(_))) {
        // Not the key: a computed one (`m[payload.email]`) is payload data.
        let rule = r.rule.id.as_str();
        tracing::debug!(rule, "rule condition reads a missing field; treated as false");
    }
    verdict(result)
}

/// What a condition's result means, for rules, automations and sequences
/// alike: `true`/`false`; a missing field is false (events and contacts
/// differ); anything else is an error that names the CEL types and the
/// kind of failure, never a value (payload or contact data), since
/// condition failures are logged.
pub fn verdict(result: Result<cel::Value, cel::ExecutionError>) -> Result<bool, String> {
    match result {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Err(cel::ExecutionError::NoSuchKey(_)) => Ok(false),
        Ok(other) => Err(format!("returned {}, not a boolean", a(&other))),
        Err(e) => Err(failure(&e)),
    }
}

/// `a string`, `an int`: a value's CEL type with its article.
fn a(v: &cel::Value) -> String {
    let t = v.type_of().to_string();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {t}")
}

/// A CEL execution error without the values the library puts in its
/// messages (`Division by zero of {0:?}`): its kind, and the types,
/// functions and operators involved, which come from the expression.
#[allow(deprecated)]
fn failure(e: &cel::ExecutionError) -> String {
    use cel::ExecutionError as E;
    match e {
        E::InvalidArgumentCount { expected, actual } => {
            format!("invalid argument count: expected {expected}, got {actual}")
        }
        E::UnsupportedTargetType { target } => format!("invalid argument type: {}", a(target)),
        E::NotSupportedAsMethod { method, target } => {
            format!("method '{method}' not supported on {}", a(target))
        }
        E::UnsupportedKeyType(k) => format!("unable to use {} as a map key", a(k)),
        E::UnexpectedType { want, .. } => format!("unexpected type: want '{want}'"),
        E::NoSuchKey(_) => "no such key".into(),
        E::NoSuchOverload(o) => format!(
            "found no matching overload for '{}' applied to ({})",
            o.function(),
            o.argument_types().join(", ")
        ),
        E::UndeclaredReference(name) => format!("undeclared reference to '{name}'"),
        E::MissingArgumentOrTarget => "missing argument or target".into(),
        E::ValuesNotComparable(x, y) => format!("{} can not be compared to {}", a(x), a(y)),
        E::UnsupportedUnaryOperator(op, x) => {
            format!("unsupported unary operator '{op}' on {}", a(x))
        }
        E::UnsupportedBinaryOperator(op, x, y) => {
            format!("unsupported binary operator '{op}' on {} and {}", a(x), a(y))
        }
        E::UnsupportedMapIndex(x) => format!("cannot use {} as a map index", a(x)),
        E::UnsupportedListIndex(x) => format!("cannot use {} as a list index", a(x)),
        E::UnsupportedIndex(x, y) => format!("cannot use {} to index {}", a(x), a(y)),
        E::FunctionError { function, .. } => format!("error executing function '{function}'"),
        E::DivisionByZero(x) => format!("division by zero ({})", a(x)),
        E::RemainderByZero(x) => format!("remainder by zero ({})", a(x)),
        E::Overflow(op, x, y) => format!("overflow from operator '{op}' on {} and {}", a(x), a(y)),
        E::IndexOutOfBounds(_) => "index out of bounds".into(),
        E::DuplicateKey(k) => format!("repeated key ({}) in a map literal", a(k)),
        E::InternalError(_) => "internal error".into(),
        _ => "execution error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Metadata;

    fn rule(id: &str, event: &str, when: Option<&str>) -> Rule {
        let metadata: Metadata =
            serde_json::from_value(serde_json::json!({"action": "log"})).unwrap();
        Rule {
            id: id.into(),
            event: event.into(),
            connection: "c".into(),
            metadata,
            resource: None,
            resource_id: None,
            when: when.map(str::to_string),
            mapping: None,
            enabled: true,
            description: None,
        }
    }

    fn ids(index: &RuleIndex, event: &str, payload: Value) -> Vec<String> {
        let payload = serde_json::value::to_raw_value(&payload).unwrap();
        let facts = EventFacts { event, resource: "global", resource_id: None, payload: &payload };
        let mut errors = Vec::new();
        let ids = index.matching(&facts, &mut errors).iter().map(|r| r.rule.id.clone()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        ids
    }

    #[test]
    fn matches_by_type_filters_and_condition() {
        let mut off = rule("off", "a", None);
        off.enabled = false;
        let mut scoped = rule("scoped", "a", None);
        scoped.resource = Some("invoice".into());
        let rules = vec![
            rule("any", "a", None),
            rule("big", "a", Some("payload.amount > 10")),
            off,
            scoped,
            rule("other", "b", None),
        ];
        let index = RuleIndex::build("ws", &rules).unwrap();
        assert_eq!(ids(&index, "a", serde_json::json!({"amount": 50})), vec!["any", "big"]);
        assert_eq!(ids(&index, "a", serde_json::json!({"amount": 5})), vec!["any"]);
        // Integers are CEL `int`s: arithmetic with literals works.
        let index2 = RuleIndex::build(
            "ws",
            &[rule("mod", "a", Some("payload.n % 7 == 3 && payload.n > 2"))],
        )
        .unwrap();
        assert_eq!(ids(&index2, "a", serde_json::json!({"n": 10})), vec!["mod"]);
        assert!(ids(&index2, "a", serde_json::json!({"n": 11})).is_empty());
        // A missing field makes the condition fail: false, not an error.
        assert_eq!(ids(&index, "a", serde_json::json!({})), vec!["any"]);
        assert!(ids(&index, "zzz", serde_json::json!({})).is_empty());
        assert!(index.get("off").is_some());
    }

    #[test]
    fn condition_errors_are_handed_back_not_counted() {
        let index =
            RuleIndex::build("ws", &[rule("bad", "a", Some("payload.n + 'x' == 1"))]).unwrap();
        let payload = serde_json::value::to_raw_value(&serde_json::json!({"n": 1})).unwrap();
        let facts =
            EventFacts { event: "a", resource: "global", resource_id: None, payload: &payload };
        let mut errors = Vec::new();
        assert!(index.matching(&facts, &mut errors).is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].rule.rule.id, "bad");
        assert!(
            !errors[0].rule.warned.load(std::sync::atomic::Ordering::Relaxed),
            "not yet reported"
        );
    }
}

//! Semantic checks: what the schema cannot see (references between
//! sections, catalog rules, CEL, `${…}`), run on every part that decoded so
//! that one bad rule does not hide the errors of the others.

use super::automation::{Automation, Sequence};
use super::condition;
use super::diagnostic::{Code, Issue, Path, expected_one_of};
use super::duration::Duration;
use super::env::{self, EnvFields};
use super::model::{MachineKey, Metadata, Rule, Scalar, Workspace};
use crate::adapters::ConnectionConfig;
use crate::catalog::{self, Requirement};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

mod automations;
mod keys;
pub(super) mod retention;
mod values;

use automations::{check_automation, check_sequence};

/// The parts of a document that decoded; names are kept even when their
/// body did not, so references to them are not reported twice.
#[derive(Debug, Default)]
pub struct Parts {
    /// The workspace, when it decoded.
    pub workspace: Option<Workspace>,
    /// Machine keys that decoded, with their index.
    pub machine_keys: Vec<(usize, MachineKey)>,
    /// Every connection name, with its config when it decoded.
    pub connections: Vec<(String, Option<ConnectionConfig>)>,
    /// Rules that decoded, with their index.
    pub rules: Vec<(usize, Rule)>,
    /// Automations that decoded, with their index.
    pub automations: Vec<(usize, Automation)>,
    /// Every sequence name, with its body when it decoded.
    pub sequences: Vec<(String, Option<Sequence>)>,
    /// Connection names referenced anywhere, read from the raw document so
    /// that a rule with an unrelated error still counts as a use.
    pub used_connections: HashSet<String>,
    /// Sequence names some `enroll` action names, read the same way.
    pub enrolled: HashSet<String>,
    /// `delivery.retention`, when written and valid.
    pub retention: Option<Duration>,
}

/// Every string value under a key named `key`, at any depth.
fn referenced(v: &Value, key: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(s)) = o.get(key) {
                    out.insert(s.clone());
                }
                stack.extend(o.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}

fn item<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

impl Parts {
    /// Decodes each section item by item.
    pub fn decode(doc: &Value) -> Self {
        let list =
            |k: &str| doc[k].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate();
        let map = |k: &str| doc[k].as_object().into_iter().flatten();
        Parts {
            workspace: item(&doc["workspace"]),
            machine_keys: list("machine_keys").filter_map(|(i, v)| Some((i, item(v)?))).collect(),
            connections: map("connections").map(|(k, v)| (k.clone(), item(v))).collect(),
            rules: list("rules").filter_map(|(i, v)| Some((i, item(v)?))).collect(),
            automations: list("automations").filter_map(|(i, v)| Some((i, item(v)?))).collect(),
            sequences: map("sequences").map(|(k, v)| (k.clone(), item(v))).collect(),
            used_connections: referenced(doc, "connection"),
            enrolled: referenced(&doc["automations"], "enroll"),
            retention: item(&doc["delivery"]["retention"]),
        }
    }

    fn connection(&self, name: &str) -> Option<Option<&ConnectionConfig>> {
        self.connections.iter().find(|(n, _)| n == name).map(|(_, c)| c.as_ref())
    }

    fn has_sequence(&self, name: &str) -> bool {
        self.sequences.iter().any(|(n, _)| n == name)
    }
}

/// Options of the semantic pass.
pub struct Checks<'a> {
    /// Report unset environment variables (`--check-env`).
    pub check_env: bool,
    /// Where variables are read from.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for Checks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks").field("check_env", &self.check_env).finish_non_exhaustive()
    }
}

/// Runs every semantic check on one document's parts.
pub fn check(parts: &Parts, opts: &Checks<'_>) -> Vec<Issue> {
    let mut out = Vec::new();
    check_env_fields(parts, opts, &mut out);
    check_ids(parts, opts, &mut out);
    for (name, conn) in &parts.connections {
        if let Some(conn) = conn {
            let at = Path::root().key("connections").key(name.clone());
            let credentials = conn.check_credentials(&at);
            // A build without its credentials fails for the reason already given.
            if credentials.is_empty() {
                values::check(conn, &at, opts, &mut out);
            }
            out.extend(credentials);
            if let Some(m) = conn.mapping() {
                super::mapping::check(m, &at.key("mapping"), &mut out);
            }
        }
    }
    for (i, rule) in &parts.rules {
        let at = Path::root().key("rules").index(*i);
        check_names(rule, &at, &mut out);
        check_target(parts, &rule.connection, &rule.metadata, &at, &mut out);
        if let Some(when) = &rule.when {
            check_cel(when, condition::RULE_VARIABLES, at.key("when"), &mut out);
        }
        if let Some(m) = &rule.mapping {
            if let Some(Some(conn)) = parts.connection(&rule.connection) {
                super::mapping::check_kind(conn.kind(), &at.key("mapping"), &mut out);
            }
            super::mapping::check(m, &at.key("mapping"), &mut out);
        }
    }
    for (i, automation) in &parts.automations {
        check_automation(parts, automation, &Path::root().key("automations").index(*i), &mut out);
    }
    for (name, seq) in &parts.sequences {
        let Some(seq) = seq else { continue };
        check_sequence(parts, seq, &Path::root().key("sequences").key(name.clone()), &mut out);
    }
    unused(parts, &mut out);
    super::loops::check(parts, &mut out);
    retention::check(parts.retention, &mut out);
    out
}

/// A rule's event type, resource and resource id must be ones ingest can
/// accept, or the rule never fires.
fn check_names(rule: &Rule, at: &Path, out: &mut Vec<Issue>) {
    let names = [("event", Some(&rule.event)), ("resource", rule.resource.as_ref())];
    let names = names.into_iter().chain([("resource_id", rule.resource_id.as_ref())]);
    for (field, value) in names {
        let Some(value) = value else { continue };
        if let Some(problem) = super::model::name_problem(value) {
            let message = format!("{value:?} {problem} (no event could ever match)");
            out.push(Issue::error(Code::InvalidValue, at.key(field), message));
        }
    }
}

fn check_env_fields(parts: &Parts, opts: &Checks<'_>, out: &mut Vec<Issue>) {
    let mut fields = Vec::new();
    let root = Path::root();
    if let Some(ws) = &parts.workspace {
        ws.publishable_key.env_fields(&root.key("workspace").key("publishable_key"), &mut fields);
    }
    for (i, key) in &parts.machine_keys {
        let at = root.key("machine_keys").index(*i);
        key.access_key.env_fields(&at.key("access_key"), &mut fields);
        key.secret.env_fields(&at.key("secret"), &mut fields);
    }
    for (name, conn) in &parts.connections {
        conn.env_fields(&root.key("connections").key(name.clone()), &mut fields);
    }
    for f in fields {
        if let Err(e) = env::parse(f.template) {
            out.push(Issue::error(
                Code::InvalidEnvRef,
                f.path,
                format!("{} (column {} of the value)", e.message, e.offset + 1),
            ));
            continue;
        }
        if f.secret && env::Secret::new(f.template).is_literal() {
            out.push(Issue::warning(
                Code::LiteralSecret,
                f.path.clone(),
                "credential written in the file (as text or as a `${VAR:-default}`): expected a reference such as `${API_KEY}` so the value comes from the environment, not git",
            ));
        }
        if opts.check_env {
            for var in env::variables(f.template) {
                let state = match (opts.lookup)(var) {
                    None => "is not set",
                    Some(v) if v.is_empty() => "is set but empty",
                    Some(_) => continue,
                };
                let message =
                    format!("environment variable `{var}` {state} (and has no `:-default`)");
                out.push(Issue::error(Code::UnsetEnv, f.path.clone(), message));
            }
        }
    }
}

fn check_ids(parts: &Parts, opts: &Checks<'_>, out: &mut Vec<Issue>) {
    let rules = parts.rules.iter().map(|(i, r)| (*i, r.id.clone()));
    duplicates("rules", "id", "rule id `{}`", rules, out);
    let autos = parts.automations.iter().map(|(i, a)| (*i, a.id.clone()));
    duplicates("automations", "id", "automation id `{}`", autos, out);
    keys::check(parts, opts, out);
}

/// `what` names the value; a `{}` in it is replaced by the value itself.
fn duplicates(
    section: &str,
    field: &str,
    what: &str,
    items: impl Iterator<Item = (usize, String)>,
    out: &mut Vec<Issue>,
) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, id) in items {
        match seen.get(&id) {
            Some(first) => out.push(Issue::error(
                Code::DuplicateId,
                Path::root().key(section).index(i).key(field),
                format!(
                    "duplicate {}: already used by {section}[{first}]; expected unique values",
                    what.replace("{}", &id)
                ),
            )),
            None => {
                seen.insert(id, i);
            }
        }
    }
}

/// Checks a connection reference plus action and metadata (rules, notify, sequence steps).
fn check_target(parts: &Parts, connection: &str, meta: &Metadata, at: &Path, out: &mut Vec<Issue>) {
    let meta_at = at.key("metadata");
    let conn = match parts.connection(connection) {
        Some(Some(conn)) => conn,
        found => {
            if found.is_none() {
                let names = parts.connections.iter().map(|(n, _)| n.as_str());
                let message = format!(
                    "unknown connection `{connection}`, {}",
                    expected_one_of(connection, names)
                );
                out.push(Issue::error(Code::UnknownConnection, at.key("connection"), message));
            }
            // Without a usable connection, the action can still be checked against every integration.
            let all = catalog::all_action_names();
            if !all.contains(&meta.action.as_str()) {
                let message = format!(
                    "unknown action `{}`, {}",
                    meta.action,
                    expected_one_of(&meta.action, all)
                );
                out.push(Issue::error(Code::UnknownAction, meta_at.key("action"), message));
            }
            return;
        }
    };
    let Some(integration) = catalog::integration(conn.kind()) else { return };
    let Some(action) = integration.action(&meta.action) else {
        let message = format!(
            "connection `{connection}` ({}) has no action `{}`, {}",
            conn.kind(),
            meta.action,
            expected_one_of(&meta.action, integration.action_names())
        );
        return out.push(Issue::error(Code::UnknownAction, meta_at.key("action"), message));
    };
    check_metadata(action, (connection, conn), meta, &meta_at, out);
}

fn check_metadata(
    action: &catalog::Action,
    (name, conn): (&str, &ConnectionConfig),
    meta: &Metadata,
    at: &Path,
    out: &mut Vec<Issue>,
) {
    let written = written_fields(meta);
    let present: Vec<&str> = written.iter().map(|(name, _)| *name).collect();
    let blank = |name: &str| written.iter().any(|(n, text)| *n == name && text.trim().is_empty());
    for field in action.metadata {
        let (needed, or_connection) = match field.requirement {
            Requirement::Required => (true, false),
            Requirement::RequiredInBotMode => (conn.bot_mode(), false),
            Requirement::RequiredUnlessConnectionSets => (!conn.sets_default(field.name), true),
            Requirement::Optional => (false, false),
        };
        let what = field.description.to_lowercase();
        if needed && !present.contains(&field.name) {
            let also = if or_connection {
                format!(" (or `{}` on connection `{name}`)", field.name)
            } else {
                String::new()
            };
            let message =
                format!("action `{}` needs `metadata.{}`{also}: {what}", action.name, field.name);
            out.push(Issue::error(Code::MissingMetadata, at.clone(), message));
        } else if (needed || or_connection) && blank(field.name) {
            // A blank rule value would replace the connection's default too.
            // Every delivery would fail for good (the adapters treat blank as missing).
            let message = format!(
                "`metadata.{}` is empty; action `{}` needs it: {what}",
                field.name, action.name
            );
            out.push(Issue::error(Code::MissingMetadata, at.key(field.name), message));
        }
    }
    for name in present {
        if !action.metadata.iter().any(|f| f.name == name) {
            let message = format!(
                "action `{}` does not use `{name}`; it reads: {}",
                action.name,
                read_list(action)
            );
            out.push(Issue::warning(Code::UnusedMetadata, at.key(name), message).at_key());
        }
    }
}

fn read_list(action: &catalog::Action) -> String {
    if action.metadata.is_empty() {
        return "nothing besides `action`".to_string();
    }
    action.metadata.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", ")
}

/// The metadata fields written, with their text.
fn written_fields(m: &Metadata) -> Vec<(&'static str, String)> {
    let set = [
        ("id", m.id.as_ref().map(Scalar::to_text)),
        ("value", m.value.as_ref().map(Scalar::to_text)),
        ("subject", m.subject.clone()),
        ("from", m.from.clone()),
        ("body", m.body.clone()),
        ("template", m.template.clone()),
        ("title", m.title.clone()),
        ("event_name_override", m.event_name_override.clone()),
    ];
    set.into_iter().filter_map(|(name, text)| Some((name, text?))).collect()
}

fn check_cel(source: &str, vars: &[&str], at: Path, out: &mut Vec<Issue>) {
    if let Err(message) = condition::compile(source, vars) {
        out.push(Issue::error(Code::InvalidCel, at, message));
    }
}

fn unused(parts: &Parts, out: &mut Vec<Issue>) {
    for (name, _) in &parts.connections {
        if !parts.used_connections.contains(name) {
            out.push(
                Issue::warning(
                    Code::UnusedConnection,
                    Path::root().key("connections").key(name.clone()),
                    format!("connection `{name}` is not used by any rule, automation or sequence"),
                )
                .at_key(),
            );
        }
    }
    for (name, _) in &parts.sequences {
        if !parts.enrolled.contains(name) {
            out.push(
                Issue::warning(
                    Code::UnusedSequence,
                    Path::root().key("sequences").key(name.clone()),
                    format!(
                        "sequence `{name}` is never entered: no automation has `enroll: {name}`"
                    ),
                )
                .at_key(),
            );
        }
    }
}

//! The config in force: workspaces with resolved secrets, built adapters,
//! rule indexes and credentials. Built from validated files, then swapped in
//! atomically (`ArcSwap`); requests and attempts read whichever is current.

use super::rules::RuleIndex;
use crate::adapters::adapter::Adapter;
use crate::adapters::token_store::TokenStore;
use crate::adapters::{BuildError, ConnectionConfig, Lookup};
use crate::api::auth::{KeyRing, MachineCredential};
use crate::config::model::{ConfigFile, DeliverySettings, RetryPolicy};
use crate::config::{Source, env};
use crate::delivery::lane::LaneSettings;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A connection ready to deliver.
#[derive(Debug)]
pub struct ConnectionRt {
    /// Name in the config.
    pub name: String,
    /// `<workspace>/<name>`: its due-index partition and lane.
    pub conn_key: String,
    /// The config as written (templates, not secrets) for the API.
    pub config: ConnectionConfig,
    /// The adapter (secrets resolved inside).
    pub adapter: Arc<dyn Adapter>,
    /// Concurrency, rate limit, breaker.
    pub lane: LaneSettings,
    /// Attempt timeout.
    pub timeout: Duration,
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Live action data (`GET /connections/{id}/actions`), kept for a TTL;
    /// a reload builds a new connection, so changed credentials refetch.
    pub actions: crate::adapters::discover::Cache,
}

/// A workspace in force.
#[derive(Debug)]
pub struct WorkspaceRt {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Connections by name.
    pub connections: HashMap<String, Arc<ConnectionRt>>,
    /// Rules.
    pub rules: RuleIndex,
    /// Automations and sequences.
    pub automations: crate::automations::AutomationIndex,
    /// The parsed file (for the read-only config API).
    pub config: ConfigFile,
}

/// Everything a request or attempt needs from the config.
#[derive(Debug)]
pub struct Runtime {
    /// Increments with each successful load.
    pub version: u64,
    /// SHA-256 of the files' contents.
    pub hash: String,
    /// When it was loaded (Unix ms).
    pub loaded_at: u64,
    /// When it was put in force, on tokio's monotonic clock: a step of the
    /// wall clock must not stretch or skip its cancellation grace
    /// ([`crate::delivery::route::CANCEL_GRACE`]), and tests drive it with
    /// tokio's paused clock. Set when built (the startup config is in force
    /// from then on) and again when a reload swaps it in.
    pub applied: tokio::time::Instant,
    /// Workspaces by id.
    pub workspaces: HashMap<String, Arc<WorkspaceRt>>,
    /// Credentials.
    pub keys: KeyRing,
    /// `(workspace, sequence)` → steps it had in the config before this
    /// one, for each sequence this one has fewer steps of (or lacks). Empty
    /// for the startup config; filled when a reload puts this one in force.
    /// Only these hold an enrolment that runs out of steps in the grace.
    pub shortened: HashMap<(String, String), usize>,
}

/// Where a delivery goes: a rule's, or an automation's or sequence step's
/// (their delivery ids start with `@`, which rule ids cannot).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Connection name.
    pub connection: &'a str,
    /// Action and metadata.
    pub metadata: &'a crate::config::model::Metadata,
    /// The rule's own field mapping (automations use the connection's).
    pub mapping: Option<&'a crate::config::mapping::Mapping>,
    /// False for a disabled rule.
    pub enabled: bool,
}

impl WorkspaceRt {
    /// The target of a delivery id, as the config in force has it.
    pub fn target(&self, rule_id: &str) -> Option<Target<'_>> {
        if rule_id.starts_with('@') {
            let (connection, metadata) = self.automations.target(rule_id)?;
            return Some(Target { connection, metadata, mapping: None, enabled: true });
        }
        let r = &self.rules.get(rule_id)?.rule;
        Some(Target {
            connection: &r.connection,
            metadata: &r.metadata,
            mapping: r.mapping.as_ref(),
            enabled: r.enabled,
        })
    }
}

impl Runtime {
    /// Fills [`Runtime::shortened`] for this config put in force after
    /// `before`: its own predecessor, never an older one, so what holds an
    /// enrolment does not depend on when the sequence worker last looked.
    pub fn note_shortened(&mut self, before: &Runtime) {
        let mut shortened = HashMap::new();
        for (id, old) in &before.workspaces {
            let now = self.workspaces.get(id).map(|w| &w.automations);
            for (name, steps) in old.automations.sequence_lengths() {
                let kept = now.and_then(|a| a.sequence(name)).map_or(0, |s| s.sequence.steps.len());
                if kept < steps {
                    shortened.insert((id.clone(), name.to_string()), steps);
                }
            }
        }
        self.shortened = shortened;
    }

    /// A workspace by id.
    pub fn workspace(&self, id: &str) -> Option<&Arc<WorkspaceRt>> {
        self.workspaces.get(id)
    }
    /// Every connection of every workspace.
    pub fn connections(&self) -> impl Iterator<Item = &Arc<ConnectionRt>> {
        self.workspaces.values().flat_map(|w| w.connections.values())
    }
}

/// Hashes the sources (the `/readyz` config hash).
pub fn content_hash(sources: &[Source]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.name.as_bytes());
        h.update([0]);
        h.update(s.text.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A runtime from one config text that must be valid, for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn from_text(text: String) -> Runtime {
    let report = crate::config::check_sources(
        &[Source { name: "t.yaml".into(), text }],
        crate::config::CheckOptions::default(),
    );
    assert_eq!(report.errors(), 0, "{:?}", report.diagnostics);
    let client = reqwest::Client::new();
    build(&report.configs, 1, "h".into(), 0, &|_| None, &client, None).unwrap()
}

/// Builds a runtime from validated configs; every problem is collected
/// (unset variables, unusable values), none includes a secret.
pub fn build(
    configs: &[(String, ConfigFile)],
    version: u64,
    hash: String,
    loaded_at: u64,
    lookup: Lookup<'_>,
    client: &reqwest::Client,
    tokens: Option<&Arc<TokenStore>>,
) -> Result<Runtime, Vec<String>> {
    let mut errors = Vec::new();
    let mut workspaces = HashMap::new();
    let mut publishable = Vec::new();
    let mut machine = Vec::new();
    for (file, cfg) in configs {
        let ws = &cfg.workspace;
        let mut resolve = |field: &str, template: &str| match env::resolve(template, lookup) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(format!("{file}: {field}: {e}"));
                None
            }
        };
        if let Some(key) = resolve("workspace.publishable_key", &ws.publishable_key.0) {
            publishable.push((key, ws.id.clone()));
        }
        machine.extend(machine_keys(file, cfg, lookup));
        match build_workspace(file, cfg, lookup, client, tokens) {
            Ok(w) => {
                workspaces.insert(ws.id.clone(), Arc::new(w));
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Keys that would shadow each other fail the build, so a reload to them
    // is rejected and serve does not start.
    let keys = KeyRing::new(publishable, machine).map_err(|e| vec![e.to_string()])?;
    let applied = tokio::time::Instant::now();
    let shortened = HashMap::new();
    Ok(Runtime { version, hash, loaded_at, applied, workspaces, keys, shortened })
}

/// The file's machine keys whose variables are set. A key whose secret is
/// not set is disabled, not fatal: it fails closed (nobody can sign with
/// it) and ingest keeps working. Surrounding whitespace is dropped, as from
/// provider credentials: a secret read from a file or a `kubectl` secret
/// often ends in a newline that no client signs with.
fn machine_keys(file: &str, cfg: &ConfigFile, lookup: Lookup<'_>) -> Vec<MachineCredential> {
    let mut keys = Vec::new();
    for (i, k) in cfg.machine_keys.iter().enumerate() {
        let access = env::resolve(&k.access_key.0, lookup)
            .map(|a| crate::config::model::key_text(&a).to_string());
        let secret = env::resolve(k.secret.template(), lookup).map(|s| {
            if s.trim().len() != s.len() {
                tracing::warn!(file = %file, key = i, "machine key secret: surrounding whitespace removed");
            }
            s.trim().to_string()
        });
        match (access, secret) {
            (Ok(access_key), Ok(secret)) if !secret.is_empty() => keys.push(MachineCredential {
                access_key,
                secret: secret.into_bytes(),
                workspace: cfg.workspace.id.clone(),
            }),
            (_, Err(e)) | (Err(e), _) => {
                tracing::warn!(file = %file, key = i, error = %e, "machine key disabled: its variables are not set");
            }
            _ => tracing::warn!(file = %file, key = i, "machine key disabled: its secret is empty"),
        }
    }
    keys
}

fn build_workspace(
    file: &str,
    cfg: &ConfigFile,
    lookup: Lookup<'_>,
    client: &reqwest::Client,
    tokens: Option<&Arc<TokenStore>>,
) -> Result<WorkspaceRt, Vec<String>> {
    let mut errors = Vec::new();
    let mut connections = HashMap::new();
    for (name, conn) in &cfg.connections {
        // Keyed like the connection's lane: a rename starts from the config's token.
        let slot = tokens.map(|t| t.slot(format!("{}/{name}", cfg.workspace.id)));
        match conn.build_with(lookup, client, slot) {
            Ok(adapter) => {
                let rt = connection_rt(&cfg.workspace.id, name, conn, adapter, &cfg.delivery);
                connections.insert(name.clone(), Arc::new(rt));
            }
            Err(e) => errors.push(describe(file, name, &e)),
        }
    }
    let rules =
        RuleIndex::build(&cfg.workspace.id, &cfg.rules).map_err(|e| vec![format!("{file}: {e}")]);
    let automations =
        crate::automations::AutomationIndex::build(cfg).map_err(|e| vec![format!("{file}: {e}")]);
    let rules = rules.and_then(|r| automations.map(|a| (r, a)));
    match (rules, errors.is_empty()) {
        (Ok((rules, automations)), true) => Ok(WorkspaceRt {
            automations,
            id: cfg.workspace.id.clone(),
            name: cfg.workspace.name.clone(),
            file: file.to_string(),
            connections,
            rules,
            config: cfg.clone(),
        }),
        (Ok(_), false) => Err(errors),
        (Err(mut e), _) => {
            errors.append(&mut e);
            Err(errors)
        }
    }
}

fn describe(file: &str, name: &str, e: &BuildError) -> String {
    format!("{file}: connections.{name}: {e}")
}

fn connection_rt(
    ws: &str,
    name: &str,
    conn: &ConnectionConfig,
    adapter: Arc<dyn Adapter>,
    d: &DeliverySettings,
) -> ConnectionRt {
    let o = conn.delivery().cloned().unwrap_or_default();
    let r = o.retry.unwrap_or_default();
    // Provider defaults (Resend 2/s, Mailchimp 10 at once) unless the connection overrides them.
    let (concurrency, rate_limit) = conn.effective_limits(d.concurrency);
    let retry = RetryPolicy {
        schedule: r.schedule.unwrap_or_else(|| d.retry.schedule.clone()),
        jitter: r.jitter.unwrap_or(d.retry.jitter),
        retry_on: r.retry_on.unwrap_or_else(|| d.retry.retry_on.clone()),
        max_retry_after: r.max_retry_after.unwrap_or(d.retry.max_retry_after),
        max_deferrals: r.max_deferrals.unwrap_or(d.retry.max_deferrals),
    };
    ConnectionRt {
        name: name.to_string(),
        conn_key: format!("{ws}/{name}"),
        config: conn.clone(),
        adapter,
        lane: LaneSettings {
            concurrency,
            rate_limit,
            breaker: o.circuit_breaker.unwrap_or_else(|| d.circuit_breaker.clone()),
        },
        timeout: o.timeout.unwrap_or(d.timeout).get(),
        retry,
        actions: crate::adapters::discover::Cache::default(),
    }
}

//! The JSON bodies of the resource routes (integrations, connections,
//! rules, workspaces) and of `/healthz` and `/readyz`, for the OpenAPI
//! document; see [`super::schemas`] for how they are kept exact.

// Fields are read by schemars only, through the derives.
#![allow(dead_code)]

use super::schemas::Timestamp;
use crate::catalog::{Action, AuthField};
use crate::config::model::Rule;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// An integration of the catalog.
#[derive(Serialize, JsonSchema)]
pub struct Integration {
    /// The connection `type:` value.
    #[serde(rename = "type")]
    pub kind: String,
    /// Display name.
    pub name: String,
    /// How it authenticates, in words.
    pub auth: String,
    /// Its connection settings.
    pub fields: Vec<AuthField>,
    /// What rules can ask it to do.
    pub actions: Vec<Action>,
}

/// A connection of `meshes.yaml`, credentials never shown.
#[derive(Serialize, JsonSchema)]
pub struct Connection {
    /// Its name (the key under `connections:`).
    pub id: String,
    /// Same as `id`.
    pub name: String,
    /// Integration type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The settings as configured (see `ConnectionConfig` in
    /// `meshes.schema.json`); each credential is replaced by its `${VAR}`
    /// reference, or by `[redacted]` when it was written literally; so is a
    /// webhook header value that reads no environment variable.
    pub settings: Map<String, Value>,
}

/// Live action data of one connection.
#[derive(Serialize, JsonSchema)]
pub struct ActionsFound {
    /// The connection's name.
    pub connection: String,
    /// Its integration type.
    #[serde(rename = "type")]
    pub kind: String,
    /// How many options.
    pub count: usize,
    /// Every option, all provider pages fetched.
    pub records: Vec<crate::adapters::discover::ActionOption>,
}

/// `{connection}`.
#[derive(Serialize, JsonSchema)]
pub struct ConnectionFound {
    /// The connection.
    pub connection: Connection,
}

/// `{rule}`: as configured, with `enabled` always present.
#[derive(Serialize, JsonSchema)]
pub struct RuleFound {
    /// The rule.
    pub rule: Rule,
}

/// `{workspace}`.
#[derive(Serialize, JsonSchema)]
pub struct WorkspaceFound {
    /// The caller's workspace.
    pub workspace: Workspace,
}

/// A workspace and what it configures.
#[derive(Serialize, JsonSchema)]
pub struct Workspace {
    /// Workspace id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Connections configured.
    pub connections: u64,
    /// Rules configured.
    pub rules: u64,
    /// Automations configured.
    pub automations: u64,
    /// Sequences configured.
    pub sequences: u64,
}

/// Liveness.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `ok`, or `starting` while the config loads and the store opens.
    pub status: Liveness,
}

/// Liveness state.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Serving.
    Ok,
    /// Loading the config and opening the store (a redb repair after an
    /// unclean stop can take minutes): every other route answers 503 with
    /// `Retry-After` meanwhile.
    Starting,
}

/// `ok`.
#[derive(Serialize, JsonSchema)]
pub enum OkStatus {
    /// The only value.
    #[serde(rename = "ok")]
    Ok,
}

/// Readiness.
#[derive(Serialize, JsonSchema)]
pub struct Ready {
    /// `ready`, or `unavailable` when the store does not answer (503).
    pub status: Readiness,
    /// The config in force.
    pub config: ConfigInfo,
    /// The last reload that failed (the previous config kept serving), if any.
    pub last_reload_error: Option<ReloadError>,
    /// What reloads the config: `file changes and SIGHUP`, or `SIGHUP only`
    /// (`--no-watch`, or the file watcher could not start: see the log).
    pub config_reloads_on: String,
    /// The store.
    pub store: StoreHealth,
    /// Deliveries dispatched whose outcome is not yet written: waiting for
    /// their connection's rate limit, sending, or answered and waiting for
    /// the commit (as `meshes_deliveries_in_flight`).
    pub in_flight: u64,
}

/// Readiness state.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Serving.
    Ready,
    /// The store does not answer.
    Unavailable,
}

/// The config in force.
#[derive(Serialize, JsonSchema)]
pub struct ConfigInfo {
    /// Increments on every successful reload.
    pub version: u64,
    /// Hash of the config files.
    pub hash: String,
    /// When it was loaded.
    pub loaded_at: Timestamp,
    /// Workspaces configured.
    pub workspaces: u64,
}

/// A failed reload.
#[derive(Serialize, JsonSchema)]
pub struct ReloadError {
    /// When.
    pub at: Timestamp,
    /// What was wrong, one line each.
    pub errors: Vec<String>,
}

/// The store's state.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StoreHealth {
    /// It answers.
    Ok {
        /// Always `ok`.
        status: OkStatus,
        /// Deliveries waiting.
        pending_deliveries: u64,
    },
    /// It does not.
    Error {
        /// Always `error`.
        status: StoreFailed,
        /// Why.
        error: String,
    },
}

/// `error`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailed {
    /// The only value.
    Error,
}

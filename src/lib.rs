//! # meshes
//!
//! A self-hosted, GitOps event gateway: teams commit a `meshes.yaml` of
//! connections, rules and automations; `meshes validate` checks it in CI and
//! `meshes serve` delivers events to webhooks and SaaS tools with durable,
//! observable retries.
//!
//! # Layout
//!
//! - [`cli`]: the `meshes` command line (`validate`, `serve`, `actions`,
//!   `bench`, `schema`, `openapi`, `token`); the only place that uses
//!   `anyhow` and decides exit codes.
//! - [`config`]: parse → validate → build for `meshes.yaml`.
//!   - [`config::model`], [`config::delivery`], [`config::automation`]: the
//!     serde/schemars types of the file (`delivery:` sections in their own
//!     module), every field documented (the docs become the schema).
//!   - [`config::env`], [`config::duration`]: `${VAR}` strings, secrets that
//!     never print, `5m`-style durations.
//!   - [`config::load`]: files and directories; [`config::spans`]: line and
//!     column of every YAML node.
//!   - [`config::schema`]: the generated JSON Schema and readable schema errors.
//!   - [`config::validate`], [`config::condition`]: semantic checks (references,
//!     catalog, CEL, env) collected all at once.
//! - [`adapters`]: one file per integration; [`adapters::ConnectionConfig`] is
//!   the closed enum tagged by `type:`.
//! - [`automations`]: contacts, triggers, CEL conditions, actions and
//!   durable sequences, run inside the store's writer transaction.
//! - [`bench`](mod@bench): `meshes bench …`, reproducible benchmarks run as separate
//!   processes against a ceiling server on the same machine (BENCHMARKS.md).
//! - [`catalog`]: every integration's actions and the metadata each needs:
//!   the one source for the schema, `validate` and the integrations API.
//! - [`gateway`]: the composition root (`gateway::start` takes a listener and
//!   a shutdown token), the runtime built from a config, hot reload, and
//!   retention (background pruning that follows the config in force).
//! - [`server`]: the hyper-util accept loop (header and body timeouts,
//!   connection cap, head size and a shared budget of body bytes, graceful
//!   drain); [`api`]: the axum routes, auth, the one
//!   error-to-HTTP mapping, the generated OpenAPI document, and `api::hot`,
//!   which serves the two ingest POSTs without the router.
//! - [`store`]: the redb outbox (events, deliveries, due-time index, contacts),
//!   its single group-commit writer thread, and `store::json`, the
//!   hand-written (serde-identical) JSON of the records every ingest writes.
//! - [`delivery`]: the scheduler, per-connection lanes (concurrency, rate
//!   limit, circuit breaker), retries and attempts.
//! - [`clock`]: wall-clock milliseconds that follow tokio's (pausable) clock.

pub mod adapters;
pub mod api;
pub mod automations;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod gateway;
pub mod server;
pub mod store;

//! HTTP API under `/api/v1` (wire-compatible with Meshes) and the ops routes.

pub mod auth;
pub mod error;

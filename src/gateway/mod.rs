//! The running gateway: the config in force, rule matching, reloads, and
//! [`start`], which wires store, delivery engine, API and watcher together.

mod clock_check;
mod prune;
pub mod reload;
pub mod rules;
pub mod runtime;
mod start;
mod starting;

pub use start::{Gateway, GatewayError, GatewayOptions, start};

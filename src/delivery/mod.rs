//! Delivery: the scheduler over the due index, per-connection lanes and attempts.

pub mod cleanup;
pub mod engine;
pub mod lane;
pub mod local;
pub mod observe;
mod panicked;
pub mod retry;
pub mod route;
mod worker;

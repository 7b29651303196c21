//! The conformance suite every backend runs, and the broker harnesses backend tests
//! start their private brokers with.
//!
//! A backend's `tests/conformance.rs` is one line plus a factory:
//!
//! ```ignore
//! async fn bus() -> pubsub_core::PubSub {
//!     pubsub_local::LocalBackend::new().into()
//! }
//! pubsub_core::conformance_tests!(bus);
//! ```
//!
//! Each case is an async function in [`cases`] that takes the factory, builds the
//! buses it needs and uses topic names of its own, so cases may share one broker.

pub mod cases;
pub mod rabbitmq_server;
pub mod redis_server;
mod support;

pub use support::{unique, BusFactory};

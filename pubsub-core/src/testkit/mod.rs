//! The conformance suite every backend runs.
//!
//! A backend's `tests/conformance.rs` (declared with `harness = false`) is a factory
//! and a `main`:
//!
//! ```no_run
//! async fn bus() -> pubsub_core::PubSub {
//!     pubsub_local::LocalBackend::new().into()
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     pubsub_core::testkit::Conformance::new().backend("local", bus).run()
//! }
//! ```
//!
//! Each case is an async function in [`cases`] that takes the factory, builds the
//! buses it needs and uses topic names of its own, so cases may share one broker.
//! Cases are registered with what they need ([`Need`]); those a backend's
//! [`Capabilities`](crate::Capabilities) rule out are reported as ignored.

pub mod cases;
#[cfg(feature = "otel")]
pub mod spans;
mod suite;
pub mod support;

pub use suite::{Case, Conformance, Need};
pub use support::{unique, BusFactory};

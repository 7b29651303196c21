//! The in-process backend: a bus inside one process, on tokio.
//!
//! It is the embedded default, the reference semantics the conformance suite is
//! written against, and what applications swap in for their tests.
//!
//! - **Broadcast** subscriptions each read a bounded [ring](pubsub_core::ring): the
//!   publisher never waits, and a subscriber that falls more than its buffer behind
//!   gets a [`Signal::Lagged`](pubsub_core::Signal::Lagged) with the count it missed,
//!   then goes on. Each topic's route lists its subscriptions, so a publish walks no
//!   map and matches no pattern.
//! - **Groups** are bounded priority queues with acks that push work to their members
//!   in turn: each message goes to one member, a nack with requeue (or a delivery
//!   dropped unsettled) delivers it again with its attempt counted, and waiting
//!   messages go out highest priority first.
//!
//! ```
//! use pubsub_core::{PubSub, Received};
//! use pubsub_local::LocalBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus: PubSub = LocalBackend::new().into();
//! let mut sub = bus.topic("local_sync.*").subscribe().await?;
//! bus.topic("local_sync.alice").publish(&serde_json::json!({"username": "alice"})).await?;
//! let Some(Received::Message(delivery)) = sub.next().await else { panic!() };
//! assert_eq!(delivery.topic(), "local_sync.alice");
//! # Ok(())
//! # }
//! ```

mod backend;
mod group;
mod routes;

pub use backend::{LocalBackend, LocalOptions};

//! The in-process backend: a bus inside one process, on tokio channels.
//!
//! It is the embedded default, the reference semantics the conformance suite is
//! written against, and what applications swap in for their tests.
//!
//! - **Broadcast** subscriptions share one `tokio::sync::broadcast` channel per name
//!   (or pattern): the publisher never waits, and a subscriber that falls more than
//!   its buffer behind gets an [`Error::Lagged`](pubsub_core::Error::Lagged) item with
//!   the count it missed, then goes on.
//! - **Groups** are bounded priority queues with acks: each message goes to one
//!   member, a nack with requeue (or a member dropped while holding messages) delivers
//!   it again with its attempt counted, and waiting messages go out highest priority
//!   first.
//!
//! ```
//! use futures::StreamExt;
//! use pubsub_core::PubSub;
//! use pubsub_local::LocalBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus: PubSub = LocalBackend::new().into();
//! let mut sub = bus.topic("local_sync.*").subscribe().await?;
//! bus.topic("local_sync.alice").publish(&serde_json::json!({"username": "alice"})).await?;
//! assert_eq!(sub.next().await.unwrap()?.topic(), "local_sync.alice");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod backend;
mod broadcast;
mod group;

pub use backend::{LocalBackend, LocalOptions};

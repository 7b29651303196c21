//! One `topic(name).publish/subscribe` API over many brokers.
//!
//! This crate holds the public API ([`PubSub`], [`Topic`], [`Message`], [`Delivery`],
//! [`Subscription`], [`Error`]), the [`Backend`] trait brokers implement, the topic
//! naming rules with their one [`Pattern`] matcher, request/reply, callback handlers,
//! typed [`Event`]s, and, behind the `testkit` feature, the conformance suite that
//! every backend runs.
//!
//! ```
//! use std::time::Duration;
//! use pubsub_core::{PubSub, Received};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus: PubSub = pubsub_local::LocalBackend::new().into();
//!
//! // Broadcast with a pattern.
//! let mut tasks = bus.topic("task.*.#").subscribe().await?;
//! bus.topic("task.42.done").publish(&"finished").await?;
//! if let Some(Received::Message(task)) = tasks.next().await {
//!     assert_eq!(task.topic(), "task.42.done");
//! }
//!
//! // Request/reply.
//! let mut echo = bus.topic("send.echo.request").subscribe().await?;
//! tokio::spawn(async move {
//!     while let Some(received) = echo.next().await {
//!         let Received::Message(request) = received else { continue };
//!         let text: String = request.json().unwrap_or_default();
//!         let _ = request.reply(&format!("echo: {text}")).await;
//!     }
//! });
//! let reply: String = bus.topic("send.echo.request").request(&"hi", Duration::from_secs(5)).await?;
//! assert_eq!(reply, "echo: hi");
//! # Ok(())
//! # }
//! ```
//!
//! Backends implement [`backend::Backend`]; that module is the implementor's side,
//! kept apart from what applications use.
//!
//! Behind the `otel` and `metrics` features the bus makes OpenTelemetry spans, carries
//! W3C trace context in message headers and counts what it does, for every backend:
//! see [`telemetry`].

pub mod backend;
pub mod backoff;
mod bus;
mod delivery;
mod error;
mod event;
mod handler;
mod header;
mod message;
pub mod name;
mod prefixed;
mod received;
mod request;
pub mod ring;
mod subscription;
mod sync;
pub mod telemetry;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{Backend, Capabilities, SubscribeOptions};
pub use bus::{PubSub, Topic, DEFAULT_MAX_PAYLOAD};
pub use delivery::{Acker, Delivery};
pub use error::{BoxError, Error, Result};
pub use event::{Event, Events};
pub use handler::{
    Handler, HandlerOptions, HandlerResult, RetryPolicy, LAST_ERROR, ORIGINAL_TOPIC,
};
pub use header::HeaderValue;
pub use message::{
    Message, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, MAX_PRIORITY, ORIGINAL_PRIORITY,
    REPLY_TO,
};
pub use name::{Pattern, TopicName};
pub use prefixed::Prefixed;
pub use received::{Received, Signal};
pub use subscription::Subscription;

/// Re-exported so backends and tests name the same versions.
pub use async_trait::async_trait;
pub use bytes::Bytes;

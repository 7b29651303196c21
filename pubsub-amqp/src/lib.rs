//! AMQP 0-9-1 (RabbitMQ) backend of pubsub-core, on `lapin`.
//!
//! Start at [`AmqpBackend::connect`], or [`AmqpBackend::builder`] for the options
//! ([`AmqpBuilder`]). How the API maps to RabbitMQ:
//!
//! - **Topology**: one durable topic exchange (`pubsub` unless
//!   [`AmqpBuilder::exchange`] names another) with the topic as routing key, or one
//!   fanout exchange per topic ([`AmqpBuilder::fanout_per_topic`], OpenPaaS ESN's
//!   layout; no patterns there). [`AmqpBackend::exchange`] addresses another exchange
//!   over the same connection.
//! - **Publishing**: each topic's publisher holds its exchange and routing key,
//!   built once; a publish waits for the publisher confirm, and a mandatory publish
//!   that the broker returns is [`Error::NoResponders`](pubsub_core::Error::NoResponders).
//! - **Broadcast**: an exclusive auto-delete queue per subscription, bound with the
//!   topic or pattern (AMQP's own `*` and `#`) and consumed without acks, all on one
//!   shared channel, so an idle subscription costs a few KiB. A subscriber that falls
//!   its buffer ([`AmqpBuilder::buffer`]) behind loses the oldest messages and gets a
//!   [`Signal::Lagged`](pubsub_core::Signal::Lagged).
//! - **Groups**: a durable queue per group and topic with `x-max-priority`, shared by
//!   the members, each on a channel of its own with manual acks and a prefetch
//!   ([`AmqpBuilder::prefetch`]), which bounds what a member buffers. A nack with
//!   requeue, or a delivery dropped unsettled, puts the message back with its attempt
//!   counted.
//! - **Messages**: the payload is the body; id, priority, `reply-to` and
//!   `correlation-id` are AMQP properties, other headers AMQP headers, so foreign
//!   clients read them as usual.
//! - **Recovery** is lapin's: reconnect with backoff, topology and consumers replayed.
//!   Broadcast subscriptions get a [`Signal::Gap`](pubsub_core::Signal::Gap); group
//!   queues keep what the broker confirmed; publishes wait for the connection up to
//!   the publish timeout ([`AmqpBuilder::publish_timeout`]). Known limit: lapin 4.12
//!   may never finish a recovery when the broker resets the socket in the middle of a
//!   write (a restart under heavy publishing); publishes then fail with
//!   [`Error::Connection`](pubsub_core::Error::Connection) after their timeout.
//!
//! ```no_run
//! use pubsub_amqp::AmqpBackend;
//! use pubsub_core::{PubSub, Received};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus = PubSub::new(AmqpBackend::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?);
//! let mut workers = bus.topic("git.file.get").subscribe_group("git-agents").await?;
//! bus.topic("git.file.get").publish(&"README.md").await?;
//! if let Some(Received::Message(job)) = workers.next().await {
//!     job.ack().await?;
//! }
//! # Ok(())
//! # }
//! ```

mod acker;
mod backend;
mod connection;
mod errors;
mod options;
mod properties;
mod publish;
mod route;
mod subscribe;

pub use backend::AmqpBackend;
pub use options::{AmqpBuilder, Routing, DEFAULT_EXCHANGE};

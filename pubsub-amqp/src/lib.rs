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
//!   Confirmed publishes fill one channel's confirm window before they take the
//!   next channel ([`AmqpBuilder::publishing_channels`], [`AmqpBuilder::confirm_window`]).
//! - **Broadcast**: an exclusive auto-delete queue per subscription, bound with the
//!   topic or pattern (AMQP's own `*` and `#`), all consumed on one shared channel, so
//!   an idle subscription costs a few KiB. The backlog waits in the broker: the
//!   client holds the subscription's buffer ([`AmqpBuilder::buffer`], the consumer's
//!   prefetch), acknowledged as the subscriber reads. The queue keeps at most the
//!   backlog ([`AmqpBuilder::backlog`]); past it the broker drops the oldest, and the
//!   subscription gets a [`Signal::Gap`](pubsub_core::Signal::Gap) that says how many.
//!   A slow subscriber blocks neither publishers nor other subscribers.
//! - **Groups**: a durable queue per group and topic with `x-max-priority`, or a
//!   quorum queue on a cluster ([`AmqpBuilder::cluster`]), shared by the members,
//!   each on a channel of its own with manual acks and a prefetch
//!   ([`AmqpBuilder::prefetch`]), which bounds what a member buffers. A nack with
//!   requeue, or a delivery dropped unsettled, puts the message back with its attempt
//!   counted. A group can instead join a queue that another system owns, declared as
//!   its owner declares it or passively ([`AmqpBuilder::queue`]), and share its
//!   messages with the owner's consumers.
//! - **Messages**: the payload is the body; id, priority, `reply-to` and
//!   `correlation-id` are AMQP properties, other headers AMQP headers, so foreign
//!   clients read them as usual.
//! - **Request/reply** is AMQP's convention, so any client's requester or responder
//!   (pika, aio-pika, amqplib) talks to ours: a request carries `reply-to` (a queue
//!   name) and `correlation-id` as properties, and a reply goes to the default
//!   exchange with the `reply-to` as routing key and the request's `correlation-id`.
//!   Our requests use RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no reply
//!   queue is declared; the connection consumes replies on a channel of its own, on
//!   which its requests are published. A late or duplicate reply is dropped; replies
//!   sent while the connection is replaced are lost, and their requests time out.
//! - **Recovery** is this crate's (lapin's own can hang for good when the broker goes
//!   under load): a failed connection is replaced by a new one to the first broker
//!   address that answers ([`AmqpBuilder::address`], or several in the URL), and each
//!   subscription declares, binds and consumes again on it. Broadcast subscriptions
//!   then get a [`Signal::Gap`](pubsub_core::Signal::Gap), once they receive again;
//!   group queues keep what the broker confirmed; publishes wait for a connection up
//!   to the publish timeout ([`AmqpBuilder::publish_timeout`]) and are sent again.
//!   A subscription stops resuming only when the backend is closed or the broker
//!   refuses the credentials or the vhost: a broker that answers while it starts or
//!   stops ("vhost is down", `CONNECTION_FORCED`) is tried again, and an ack or a
//!   subscribe under way fails once its connection is lost, however lapin ends.
//! - **Unreadable messages**: lapin ends the whole connection on a foreign message
//!   whose `message-id`, `reply-to`, `content-type` or a header name is not UTF-8.
//!   Every subscription of the connection resumes as above; a group member first
//!   takes such messages out of the head of its queue (rejected without requeue, so
//!   to the dead-letter topic where one is set) and reports each as a gap, so that
//!   one message never ends connection after connection.
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
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod inbox;
mod lost;
mod options;
mod probe;
mod properties;
mod publish;
mod quarantine;
mod route;
mod subscribe;
mod topology;
mod windows;
mod wire;

pub use backend::AmqpBackend;
pub use options::{AmqpBuilder, QueueSpec, Routing, DEFAULT_EXCHANGE};
pub use route::group_queue;

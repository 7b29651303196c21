//! Redis PubSub backend of pubsub-core, on the `redis` crate.
//!
//! - **[`RedisBackend`]** connects ([`connect`](RedisBackend::connect), or
//!   [`connect_lazy`](RedisBackend::connect_lazy) to connect in the background);
//!   [`RedisBuilder`] sets the channel prefix, raw mode, buffer size, timeouts and
//!   backoff. Bad URLs are [`Error::InvalidUrl`](pubsub_core::Error::InvalidUrl),
//!   refused credentials [`Error::Auth`](pubsub_core::Error::Auth), and no error or
//!   `Debug` output shows a password.
//! - **Publishing**: one multiplexed connection pipelines the concurrent publishes of
//!   every topic. Each [`Topic`](pubsub_core::Topic) handle gets a publisher with its
//!   channel name (prefix included) built once, so a publish only encodes the message
//!   and sends one `PUBLISH`. A mandatory publish (a request) fails with
//!   [`Error::NoResponders`](pubsub_core::Error::NoResponders) when Redis counted no
//!   receiver.
//! - **Subscriptions**: a name is a `SUBSCRIBE`, a pattern a `PSUBSCRIBE` of a Redis
//!   glob that over-matches it (`*` and `#` become `*`; `?`, `*`, `[`, `]` and `\` in
//!   literal parts are escaped), and the core [`Pattern`](pubsub_core::Pattern)
//!   matcher filters what arrives, so `a.*` never delivers `a.b.c`. All
//!   subscriptions of a bus share one RESP3 connection, opened on the first
//!   subscribe, and subscriptions to the same channel or glob share one Redis
//!   subscription, released when the last of them goes. `subscribe().await` returns
//!   once Redis has confirmed; while Redis is unreachable it waits for it (wrap it in
//!   a timeout to bound that).
//! - **Buffers**: each subscription reads a core [ring](pubsub_core::ring) of at most
//!   its buffer of messages, filled by the shared connection: a subscriber that falls
//!   behind loses the oldest and gets a
//!   [`Signal::Lagged`](pubsub_core::Signal::Lagged) with their count. An idle
//!   subscription holds no buffer: under a kilobyte each, client side, in the
//!   crate's memory test of 5,000.
//! - **Faults**: a lost connection is re-established with capped exponential backoff;
//!   the subscriber connection resubscribes everything and puts one
//!   [`Signal::Gap`](pubsub_core::Signal::Gap) on every subscription. Publishes wait
//!   through an outage, and while the bus's subscriptions wait for their connection
//!   (at start or after an outage) so that they reach them, up to the publish
//!   timeout. A publish that failed on a broken connection is sent again, so a
//!   message may arrive twice around an outage.
//! - **Groups** are not offered ([`Capabilities`](pubsub_core::Capabilities) say so,
//!   and the bus answers [`Error::Unsupported`](pubsub_core::Error::Unsupported)):
//!   Redis PubSub gives every subscriber every message.
//!
//! ```no_run
//! use pubsub_core::{PubSub, Received};
//! use pubsub_redis::RedisBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus = PubSub::new(RedisBackend::connect("redis://127.0.0.1/").await?);
//! let mut syncs = bus.topic("sync.*").subscribe().await?;
//! bus.topic("sync.alice").publish(&serde_json::json!({"stored_count": 2})).await?;
//! while let Some(received) = syncs.next().await {
//!     match received {
//!         Received::Message(delivery) => {
//!             assert_eq!(delivery.topic(), "sync.alice");
//!             break;
//!         }
//!         // Lagged (it fell behind) or Gap (Redis was reconnected): messages were missed.
//!         Received::Signal(signal) => eprintln!("sync listener: {signal}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # The envelope
//!
//! A message without headers, id or priority is published as its bare payload, so
//! any Redis client reads it as is. In raw mode ([`RedisBuilder::raw`]) every message
//! is: the capabilities say `headers: false`, so the bus refuses messages with
//! headers, and an id or priority is left out. Otherwise the message travels in this
//! envelope (integers big-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 4 | magic `00 50 53 01`: a NUL, `PS`, format version 1 |
//! | 4 | CRC-32 (IEEE) of the metadata length and the metadata |
//! | 4 | metadata length `n` |
//! | `n` | metadata: a JSON object with `h` (headers, `[[key, value], ...]`), `i` (id) and `p` (priority), each left out when empty |
//! | rest | the payload, untouched |
//!
//! A received payload is read as an envelope only if all of it checks out: the magic,
//! a length that fits, the checksum, and metadata that is exactly such an object with
//! a priority of at most 9. Anything else, whatever its first bytes, is a foreign
//! message and is delivered with exactly its bytes as payload and no headers. A bare
//! payload of our own that starts with the magic is sent in an envelope, so it too
//! arrives unchanged. (A foreign client that deliberately publishes a well-formed
//! envelope is read as one.)

mod backend;
mod driver;
mod envelope;
mod errors;
mod glob;
mod options;
mod publisher;
mod registry;
mod subscriber;

pub use backend::RedisBackend;
pub use options::{RedisBuilder, DEFAULT_BUFFER};

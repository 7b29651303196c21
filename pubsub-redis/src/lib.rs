//! Redis PubSub backend of pubsub-core, on the `redis` crate.
//!
//! - **Connections**: one multiplexed connection for publishing (concurrent publishes
//!   are pipelined on it) and one dedicated RESP3 connection per bus for its
//!   subscriptions, opened on the first subscribe.
//! - **Subscriptions**: a name is a `SUBSCRIBE`, a pattern a `PSUBSCRIBE` of a Redis
//!   glob that over-matches it (`*` and `#` become `*`; `?`, `*`, `[`, `]` and `\` in
//!   literal parts are escaped), and the core [`Pattern`](pubsub_core::Pattern)
//!   matcher filters what arrives, so `a.*` never delivers `a.b.c`. Subscriptions of a
//!   bus to the same channel or glob share one Redis subscription, released when the
//!   last of them goes. `subscribe().await` returns once Redis has confirmed; while
//!   Redis is unreachable it waits for it (wrap it in a timeout to bound that).
//! - **Bounded buffers**: each subscription holds at most its buffer of messages; when
//!   it falls behind, the oldest are dropped and it gets an
//!   [`Error::Lagged`](pubsub_core::Error::Lagged) item with their count.
//! - **Faults**: a lost connection is re-established with capped exponential backoff;
//!   the subscriber connection resubscribes everything and puts one
//!   [`Error::Gap`](pubsub_core::Error::Gap) item on every subscription. Publishes wait
//!   through an outage, and while the bus's subscriptions wait for their connection
//!   (at start or after an outage) so that they reach them, up to the publish
//!   timeout. A publish that failed on a broken connection is sent again, so a
//!   message may arrive twice around an outage.
//! - **Groups** are [`Error::Unsupported`](pubsub_core::Error::Unsupported): Redis
//!   PubSub gives every subscriber every message.
//!
//! # The envelope
//!
//! A message without headers, id or priority is published as its bare payload, so
//! any Redis client reads it as is; in raw mode ([`RedisBuilder::raw`]) every message
//! is, and headers, id and priority are not sent. Otherwise the message travels in
//! this envelope (integers big-endian):
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
//!
//! ```no_run
//! use pubsub_core::PubSub;
//! use pubsub_redis::RedisBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus = PubSub::new(RedisBackend::connect("redis://127.0.0.1/").await?);
//! let mut syncs = bus.topic("sync.*").subscribe().await?;
//! bus.topic("sync.alice").publish(&serde_json::json!({"stored_count": 2})).await?;
//! let delivery = syncs.next().await.unwrap()?;
//! assert_eq!(delivery.topic(), "sync.alice");
//! # Ok(())
//! # }
//! ```

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

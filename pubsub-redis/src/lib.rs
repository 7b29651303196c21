//! Redis backend of pubsub-core, on the `redis` crate: PubSub (the default),
//! [Streams](#streams-mode) with durable consumer groups, on one server or a
//! [Redis Cluster](#redis-cluster).
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
//! - **Groups** are not offered in PubSub mode ([`Capabilities`](pubsub_core::Capabilities)
//!   say so, and the bus answers [`Error::Unsupported`](pubsub_core::Error::Unsupported)):
//!   Redis PubSub gives every subscriber every message. Streams mode has them.
//! - **Request/reply** keeps this crate's own convention, as Redis has none: a
//!   request carries its `reply-to` (a topic name, the requester's inbox
//!   `_inbox.<id>`) and `correlation-id` as headers, and the reply is
//!   published to that topic (its channel, with the bus's prefix; in Streams mode its
//!   stream) with the same `correlation-id`.
//! - **Connection errors** say what happened, at once: a refused connection is
//!   refused (not retried for the connect budget), a port that speaks AMQP or TLS
//!   (or plain Redis behind a `rediss://` URL) is named as such, and a subscription
//!   made while Redis is unreachable returns with a
//!   [`Signal::Gap`](pubsub_core::Signal::Gap) that says so, and is made when Redis
//!   answers.
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
//! # Streams mode
//!
//! [`RedisBuilder::streams`] (or `?mode=streams` in `pubsub-connect`'s URLs) makes
//! every topic a Redis Stream, key `<prefix><topic>`:
//!
//! - A publish is `XADD <key> MAXLEN ~ <n> * <fields>` ([`RedisBuilder::stream_max_len`],
//!   [`DEFAULT_STREAM_MAX_LEN`]): older entries are trimmed, read or not. `Ok` means
//!   the master took it; Redis replicates asynchronously, so a failover may lose it.
//! - A broadcast subscription reads, with blocking `XREAD`s on a connection of its
//!   own, the entries added after it subscribed; [`RedisBackend::replay`] reads from
//!   the start, a time or an entry id ([`Replay`]). After a reconnection it resumes
//!   after the last entry it read, with a `Gap` (entries Redis lost or trimmed
//!   meanwhile are missed).
//! - A group is a consumer group of the stream (`XGROUP CREATE <key> <group> $
//!   MKSTREAM`: it gets what is published from its creation on), each member a
//!   consumer reading with `XREADGROUP` on a connection of its own, holding at most
//!   its prefetch (16 by default) unsettled. `ack` is `XACK`; a nack with requeue, or
//!   a delivery dropped unsettled, leaves the entry pending and marks it idle for long
//!   (`XCLAIM ... IDLE ... JUSTID`), and the next `XAUTOCLAIM` of a member takes it
//!   (the bus's own members at once). Entries a member held longer than
//!   [`RedisBuilder::claim_idle`] (30 s) are taken by the others the same way: a
//!   member that died loses nothing. The attempt is the entry's delivery count in the
//!   pending list; past [`RedisBuilder::max_attempts`] (10) an entry goes to the
//!   topic `<topic>.dead-letter`, with the headers `x-original-topic` and
//!   `x-last-error`. A nack without requeue acks.
//! - Capabilities: groups, acks and persistence (as far as the server persists);
//!   not patterns (a stream is one key, and no command reads the streams of a
//!   pattern: subscribing to one is `Unsupported` with a sentence), not priorities
//!   (entries are read in order; a priority travels but does not reorder), not
//!   no-responders (a stream cannot tell who will read it: a request without
//!   responders times out).
//!
//! An entry's fields, for redis-cli and redis-py: `payload` (the payload, as is),
//! `id` (the message id, if any), `priority` (`1` to `9`, if not 0), one
//! `h:<name>` per text header and one `t:<name>` per header of another type, its
//! value as in [Header values](#header-values). In raw mode only `payload` is written. An entry written by
//! another program without a `payload` field arrives as a JSON object of its fields.
//!
//! ```no_run
//! use pubsub_core::{PubSub, Received};
//! use pubsub_redis::RedisBackend;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pubsub_core::Result<()> {
//! let bus = PubSub::new(RedisBackend::builder("redis://127.0.0.1/").streams(true).connect().await?);
//! let mut jobs = bus.topic("git.push").subscribe_group("agents").await?;
//! bus.topic("git.push").publish(&"repo-1").await?;
//! if let Some(Received::Message(job)) = jobs.next().await {
//!     job.ack().await?; // XACK; unsettled, another member would get it again
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Redis Cluster
//!
//! A URL with several comma-separated hosts (`redis://h1:7000,h2:7001/`), or
//! [`RedisBuilder::cluster`], connects to a Redis Cluster through those seeds; the
//! `redis` crate finds the other nodes and follows slot moves and failovers.
//!
//! - PubSub mode: a name is a sharded channel (`SSUBSCRIBE`/`SPUBLISH`), so its
//!   traffic stays on the shard of its slot; a pattern is a `PSUBSCRIBE`, and every
//!   publish is also a `PUBLISH` (which the cluster sends to every node), all of a bus
//!   through one node so that patterns see a publisher's order. Without patterns
//!   ([`RedisBuilder::cluster_patterns`]`(false)`) a publish is one `SPUBLISH`. A
//!   lost node connection puts a `Gap` on every subscription of the bus (which
//!   subscriptions it carried is not told), and they are subscribed again where their
//!   slots are served now (see Failovers). No-responders is off: a `PUBLISH` counts
//!   the pattern subscribers of one node only.
//! - Streams mode works as on one server: a topic is one key, so one slot; each
//!   reader and member has a cluster connection of its own.
//! - Failovers and slot moves: `redis` 1.8's cluster connection learns of a failover
//!   only from a `MOVED` or a connection it cannot make, and resubscribes where its
//!   slot map, possibly stale, says; after a master was killed it kept sharded
//!   subscriptions on the dead master's address and left publishes timing out for
//!   tens of seconds (related upstream: redis-rs/redis-rs#2085, a slot map left stale
//!   by a failover). So the bus does not leave recovery to it: in PubSub mode a lost
//!   node connection, a publish that fails on a broken connection, or Redis dropping a
//!   sharded subscription (its slot moved) makes the bus replace its connection by a
//!   fresh one built from the seeds, subscribe everything again on it (with backoff,
//!   once every node it reaches names the same masters and each of them answers) and
//!   put a `Gap` on every subscription. In Streams mode a
//!   reader's connection does not let the client retry: a read that fails (a lost
//!   node, a `MOVED`) opens a fresh connection from the seeds, with backoff, and the
//!   subscription gets one `Gap` per outage; the command connection is replaced by a
//!   fresh one when it stays broken. A publish waits through the failover up to the
//!   publish timeout, then fails with [`Error::Connection`](pubsub_core::Error::Connection).
//! - What a failover loses: Redis replicates asynchronously, so an `XADD` that the
//!   dying master acknowledged may not have reached the replica that takes over; such
//!   a publish is lost although it succeeded. The crate's fault test (a master killed
//!   under 10,000 numbered publishes to a Streams group and a sharded subscription,
//!   on loopback) measured 0 such losses in each of its runs; that is a measurement,
//!   not a guarantee. Sharded PubSub delivers at most once: the shard takes
//!   `SPUBLISH`es all through the failover (the replica, then the new master), but a
//!   subscription is made again only once the cluster has settled, about 2 s after
//!   the master died there, and what was published meanwhile is missed; the `Gap`
//!   comes after it. In the fault test that was 0 of 10,000 in half of the runs and
//!   up to about 8,800 (everything published after the kill) in the others.
//! - `connect_lazy` is not offered on a cluster.
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
//! | `n` | metadata: a JSON object with `h` (headers, `[[key, value], ...]`, each value as in [Header values](#header-values)), `i` (id) and `p` (priority), each left out when empty |
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
//! # Header values
//!
//! A [`HeaderValue`](pubsub_core::HeaderValue) keeps its type through Redis as JSON: text
//! is a JSON string, so the headers most messages carry read as they are; any other
//! value is an object of one key naming its type: `{"int": 5000}`, `{"bool": true}`,
//! `{"float": 0.5}` (`"NaN"`, `"inf"` and `"-inf"` as strings), `{"timestamp":
//! 1700000000}` (seconds), `{"bytes": [255, 0]}`, `{"list": [...]}`, `{"table": [[key,
//! value], ...]}`; `null` is a header without a value. An envelope with a value of
//! any other shape is no envelope (it arrives as a foreign payload).
//!
//! A foreign client may publish on any channel. A message on a channel that a pattern
//! subscription's glob matches but that is no topic name (a space, a newline, not
//! UTF-8, too long) is never handed out under a made-up topic: the subscription gets
//! a [`Signal::Gap`](pubsub_core::Signal::Gap) naming the channel and why.

mod backend;
mod cluster;
mod commands;
mod diagnose;
mod driver;
mod envelope;
mod errors;
mod fields;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod glob;
mod header_json;
mod options;
mod publisher;
mod registry;
mod replay;
mod streams;
mod subscriber;

pub use backend::RedisBackend;
pub use options::{RedisBuilder, DEFAULT_BUFFER, DEFAULT_STREAM_MAX_LEN};
pub use replay::Replay;

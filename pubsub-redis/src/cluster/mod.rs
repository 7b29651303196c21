//! Redis Cluster in PubSub mode: one cluster connection (RESP3) for publishes and
//! subscriptions. Exact names are sharded channels (`SSUBSCRIBE`/`SPUBLISH`), so
//! their traffic stays on the shard of their slot; patterns are `PSUBSCRIBE`s, which
//! see the `PUBLISH`es the cluster sends to every node.
//!
//! When a node's connection is lost, a publish fails on a broken connection, or Redis
//! drops a sharded subscription (its slot moved), the driver replaces the connection
//! by a fresh one built from the seeds, subscribes everything again on it and puts a
//! `Gap` on every subscription. `redis` 1.8 would reconnect by itself, but it learns a
//! failover only from a `MOVED` or a missing connection, and it resubscribes only
//! where its possibly stale slot map says: after a failover it kept subscriptions on
//! the dead master's address, and its recovery left publishes timing out for tens of
//! seconds (see `tests/cluster_faults.rs`).

mod driver;
mod publisher;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pubsub_core::{ring, Error, Pattern, Result, Subscription};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{ProtocolVersion, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::errors::{convert, retry};
use crate::options::Endpoint;
use crate::publisher::CONNECTION_TIMEOUT;
use crate::registry::{Key, Listener, Registry};
use crate::RedisBuilder;

use driver::{Command, Dial, Driver};
pub(crate) use publisher::ClusterPublisher;

/// A client of the cluster of `endpoint`'s seeds, in RESP3.
pub(crate) fn client(endpoint: &Endpoint, response_timeout: Duration) -> Result<ClusterClient> {
    builder(endpoint, response_timeout)
        .build()
        .map_err(|e| convert(&format!("cannot use {}", endpoint.shown), e))
}

/// A client for the connections that block in reads of one key: a command that fails
/// is not sent again by the client (which would follow a failover silently, or wait
/// on a dead master) but returned, so that the reader opens a fresh connection from
/// the seeds and tells its subscription of the gap.
pub(crate) fn reader_client(
    endpoint: &Endpoint,
    response_timeout: Duration,
) -> Result<ClusterClient> {
    builder(endpoint, response_timeout)
        .retries(0)
        .build()
        .map_err(|e| convert(&format!("cannot use {}", endpoint.shown), e))
}

fn builder(endpoint: &Endpoint, response_timeout: Duration) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(endpoint.seeds.clone())
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(CONNECTION_TIMEOUT)
        .response_timeout(response_timeout);
    match endpoint.certificates() {
        Some(certificates) => builder.certs(certificates),
        None => builder,
    }
}

/// Whether the cluster is settled as `connection` sees it: every node it reaches
/// names the same master for every slot, and every such master answered. While a
/// master is down but not yet failed over, a command for its slots can only reach its
/// replica, which drops its sharded subscriptions when it is promoted; and for a
/// moment after a failover, a master that was killed and started again still claims
/// its old slots, so that what is published there reaches nobody.
pub(crate) async fn settled(connection: &ClusterConnection) -> RedisResult<bool> {
    let mut slots = redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    let everyone = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
    let Value::Map(replies) = connection.clone().route_command(slots, everyone).await? else {
        return Ok(false);
    };
    let answered: HashSet<Vec<u8>> = replies
        .iter()
        .filter_map(|(node, _)| match node {
            Value::BulkString(node) => Some(node.clone()),
            _ => None,
        })
        .collect();
    let mut views = replies.into_iter().map(|(_, reply)| masters(reply));
    let Some(Some(first)) = views.next() else {
        return Ok(false);
    };
    let all_agree = views.all(|view| view.as_ref() == Some(&first));
    Ok(all_agree && first.iter().all(|(_, master)| answered.contains(master)))
}

/// The slot ranges of a `CLUSTER SLOTS` reply, by first slot, each with its master's
/// `host:port`; `None` for an error.
fn masters(reply: Value) -> Option<Vec<(i64, Vec<u8>)>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut masters: Vec<(i64, Vec<u8>)> = ranges
        .into_iter()
        .filter_map(|range| {
            let Value::Array(range) = range else {
                return None;
            };
            match (range.first(), range.get(2)) {
                (Some(Value::Int(start)), Some(Value::Array(master))) => {
                    match (master.first(), master.get(1)) {
                        (Some(Value::BulkString(host)), Some(Value::Int(port))) => {
                            let host = String::from_utf8_lossy(host);
                            Some((*start, format!("{host}:{port}").into_bytes()))
                        }
                        _ => None,
                    }
                }
                _ => None,
            }
        })
        .collect();
    masters.sort();
    Some(masters)
}

/// How long one command may take on a cluster: short, so that a command stuck on a
/// dead master fails soon and is sent again (the publish timeout bounds the whole).
pub(crate) fn attempt_timeout(options: &RedisBuilder) -> Duration {
    options.publish_timeout.min(CONNECTION_TIMEOUT)
}

/// What the push senders, the driver and the bus share.
pub(crate) struct Shared {
    registry: Mutex<Registry>,
    prefix: Arc<str>,
    raw: bool,
    /// Which connection is in use: each replacement counts one up.
    generation: AtomicU64,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// The cluster connection in use, which the driver replaces.
pub(crate) struct Live(Mutex<ClusterConnection>);

impl Live {
    fn get(&self) -> ClusterConnection {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, connection: ClusterConnection) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = connection;
    }
}

/// A bus on a Redis Cluster in PubSub mode.
pub(crate) struct Cluster {
    live: Arc<Live>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    /// Publishes also `PUBLISH` for pattern subscribers.
    patterns: bool,
    /// Where those `PUBLISH`es go: the master of the prefix's slot.
    pattern_node: RoutingInfo,
    publish_timeout: Duration,
    backoff: pubsub_core::backoff::Backoff,
    closed: AtomicBool,
}

impl Cluster {
    pub(crate) async fn connect(options: &RedisBuilder, endpoint: &Endpoint) -> Result<Self> {
        let shared = Arc::new(Shared {
            registry: Mutex::default(),
            prefix: Arc::clone(&options.prefix),
            raw: options.raw,
            generation: AtomicU64::new(0),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let dial = Dial::new(
            endpoint,
            attempt_timeout(options),
            Arc::clone(&shared),
            commands.downgrade(),
        );
        // A seed list the client refuses fails here as such, not as a connection failure.
        client(endpoint, attempt_timeout(options))?;
        let deadline = Instant::now() + options.connect_budget;
        let connection = retry(deadline, options.backoff.clone(), || dial.open(0))
            .await
            .map_err(|e| convert(&format!("cannot connect to {}", endpoint.shown), e))?;
        let live = Arc::new(Live(Mutex::new(connection)));
        let driver = Driver::new(
            Arc::clone(&shared),
            Arc::clone(&live),
            dial,
            options.backoff.clone(),
        );
        tokio::spawn(driver.run(receiver));
        Ok(Cluster {
            live,
            shared,
            commands,
            patterns: options.cluster_patterns,
            pattern_node: RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                Route::with_key(options.prefix.as_bytes(), SlotAddr::Master),
            )),
            publish_timeout: options.publish_timeout,
            backoff: options.backoff.clone(),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn patterns(&self) -> bool {
        self.patterns
    }

    /// The connection in use, and its generation (to [`renew`](Self::renew) it).
    fn connection(&self) -> (u64, ClusterConnection) {
        (self.shared.generation(), self.live.get())
    }

    /// Asks the driver to replace connection `generation`, which failed (nothing
    /// happens if it was replaced already).
    fn renew(&self, generation: u64) {
        let _ = self.commands.send(Command::Renew(generation));
    }

    /// Ends every subscription; later calls fail with `Closed`.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut registry = self.shared.registry();
        registry.closed = true;
        registry.clear();
    }

    /// Subscribes to a name (sharded) or pattern; returns once the cluster confirmed.
    pub(crate) async fn subscribe(&self, pattern: &Pattern, buffer: usize) -> Result<Subscription> {
        if pattern.is_wildcard() && !self.patterns {
            return Err(Error::Unsupported(
                "pattern subscriptions on this Redis Cluster bus are off \
                 (RedisBuilder::cluster_patterns(false)): publishes are SPUBLISH only"
                    .into(),
            ));
        }
        let (ring, receiver) = ring::channel(buffer);
        let listener = Listener::new(&self.shared.prefix, pattern, ring);
        let (key, id) = {
            let mut registry = self.shared.registry();
            if registry.closed {
                return Err(Error::Closed);
            }
            registry.add(listener)
        };
        let registration = Registration {
            shared: Arc::clone(&self.shared),
            commands: self.commands.clone(),
            key: key.clone(),
            id,
        };
        let (reply, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(key, reply))
            .map_err(|_| Error::Closed)?;
        confirmed.await.map_err(|_| Error::Closed)??;
        let commands = self.commands.clone();
        Ok(Subscription::new(receiver)
            .with_guard(registration)
            .with_unsubscribe(move || async move {
                let (reply, done) = oneshot::channel();
                if commands.send(Command::Barrier(reply)).is_ok() {
                    let _ = done.await;
                }
                Ok(())
            }))
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("patterns", &self.patterns)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// A local subscription's place in the registry, given up on drop.
struct Registration {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    key: Key,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.registry().remove(&self.key, self.id);
        let _ = self.commands.send(Command::Release(self.key.clone()));
    }
}

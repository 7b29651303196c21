//! The cluster's push sender, which hands sharded and pattern messages to the
//! subscriptions, and the driver: the task that subscribes and unsubscribes one
//! command at a time (so that a subscribe and an unsubscribe of one channel never
//! overtake each other) and replaces the connection when it fails.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::Result;
use redis::aio::{AsyncPushSender, SendError};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Live, Shared};
use crate::errors::convert;
use crate::options::Endpoint;
use crate::publisher::CONNECTION_TIMEOUT;
use crate::registry::{deliver_push, Key};

/// How long building a fresh connection may take: the client connects to every seed
/// and then to every node of the map it read, each within the connection timeout.
const OPEN_TIMEOUT: Duration = Duration::from_secs(4 * CONNECTION_TIMEOUT.as_secs());

/// What a subscribe or an unsubscribe asks of the driver.
pub(crate) enum Command {
    /// Make sure the cluster has this subscription, then answer.
    Subscribe(Key, oneshot::Sender<Result<()>>),
    /// A local subscription went: unsubscribe if it was the last of its key.
    Release(Key),
    /// Answer once every command before it is done.
    Barrier(oneshot::Sender<()>),
    /// Connection `generation` failed: replace it, unless that was done already.
    Renew(u64),
}

/// Hands one connection's pushes to the subscriptions, and tells the driver when the
/// connection lost a node or Redis dropped a sharded subscription.
pub(crate) struct Router {
    shared: Arc<Shared>,
    generation: u64,
    /// Weak, so that the connection (which owns its push sender) does not keep the
    /// driver alive.
    renew: mpsc::WeakUnboundedSender<Command>,
}

impl Router {
    fn renew(&self) {
        // A replaced connection's losses are its own end, not news.
        if self.generation < self.shared.generation() {
            return;
        }
        if let Some(commands) = self.renew.upgrade() {
            let _ = commands.send(Command::Renew(self.generation));
        }
    }

    /// Whether `info` is Redis dropping a sharded subscription that is still wanted:
    /// it does so when the slot moves away from the node.
    fn dropped(&self, info: &PushInfo) -> bool {
        let channel = match info.data.first() {
            Some(Value::BulkString(channel)) => std::str::from_utf8(channel).ok(),
            _ => None,
        };
        channel.is_some_and(|c| self.shared.registry().contains(&Key::Channel(c.into())))
    }
}

impl AsyncPushSender for Router {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if info.kind == PushKind::SUnsubscribe && self.dropped(&info) {
            tracing::info!("redis dropped a sharded subscription; renewing the connection");
            self.renew();
        }
        let (prefix, raw) = (&*self.shared.prefix, self.shared.raw);
        if deliver_push(info, prefix, raw, || self.shared.registry())
            == Some(PushKind::Disconnection)
        {
            tracing::info!(
                generation = self.generation,
                "a redis cluster node connection was lost"
            );
            self.renew();
        }
        Ok(())
    }
}

/// Opens the bus's cluster connections, each with a router of its own.
pub(super) struct Dial {
    endpoint: Endpoint,
    response_timeout: Duration,
    shared: Arc<Shared>,
    renew: mpsc::WeakUnboundedSender<Command>,
}

impl Dial {
    pub(super) fn new(
        endpoint: &Endpoint,
        response_timeout: Duration,
        shared: Arc<Shared>,
        renew: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        Dial {
            endpoint: endpoint.clone(),
            response_timeout,
            shared,
            renew,
        }
    }

    /// A connection built from the seeds: it reads the cluster's map afresh.
    pub(super) async fn open(&self, generation: u64) -> RedisResult<ClusterConnection> {
        let router = Router {
            shared: Arc::clone(&self.shared),
            generation,
            renew: self.renew.clone(),
        };
        super::builder(&self.endpoint, self.response_timeout)
            .push_sender(router)
            .build()?
            .get_async_connection()
            .await
    }
}

/// Runs the subscribe and unsubscribe commands, and the renewals, until the bus is
/// dropped.
pub(super) struct Driver {
    shared: Arc<Shared>,
    live: Arc<Live>,
    dial: Dial,
    backoff: Backoff,
    /// What the cluster has subscribed.
    active: HashSet<Key>,
}

impl Driver {
    pub(super) fn new(shared: Arc<Shared>, live: Arc<Live>, dial: Dial, backoff: Backoff) -> Self {
        Driver {
            shared,
            live,
            dial,
            backoff,
            active: HashSet::new(),
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            match command {
                Command::Subscribe(key, reply) => {
                    if self.active.contains(&key) {
                        let _ = reply.send(Ok(()));
                        continue;
                    }
                    let done = subscribe(self.live.get(), &key)
                        .await
                        .map_err(|e| convert("subscribe on the Redis Cluster", e));
                    if done.is_ok() {
                        self.active.insert(key);
                    }
                    let _ = reply.send(done);
                }
                Command::Release(key) => {
                    if self.shared.registry().contains(&key) || !self.active.remove(&key) {
                        continue;
                    }
                    let mut connection = self.live.get();
                    let done = match &key {
                        Key::Channel(name) => connection.sunsubscribe(&**name).await,
                        Key::Glob(glob) => connection.punsubscribe(&**glob).await,
                    };
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "redis cluster unsubscribe failed");
                    }
                }
                Command::Barrier(reply) => {
                    let _ = reply.send(());
                }
                Command::Renew(generation) if generation == self.shared.generation() => {
                    self.renew(&commands).await;
                }
                Command::Renew(_) => {}
            }
        }
    }

    /// Replaces the connection by a fresh one that has every subscription, trying
    /// with backoff until that works or the bus goes; then every subscription is told
    /// of the gap.
    async fn renew(&mut self, commands: &mpsc::UnboundedReceiver<Command>) {
        let generation = self.shared.generation() + 1;
        let mut backoff = self.backoff.clone();
        loop {
            if commands.is_closed() || self.shared.registry().closed {
                return;
            }
            match self.open(generation).await {
                Ok(connection) => {
                    tracing::info!(generation, "redis cluster connection renewed");
                    self.live.set(connection);
                    self.shared
                        .generation
                        .store(generation, std::sync::atomic::Ordering::Release);
                    self.shared.registry().gap(
                        "the connection to the Redis Cluster failed (a node was lost, or a \
                         slot moved) and was replaced by a fresh one, subscribed where the \
                         slots are served now; messages published in between may have \
                         been missed",
                    );
                    return;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "cannot renew the redis cluster connection; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// A fresh connection with every active subscription.
    async fn open(&self, generation: u64) -> RedisResult<ClusterConnection> {
        let timed_out = || redis::RedisError::from((redis::ErrorKind::Io, "timed out"));
        let connection = tokio::time::timeout(OPEN_TIMEOUT, self.dial.open(generation))
            .await
            .map_err(|_| timed_out())??;
        if !super::settled(&connection).await? {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the cluster's nodes do not agree yet on which master serves which slots",
            )));
        }
        for key in &self.active {
            subscribe(connection.clone(), key).await?;
        }
        Ok(connection)
    }
}

async fn subscribe(mut connection: ClusterConnection, key: &Key) -> RedisResult<()> {
    match key {
        Key::Channel(name) => connection.ssubscribe(&**name).await,
        Key::Glob(glob) => connection.psubscribe(&**glob).await,
    }
}

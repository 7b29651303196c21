//! The task that owns the subscriber connection: it subscribes, unsubscribes,
//! reconnects and resubscribes, one command at a time so that a SUBSCRIBE and an
//! UNSUBSCRIBE of the same channel never overtake each other. Messages go from the
//! connection's push sender ([`Router`]) straight into the subscriptions' rings.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::Result;
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use crate::errors::{convert, is_transient};
use crate::publisher::CONNECTION_TIMEOUT;
use crate::registry::{deliver_push, Key};
use crate::subscriber::Shared;

/// What a subscribe, an unsubscribe or the connection asks of the driver.
pub(crate) enum Command {
    /// Make sure Redis has this subscription, then answer.
    Subscribe(Key, oneshot::Sender<Result<()>>),
    /// A local subscription went: unsubscribe if it was the last of its key.
    Release(Key),
    /// Answer once every command before it is done.
    Barrier(oneshot::Sender<()>),
    /// A publish failed on a broken connection: see whether ours broke too.
    Check(oneshot::Sender<()>),
    /// Connection number `.0` ended.
    Lost(u64),
}

/// Hands a connection's pushes to the subscriptions and tells the driver when the
/// connection ends.
struct Router {
    shared: Arc<Shared>,
    generation: u64,
    events: mpsc::WeakUnboundedSender<Command>,
}

impl AsyncPushSender for Router {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let (prefix, raw) = (&*self.shared.prefix, self.shared.raw);
        let Some(kind) = deliver_push(info, prefix, raw, || self.shared.registry()) else {
            return Ok(());
        };
        if kind != PushKind::Disconnection {
            return Ok(());
        }
        let current = self.shared.generation.load(Ordering::Acquire) == self.generation;
        let mut registry = self.shared.registry();
        if current {
            registry.live = false;
            if !registry.is_empty() {
                // At once, not when the driver gets to it: publishes must wait
                // from now on.
                self.shared.ready.set(false);
            }
        }
        drop(registry);
        if let Some(events) = self.events.upgrade() {
            let _ = events.send(Command::Lost(self.generation));
        }
        Ok(())
    }
}

/// The task that owns the connection.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    client: Client,
    events: mpsc::WeakUnboundedSender<Command>,
    commands: mpsc::UnboundedReceiver<Command>,
    connection: Option<MultiplexedConnection>,
    /// What Redis has subscribed on the live connection.
    active: HashSet<Key>,
    /// The connection broke while subscriptions were live: they get a gap signal
    /// once it is back.
    lost: bool,
    backoff: Backoff,
    /// The URL, without its password, for messages.
    shown: String,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        client: Client,
        events: mpsc::WeakUnboundedSender<Command>,
        commands: mpsc::UnboundedReceiver<Command>,
        backoff: Backoff,
        shown: String,
    ) -> Self {
        Driver {
            shared,
            client,
            events,
            commands,
            connection: None,
            active: HashSet::new(),
            lost: false,
            backoff,
            shown,
        }
    }

    /// Runs until the bus is closed or dropped.
    pub(crate) async fn run(mut self) {
        let mut closed = self.shared.closed.subscribe();
        loop {
            let command = tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => command,
                    None => break,
                },
                _ = closed.wait_for(|c| *c) => break,
            };
            tokio::select! {
                () = self.handle(command) => {}
                _ = closed.wait_for(|c| *c) => break,
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Subscribe(key, reply) => self.subscribe(key, reply).await,
            Command::Release(key) => {
                if self.shared.registry().contains(&key) || !self.active.remove(&key) {
                    return;
                }
                if let Some(connection) = &mut self.connection {
                    let done = match &key {
                        Key::Channel(name) => connection.unsubscribe(&**name).await,
                        Key::Glob(glob) => connection.punsubscribe(&**glob).await,
                    };
                    if done.as_ref().is_err_and(is_transient) {
                        self.lose();
                    }
                }
            }
            Command::Barrier(reply) => {
                let _ = reply.send(());
            }
            Command::Check(reply) => {
                if let Some(connection) = &mut self.connection {
                    let ping: RedisResult<Value> = redis::cmd("PING").query_async(connection).await;
                    if ping.is_err() {
                        self.lose();
                    }
                }
                self.recover().await;
                let _ = reply.send(());
            }
            Command::Lost(generation) => {
                if generation == self.shared.generation.load(Ordering::Acquire) {
                    self.lose();
                }
                self.recover().await;
            }
        }
    }

    /// Subscribes `key` and answers `reply`. While Redis is unreachable the
    /// subscription is returned at once with a gap signal saying so, and subscribed
    /// with every other key once the connection is made (publishes of this bus wait
    /// for that, up to their timeout).
    async fn subscribe(&mut self, key: Key, reply: oneshot::Sender<Result<()>>) {
        loop {
            let mut connection = match self.connection.clone() {
                Some(connection) => connection,
                None => match self.attempt().await {
                    Ok(connection) => connection,
                    Err(e) if is_transient(&e) => {
                        self.shared.registry().gap_key(
                            &key,
                            &format!(
                                "Redis at {} is unreachable ({e}); the subscription is made \
                                 as soon as it answers, and what is published before that \
                                 is missed",
                                self.shown
                            ),
                        );
                        tracing::warn!(error = %e, "redis subscriber connection failed; retrying");
                        self.lost = true;
                        let _ = reply.send(Ok(()));
                        self.recover().await;
                        return;
                    }
                    Err(e) => {
                        let failed = convert("cannot open the subscriber connection", e);
                        let _ = reply.send(Err(failed));
                        return;
                    }
                },
            };
            if self.active.contains(&key) {
                let _ = reply.send(Ok(()));
                return;
            }
            let done = match &key {
                Key::Channel(name) => connection.subscribe(&**name).await,
                Key::Glob(glob) => connection.psubscribe(&**glob).await,
            };
            match done {
                Ok(()) => {
                    self.active.insert(key);
                    let _ = reply.send(Ok(()));
                    return;
                }
                // Reconnecting resubscribes this key too.
                Err(e) if is_transient(&e) => self.lose(),
                Err(e) => {
                    let _ = reply.send(Err(convert("subscribe", e)));
                    return;
                }
            }
        }
    }

    /// Reconnects if subscriptions wait for it.
    async fn recover(&mut self) {
        if self.connection.is_none() && !self.shared.registry().is_empty() {
            self.connect().await;
        }
    }

    fn lose(&mut self) {
        self.connection = None;
        self.active.clear();
        let mut registry = self.shared.registry();
        registry.live = false;
        if !registry.is_empty() {
            self.lost = true;
            self.shared.ready.set(false);
        }
    }

    /// The live connection, or a new one with every key resubscribed. Retries broken
    /// connections forever (closing the bus ends that), other errors too.
    async fn connect(&mut self) -> MultiplexedConnection {
        if let Some(connection) = &self.connection {
            return connection.clone();
        }
        let mut backoff = self.backoff.clone();
        loop {
            match self.attempt().await {
                Ok(connection) => return connection,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "redis subscriber connection failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt to open a connection with every key subscribed.
    async fn attempt(&mut self) -> RedisResult<MultiplexedConnection> {
        let keys = self.shared.registry().keys();
        let connection = self.open(&keys).await?;
        self.active = keys.into_iter().collect();
        self.connection = Some(connection.clone());
        let mut registry = self.shared.registry();
        if std::mem::take(&mut self.lost) {
            registry.gap(
                "the connection to Redis was lost and re-established; \
                 messages published in between may have been missed",
            );
            tracing::info!("redis subscriber connection re-established");
        }
        // Keys registered while this connection was opened are not on it
        // yet, but their subscribe has not returned either.
        registry.live = true;
        self.shared.ready.set(true);
        Ok(connection)
    }

    async fn open(&self, keys: &[Key]) -> RedisResult<MultiplexedConnection> {
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let router = Router {
            shared: Arc::clone(&self.shared),
            generation,
            events: self.events.clone(),
        };
        let config = AsyncConnectionConfig::new()
            .set_push_sender(router)
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let (mut channels, mut globs) = (Vec::new(), Vec::new());
        for key in keys {
            match key {
                Key::Channel(name) => channels.push(&**name),
                Key::Glob(glob) => globs.push(&**glob),
            }
        }
        if !channels.is_empty() {
            connection.subscribe(&channels).await?;
        }
        if !globs.is_empty() {
            connection.psubscribe(&globs).await?;
        }
        Ok(connection)
    }
}

//! The subscribing side of a bus: one RESP3 connection, driven by one task that
//! subscribes, unsubscribes, reconnects and resubscribes, one command at a time so
//! that a SUBSCRIBE and an UNSUBSCRIBE of the same channel never overtake each other.
//! Messages go from the connection's push sender straight into each subscription's
//! bounded buffer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use pubsub_core::backoff::Backoff;
use pubsub_core::{Bytes, Delivery, Error, Message, Pattern, Result, Subscription};
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::errors::{convert, is_transient};
use crate::publisher::CONNECTION_TIMEOUT;
use crate::{envelope, glob};

/// A Redis subscription: a channel (SUBSCRIBE) or a glob (PSUBSCRIBE), prefix included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Channel(String),
    Glob(String),
}

/// What a subscription's buffer holds.
#[derive(Clone)]
enum Item {
    Message(Message),
    Gap(Arc<str>),
}

/// One local subscription.
struct Entry {
    id: u64,
    /// The pattern to check arrivals against, for globs (which over-match).
    filter: Option<Pattern>,
    sender: broadcast::Sender<Item>,
}

/// The local subscriptions by Redis subscription: its entries are the reference count.
#[derive(Default)]
struct Registry {
    channels: HashMap<String, Vec<Entry>>,
    globs: HashMap<String, Vec<Entry>>,
    next_id: u64,
    closed: bool,
    /// The driver has a connection with every key subscribed.
    live: bool,
}

impl Registry {
    fn map<'a>(&'a mut self, key: &'a Key) -> (&'a mut HashMap<String, Vec<Entry>>, &'a str) {
        match key {
            Key::Channel(name) => (&mut self.channels, name),
            Key::Glob(name) => (&mut self.globs, name),
        }
    }

    fn contains(&self, key: &Key) -> bool {
        match key {
            Key::Channel(name) => self.channels.contains_key(name),
            Key::Glob(glob) => self.globs.contains_key(glob),
        }
    }

    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.globs.is_empty()
    }

    fn keys(&self) -> Vec<Key> {
        let channels = self.channels.keys().cloned().map(Key::Channel);
        channels
            .chain(self.globs.keys().cloned().map(Key::Glob))
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.channels.values().chain(self.globs.values()).flatten()
    }
}

/// What the push sender and the driver share with the bus.
struct Shared {
    registry: Mutex<Registry>,
    prefix: Arc<str>,
    raw: bool,
    /// The number of the newest connection, so that the end of an older one is ignored.
    generation: AtomicU64,
    /// False while subscriptions wait for the connection (the first one or a
    /// reconnection): publishes wait too, so that what they publish reaches them.
    /// Changed only with the registry locked, so that it agrees with it.
    ready: watch::Sender<bool>,
    closed: watch::Sender<bool>,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a message on `channel` to the subscriptions of `glob` (PSUBSCRIBE), or of
    /// the channel itself when `glob` is `None`.
    fn deliver(&self, glob: Option<&[u8]>, channel: &[u8], payload: Vec<u8>) {
        let Ok(channel) = std::str::from_utf8(channel) else {
            return;
        };
        let Some(topic) = channel.strip_prefix(&*self.prefix) else {
            return;
        };
        let registry = self.registry();
        let entries = match glob.map(std::str::from_utf8) {
            None => registry.channels.get(channel),
            Some(Ok(glob)) => registry.globs.get(glob),
            Some(Err(_)) => None,
        };
        let Some(entries) = entries else {
            return;
        };
        let mut payload = Some(payload);
        let mut message: Option<Message> = None;
        for entry in entries {
            if entry.filter.as_ref().is_some_and(|f| !f.matches(topic)) {
                continue;
            }
            let message = message.get_or_insert_with(|| {
                let bytes = Bytes::from(payload.take().unwrap_or_default());
                envelope::decode(bytes, self.raw).with_topic(topic)
            });
            // An error means the subscriber is gone; its registration is on its way out.
            let _ = entry.sender.send(Item::Message(message.clone()));
        }
    }
}

/// The subscribing side of a bus.
pub(crate) struct Subscriber {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
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

impl Subscriber {
    pub(crate) fn new(client: Client, prefix: Arc<str>, raw: bool, backoff: Backoff) -> Self {
        let shared = Arc::new(Shared {
            registry: Mutex::default(),
            prefix,
            raw,
            generation: AtomicU64::new(0),
            ready: watch::Sender::new(true),
            closed: watch::Sender::new(false),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let driver = Driver {
            shared: Arc::clone(&shared),
            client,
            events: commands.downgrade(),
            commands: receiver,
            connection: None,
            active: Default::default(),
            lost: false,
            backoff,
        };
        tokio::spawn(driver.run());
        Subscriber { shared, commands }
    }

    /// Subscribes to a name or pattern; returns once Redis has confirmed.
    pub(crate) async fn subscribe(&self, pattern: Pattern, buffer: usize) -> Result<Subscription> {
        let prefix = &self.shared.prefix;
        let (key, filter) = match pattern.is_wildcard() {
            true => (Key::Glob(glob::glob(prefix, &pattern)), Some(pattern)),
            false => (Key::Channel(format!("{prefix}{pattern}")), None),
        };
        let (sender, receiver) = broadcast::channel(buffer);
        let id = {
            let mut registry = self.shared.registry();
            if registry.closed {
                return Err(Error::Closed);
            }
            registry.next_id += 1;
            let id = registry.next_id;
            let (map, name) = registry.map(&key);
            let entry = Entry { id, filter, sender };
            map.entry(name.to_owned()).or_default().push(entry);
            if !registry.live {
                self.shared.ready.send_replace(false);
            }
            id
        };
        // From here on, dropping the registration undoes the subscription.
        let registration = Registration {
            shared: Arc::clone(&self.shared),
            commands: self.commands.clone(),
            key: key.clone(),
            id,
        };
        let (reply, confirmed) = oneshot::channel();
        self.send(Command::Subscribe(key, reply))?;
        confirmed.await.map_err(|_| Error::Closed)??;

        // The closure owns the registration: dropping the stream releases it.
        let stream = BroadcastStream::new(receiver).map(move |item| {
            let _registered = &registration;
            match item {
                Ok(Item::Message(message)) => Ok(Delivery::new(message)),
                Ok(Item::Gap(reason)) => Err(Error::Gap {
                    reason: reason.to_string(),
                }),
                Err(BroadcastStreamRecvError::Lagged(missed)) => Err(Error::Lagged { missed }),
            }
        });
        let (shared, commands) = (Arc::clone(&self.shared), self.commands.clone());
        let subscription = Subscription::new(stream);
        Ok(subscription.with_unsubscribe(move || barrier(shared, commands)))
    }

    /// Waits until no subscription waits for a reconnection, up to `deadline`.
    pub(crate) async fn ready(&self, deadline: Instant) -> bool {
        if *self.shared.ready.borrow() {
            return true;
        }
        let mut ready = self.shared.ready.subscribe();
        let closed = self.shared.closed.subscribe();
        tokio::time::timeout_at(deadline, ready.wait_for(|r| *r || *closed.borrow()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Has the driver check its connection (and reconnect if it broke), up to
    /// `deadline`.
    pub(crate) async fn check(&self, deadline: Instant) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Check(reply)).is_ok() {
            let _ = tokio::time::timeout_at(deadline, done).await;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.shared.closed.borrow()
    }

    /// Ends every subscription and the driver.
    pub(crate) fn close(&self) {
        self.shared.closed.send_replace(true);
        let mut registry = self.shared.registry();
        registry.closed = true;
        registry.channels.clear();
        registry.globs.clear();
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }
}

/// Waits until the driver has done every command sent before (an UNSUBSCRIBE, say).
/// While the connection is down there is nothing to wait for: Redis forgot the
/// connection's subscriptions, and the reconnection leaves released ones out.
async fn barrier(shared: Arc<Shared>, commands: mpsc::UnboundedSender<Command>) -> Result<()> {
    if !*shared.ready.borrow() {
        return Ok(());
    }
    let (reply, done) = oneshot::channel();
    if commands.send(Command::Barrier(reply)).is_ok() {
        // The driver ends only when the bus is closed, and that unsubscribes everything.
        let _ = done.await;
    }
    Ok(())
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
        let mut registry = self.shared.registry();
        let (map, name) = registry.map(&self.key);
        if let Some(entries) = map.get_mut(name) {
            entries.retain(|e| e.id != self.id);
            if entries.is_empty() {
                map.remove(name);
            }
        }
        if registry.is_empty() {
            // Nobody waits for the connection any more, so publishes need not either.
            self.shared.ready.send_replace(true);
        }
        drop(registry);
        let _ = self.commands.send(Command::Release(self.key.clone()));
    }
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
        let mut data = info.data.into_iter().map(|v| match v {
            Value::BulkString(bytes) => Some(bytes),
            _ => None,
        });
        let mut next = || data.next().flatten();
        match info.kind {
            PushKind::Message => {
                if let (Some(channel), Some(payload)) = (next(), next()) {
                    self.shared.deliver(None, &channel, payload);
                }
            }
            PushKind::PMessage => {
                if let (Some(glob), Some(channel), Some(payload)) = (next(), next(), next()) {
                    self.shared.deliver(Some(&glob), &channel, payload);
                }
            }
            PushKind::Disconnection => {
                let current = self.shared.generation.load(Ordering::Acquire) == self.generation;
                let mut registry = self.shared.registry();
                if current {
                    registry.live = false;
                    if !registry.is_empty() {
                        // At once, not when the driver gets to it: publishes must wait
                        // from now on.
                        self.shared.ready.send_replace(false);
                    }
                }
                drop(registry);
                if let Some(events) = self.events.upgrade() {
                    let _ = events.send(Command::Lost(self.generation));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The task that owns the connection.
struct Driver {
    shared: Arc<Shared>,
    client: Client,
    events: mpsc::WeakUnboundedSender<Command>,
    commands: mpsc::UnboundedReceiver<Command>,
    connection: Option<MultiplexedConnection>,
    /// What Redis has subscribed on the live connection.
    active: std::collections::HashSet<Key>,
    /// The connection broke while subscriptions were live: they get a gap signal
    /// once it is back.
    lost: bool,
    backoff: Backoff,
}

impl Driver {
    async fn run(mut self) {
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
            Command::Subscribe(key, reply) => {
                let _ = reply.send(self.subscribe(key).await);
            }
            Command::Release(key) => {
                if self.shared.registry().contains(&key) || !self.active.remove(&key) {
                    return;
                }
                if let Some(connection) = &mut self.connection {
                    let done = match &key {
                        Key::Channel(name) => connection.unsubscribe(name).await,
                        Key::Glob(glob) => connection.punsubscribe(glob).await,
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

    async fn subscribe(&mut self, key: Key) -> Result<()> {
        loop {
            let mut connection = self.connect(true).await?;
            if self.active.contains(&key) {
                return Ok(());
            }
            let done = match &key {
                Key::Channel(name) => connection.subscribe(name).await,
                Key::Glob(glob) => connection.psubscribe(glob).await,
            };
            match done {
                Ok(()) => {
                    self.active.insert(key);
                    return Ok(());
                }
                // Reconnecting resubscribes this key too.
                Err(e) if is_transient(&e) => self.lose(),
                Err(e) => return Err(convert("subscribe", e)),
            }
        }
    }

    /// Reconnects if subscriptions wait for it.
    async fn recover(&mut self) {
        if self.connection.is_none() && !self.shared.registry().is_empty() {
            let _ = self.connect(false).await;
        }
    }

    fn lose(&mut self) {
        self.connection = None;
        self.active.clear();
        let mut registry = self.shared.registry();
        registry.live = false;
        if !registry.is_empty() {
            self.lost = true;
            self.shared.ready.send_replace(false);
        }
    }

    /// The live connection, or a new one with every key resubscribed. Retries broken
    /// connections forever (closing the bus ends that); other errors are returned when
    /// `fail_fast`, else retried too.
    async fn connect(&mut self, fail_fast: bool) -> Result<MultiplexedConnection> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let mut backoff = self.backoff.clone();
        loop {
            let keys = self.shared.registry().keys();
            match self.open(&keys).await {
                Ok(connection) => {
                    self.active = keys.into_iter().collect();
                    self.connection = Some(connection.clone());
                    let mut registry = self.shared.registry();
                    if std::mem::take(&mut self.lost) {
                        let reason: Arc<str> = Arc::from(
                            "the connection to Redis was lost and re-established; \
                             messages published in between may have been missed",
                        );
                        for entry in registry.entries() {
                            let _ = entry.sender.send(Item::Gap(Arc::clone(&reason)));
                        }
                        tracing::info!("redis subscriber connection re-established");
                    }
                    // Keys registered while this connection was opened are not on it
                    // yet, but their subscribe has not returned either.
                    registry.live = true;
                    self.shared.ready.send_replace(true);
                    return Ok(connection);
                }
                Err(e) if fail_fast && !is_transient(&e) => {
                    return Err(convert("cannot open the subscriber connection", e));
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "redis subscriber connection failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
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
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let channels: Vec<&str> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Channel(name) => Some(name.as_str()),
                Key::Glob(_) => None,
            })
            .collect();
        let globs: Vec<&str> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Glob(glob) => Some(glob.as_str()),
                Key::Channel(_) => None,
            })
            .collect();
        if !channels.is_empty() {
            connection.subscribe(&channels).await?;
        }
        if !globs.is_empty() {
            connection.psubscribe(&globs).await?;
        }
        Ok(connection)
    }
}

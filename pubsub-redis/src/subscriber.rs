//! The subscribing side of a bus: the registry of local subscriptions, each reading a
//! core [ring](pubsub_core::ring), over one Redis connection that the
//! [driver](crate::driver) task owns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pubsub_core::backoff::Backoff;
use pubsub_core::{ring, Error, Pattern, Result, Subscription};
use redis::Client;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::driver::{Command, Driver};
use crate::registry::{Key, Listener, Registry};

/// What the push sender and the driver share with the bus.
pub(crate) struct Shared {
    registry: Mutex<Registry>,
    pub(crate) prefix: Arc<str>,
    pub(crate) raw: bool,
    /// The number of the newest connection, so that the end of an older one is ignored.
    pub(crate) generation: AtomicU64,
    /// False while subscriptions wait for the connection (the first one or a
    /// reconnection): publishes wait too, so that what they publish reaches them.
    /// Changed only with the registry locked, so that it agrees with it.
    pub(crate) ready: Readiness,
    pub(crate) closed: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the subscriptions have their connection: an atomic for the publish path,
/// which reads it on every publish, and a watch to wait on when they do not.
pub(crate) struct Readiness {
    now: AtomicBool,
    changes: watch::Sender<bool>,
}

impl Readiness {
    fn new() -> Self {
        Readiness {
            now: AtomicBool::new(true),
            changes: watch::Sender::new(true),
        }
    }

    pub(crate) fn get(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, ready: bool) {
        self.now.store(ready, Ordering::Release);
        self.changes.send_replace(ready);
    }
}

/// The subscribing side of a bus.
pub(crate) struct Subscriber {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Subscriber {
    /// Starts the driver task, which connects on the first subscribe.
    pub(crate) fn new(
        client: Client,
        prefix: Arc<str>,
        raw: bool,
        backoff: Backoff,
        shown: String,
    ) -> Self {
        let shared = Arc::new(Shared {
            registry: Mutex::default(),
            prefix,
            raw,
            generation: AtomicU64::new(0),
            ready: Readiness::new(),
            closed: watch::Sender::new(false),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let driver = Driver::new(
            Arc::clone(&shared),
            client,
            commands.downgrade(),
            receiver,
            backoff,
            shown,
        );
        tokio::spawn(driver.run());
        Subscriber { shared, commands }
    }

    /// Subscribes to a name or pattern with a ring of `buffer` messages; returns once
    /// Redis has confirmed.
    pub(crate) async fn subscribe(&self, pattern: &Pattern, buffer: usize) -> Result<Subscription> {
        let (ring, receiver) = ring::channel(buffer);
        let listener = Listener::new(&self.shared.prefix, pattern, ring);
        let (key, id) = {
            let mut registry = self.shared.registry();
            if registry.closed {
                return Err(Error::Closed);
            }
            if !registry.live {
                self.shared.ready.set(false);
            }
            registry.add(listener)
        };
        // From here on, dropping the registration undoes the subscription, also when
        // this future is dropped before Redis confirmed.
        let registration = Registration {
            shared: Arc::clone(&self.shared),
            commands: self.commands.clone(),
            key: key.clone(),
            id,
        };
        let (reply, confirmed) = oneshot::channel();
        self.send(Command::Subscribe(key, reply))?;
        confirmed.await.map_err(|_| Error::Closed)??;

        let (shared, commands) = (Arc::clone(&self.shared), self.commands.clone());
        Ok(Subscription::new(receiver)
            .with_guard(registration)
            .with_unsubscribe(move || barrier(shared, commands)))
    }

    /// Whether no subscription waits for a connection; a load, for every publish.
    pub(crate) fn is_ready(&self) -> bool {
        self.shared.ready.get()
    }

    /// Waits until no subscription waits for a connection, up to `deadline`; false if
    /// the deadline passed or the bus was closed first.
    pub(crate) async fn ready(&self, deadline: Instant) -> bool {
        let mut ready = self.shared.ready.changes.subscribe();
        let mut closed = self.shared.closed.subscribe();
        let waited = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                ready = ready.wait_for(|r| *r) => ready.is_ok(),
                _ = closed.wait_for(|c| *c) => false,
            }
        });
        waited.await.unwrap_or(false)
    }

    /// Has the driver check its connection (and reconnect if it broke), up to
    /// `deadline`.
    pub(crate) async fn check(&self, deadline: Instant) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Check(reply)).is_ok() {
            let _ = tokio::time::timeout_at(deadline, done).await;
        }
    }

    /// Ends every subscription and the driver.
    pub(crate) fn close(&self) {
        self.shared.closed.send_replace(true);
        let mut registry = self.shared.registry();
        registry.closed = true;
        registry.clear();
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::Closed)
    }
}

/// Waits until the driver has done every command sent before (an UNSUBSCRIBE, say).
/// While the connection is down there is nothing to wait for: Redis forgot the
/// connection's subscriptions, and the reconnection leaves released ones out.
async fn barrier(shared: Arc<Shared>, commands: mpsc::UnboundedSender<Command>) -> Result<()> {
    if !shared.ready.get() {
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
        registry.remove(&self.key, self.id);
        if registry.is_empty() {
            // Nobody waits for the connection any more, so publishes need not either.
            self.shared.ready.set(true);
        }
        drop(registry);
        let _ = self.commands.send(Command::Release(self.key.clone()));
    }
}

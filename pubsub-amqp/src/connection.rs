//! The one connection a backend (and every backend made from it with
//! [`AmqpBackend::exchange`](crate::AmqpBackend::exchange)) shares, its publishing
//! channel and the exchanges declared so far.
//!
//! Recovery is lapin's: with `enable_auto_recover`, lapin reconnects with backoff and
//! replays each channel's topology (exchanges, queues, bindings, QoS, consumers and
//! confirm mode) on the new connection. This module only asks for it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, Event, ExchangeKind};
use pubsub_core::{Error, Result};
use tokio::sync::{watch, Mutex, OnceCell};
use tokio::task::JoinHandle;

use crate::errors::{lapin_error, CONNECT};
use crate::options::AmqpBuilder;
use crate::publish::Exchange;

/// The connection, made on first use.
pub(crate) struct Shared {
    pub(crate) options: AmqpBuilder,
    pub(crate) display: String,
    connection: OnceCell<Live>,
    closed: AtomicBool,
}

/// A connection and its publishing channel.
pub(crate) struct Live {
    pub(crate) connection: Connection,
    publishing: std::sync::Mutex<Publishing>,
    /// Serialises declaring exchanges and replacing the channel, and holds the
    /// exchanges declared on the current channel (lapin re-declares them on recovery).
    declaring: Mutex<HashSet<ShortString>>,
    /// The channel broadcast subscriptions share, opened on the first one.
    pub(crate) consuming: Mutex<Option<Channel>>,
    /// How many times lapin re-established the connection: each time, broadcast
    /// subscriptions may have missed messages.
    reconnects: Arc<watch::Sender<u64>>,
    _watcher: AbortOnDrop,
}

impl Live {
    /// Changes each time the connection is re-established.
    pub(crate) fn reconnects(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }
}

/// lapin reports `Connected` to listeners that came after the first connect only
/// when it has re-established the connection.
async fn count_reconnects(
    mut events: impl futures::Stream<Item = Event> + Unpin,
    reconnects: Arc<watch::Sender<u64>>,
) {
    while let Some(event) = events.next().await {
        if let Event::Connected = event {
            reconnects.send_modify(|n| *n += 1);
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The publishing channel; shared behind an `Arc`, which a publish clones with one
/// reference count instead of the channel's many.
struct Publishing {
    channel: Arc<Channel>,
    /// Counts the channels opened for publishing, so that an [`Exchange`] can tell
    /// whether it was declared on this one.
    generation: u64,
}

impl Publishing {
    /// The channel, if it needs no replacing and `exchange` is declared on it.
    fn ready(&self, exchange: &Exchange, connection: &Connection) -> Option<Arc<Channel>> {
        (exchange.ready_on(self.generation) && usable(&self.channel, connection))
            .then(|| Arc::clone(&self.channel))
    }
}

/// Open, or being recovered by lapin along with its connection.
pub(crate) fn usable(channel: &Channel, connection: &Connection) -> bool {
    let status = channel.status();
    status.connected() || status.reconnecting() || connection.status().reconnecting()
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(options: AmqpBuilder, display: String) -> Self {
        Shared {
            options,
            display,
            connection: OnceCell::new(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The connection's state, for `Debug`.
    pub(crate) fn state(&self) -> &'static str {
        let Some(live) = self.connection.get() else {
            return if self.is_closed() {
                "closed"
            } else {
                "not connected"
            };
        };
        let status = live.connection.status();
        match () {
            _ if status.connected() => "connected",
            _ if status.reconnecting() => "reconnecting",
            _ if status.connecting() => "connecting",
            _ if status.errored() => "failed",
            _ => "closed",
        }
    }

    /// The live connection, connecting first if need be.
    pub(crate) async fn live(&self) -> Result<&Live> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let timeout = self.options.connect_timeout;
        self.connection
            .get_or_try_init(|| async {
                tokio::time::timeout(timeout, self.open())
                    .await
                    .map_err(|_| Error::Connection {
                        message: format!(
                            "could not connect to {} within {timeout:?}",
                            self.display
                        ),
                        source: None,
                    })?
            })
            .await
    }

    async fn open(&self) -> Result<Live> {
        let uri = self.options.uri()?;
        let properties = ConnectionProperties::default()
            .with_connection_name(env!("CARGO_PKG_NAME").into())
            .enable_auto_recover()
            .configure_backoff(|backoff| {
                backoff
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter()
                    .without_max_times()
            });
        // lapin's recovering connect retries a refused login as it retries a
        // refused TCP connection, until the timeout. Plain connects first, until one
        // gets through, tell the two apart: wrong credentials are `Error::Auth` at
        // once, even when the broker comes up late.
        loop {
            match Connection::connect_uri(uri.clone(), ConnectionProperties::default()).await {
                Ok(probe) => {
                    drop(probe.close(200, "credentials checked".into()).await);
                    break;
                }
                Err(error) => {
                    if let auth @ Error::Auth(_) = lapin_error(CONNECT, error) {
                        return Err(auth);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let connection = Connection::connect_uri(uri, properties)
            .await
            .map_err(|e| lapin_error(CONNECT, e))?;
        let channel = self.publishing_channel(&connection).await?;
        let (reconnects, _) = watch::channel(0);
        let reconnects = Arc::new(reconnects);
        let watcher = tokio::spawn(count_reconnects(
            connection.events_listener(),
            Arc::clone(&reconnects),
        ));
        Ok(Live {
            connection,
            publishing: std::sync::Mutex::new(Publishing {
                channel: Arc::new(channel),
                generation: 1,
            }),
            declaring: Mutex::new(HashSet::new()),
            consuming: Mutex::new(None),
            reconnects,
            _watcher: AbortOnDrop(watcher),
        })
    }

    async fn publishing_channel(&self, connection: &Connection) -> Result<Channel> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| lapin_error("open a channel", e))?;
        // Mandatory publishes need confirms to tell a return from a delivery, so the
        // channel always confirms; `confirms(false)` only stops waiting for them.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| lapin_error("enable publisher confirms", e))?;
        Ok(channel)
    }

    /// The publishing channel, with `exchange` declared on it. A channel the broker
    /// closed (a soft error) is replaced; one that is recovering is returned as is,
    /// for the caller to wait on.
    pub(crate) async fn publisher(&self, exchange: &Exchange) -> Result<Arc<Channel>> {
        let live = self.live().await?;
        // Every publish passes here: the common case takes a short lock, compares one
        // number and does not await.
        if let Some(channel) = lock(&live.publishing).ready(exchange, &live.connection) {
            return Ok(channel);
        }
        let mut declared = live.declaring.lock().await;
        let (mut channel, mut generation) = {
            let publishing = lock(&live.publishing);
            (Arc::clone(&publishing.channel), publishing.generation)
        };
        if !usable(&channel, &live.connection) {
            channel = Arc::new(self.publishing_channel(&live.connection).await?);
            generation += 1;
            declared.clear();
            *lock(&live.publishing) = Publishing {
                channel: Arc::clone(&channel),
                generation,
            };
        }
        if !exchange.name.as_str().is_empty() && !declared.contains(&exchange.name) {
            declare_exchange(&channel, &exchange.name, exchange.kind.clone()).await?;
            declared.insert(exchange.name.clone());
        }
        exchange.declared_on(generation);
        Ok(channel)
    }

    /// Closes the connection: consumers are cancelled and their streams end.
    pub(crate) async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        if let Some(live) = self.connection.get() {
            live.connection
                .close(200, "closed by the application".into())
                .await
                .map_err(|e| lapin_error("close the connection", e))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("broker", &self.display)
            .field("connection", &self.state())
            .finish_non_exhaustive()
    }
}

/// Declares a durable exchange of `kind` named `name`.
pub(crate) async fn declare_exchange(
    channel: &Channel,
    name: &ShortString,
    kind: ExchangeKind,
) -> Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.clone(), kind, options, FieldTable::default())
        .await
        .map_err(|e| lapin_error(&format!("declare exchange {:?}", name.as_str()), e))
}

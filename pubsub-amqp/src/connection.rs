//! The one connection a backend (and every backend made from it with
//! [`AmqpBackend::exchange`](crate::AmqpBackend::exchange)) shares at a time, its
//! publishing channels and the exchanges declared on them.
//!
//! Recovery is this crate's, not lapin's. lapin 4.12's `enable_auto_recover` replays
//! topology on a new socket to the same address, but its I/O loop can stop for good
//! when the broker goes while frames wait to be written (a restart under load): the
//! connection then stays "reconnecting" forever, and with it every publish and
//! consumer. So a connection here is never recovered in place: once lapin reports it
//! failed or closed, the next use opens a new one, to the first reachable broker
//! address, and every subscription declares, binds and consumes again on it (see
//! [`crate::subscribe`]). A failed connection is never kept.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use pubsub_core::backoff::Backoff;
use pubsub_core::tls::certificate_problem;
use pubsub_core::{Error, Result};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::errors::{connect_error, lapin_error};
use crate::inbox::Inboxes;
use crate::lost::Liveness;
use crate::options::AmqpBuilder;
use crate::probe::probe;
use crate::publish::Exchange;
use crate::subscribe::{DeadLetters, Rings, SharedChannel};
use crate::windows::ConfirmWindows;

/// The connection, made on first use and made again after it failed.
pub(crate) struct Shared {
    pub(crate) options: AmqpBuilder,
    pub(crate) display: String,
    /// One per broker address, in the order given.
    addresses: Vec<Address>,
    /// The address to try first: the one that worked last.
    preferred: AtomicUsize,
    /// The current connection, if one was made; a failed one stays here until
    /// replaced, so that `Debug` can say so.
    current: watch::Sender<Option<Arc<Live>>>,
    /// Held while connecting, so that one connection replaces a failed one.
    connecting: Mutex<()>,
    /// Numbers the publishing channels of every connection.
    channels_opened: AtomicU64,
    /// Where each connection's count of dropped broadcast messages goes.
    pub(crate) rings: Arc<Rings>,
    /// The direct reply-to consumer of the bus's request inboxes.
    pub(crate) inboxes: Inboxes,
    closed: AtomicBool,
}

/// A broker address and the URI to reach it.
pub(crate) struct Address {
    pub(crate) uri: AMQPUri,
    /// `host:port`, for errors and logs.
    pub(crate) display: String,
}

impl std::fmt::Debug for Address {
    // The URI holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// A connection and its publishing channel.
pub(crate) struct Live {
    pub(crate) connection: Connection,
    /// What waits for the broker on this connection waits on this too.
    pub(crate) liveness: Liveness,
    /// Counts the connections made so far: subscriptions compare it to tell a new
    /// connection from the one they consumed on.
    pub(crate) number: u64,
    /// Where it goes, for logs.
    pub(crate) address: String,
    publishing: std::sync::Mutex<Publishing>,
    /// Which publishing channel a confirmed publish takes.
    windows: ConfirmWindows,
    /// Serialises declaring exchanges and replacing the channel, and holds the
    /// exchanges declared on the current channel.
    declaring: Mutex<HashSet<ShortString>>,
    /// The channel broadcast subscriptions share, opened on the first one.
    pub(crate) consuming: Mutex<Option<SharedChannel>>,
    /// Where broadcast queues dead-letter what they drop.
    pub(crate) dead_letters: DeadLetters,
}

impl Live {
    /// Whether it can be used: a connection in any other state is not coming back.
    pub(crate) fn is_open(&self) -> bool {
        self.connection.status().connected()
    }
}

/// The publishing channels, each in confirm mode, shared by confirmed publishes as
/// [`ConfirmWindows`] says. Each is shared behind an `Arc`, which a publish clones
/// with one reference count instead of the channel's many.
struct Publishing {
    channels: Vec<Arc<Channel>>,
    /// Numbers the sets of channels opened for publishing, so that an [`Exchange`]
    /// can tell whether it was declared since the last was replaced.
    generation: u64,
}

impl Publishing {
    /// Channel `index`, if it needs no replacing and `exchange` is declared.
    fn ready(&self, exchange: &Exchange, index: usize) -> Option<Arc<Channel>> {
        let channel = &self.channels[index];
        (exchange.ready_on(self.generation) && channel.status().connected())
            .then(|| Arc::clone(channel))
    }
}

/// A publishing channel lent to one publish, with its place in the channel's confirm
/// window if the publish waits for its confirm.
pub(crate) struct Lease {
    channel: Arc<Channel>,
    /// Held for its drop, which gives the place back.
    _in_flight: Option<InFlight>,
}

impl Lease {
    /// A channel that is no publishing channel (the request inbox's): no window.
    pub(crate) fn unwindowed(channel: Arc<Channel>) -> Self {
        Lease {
            channel,
            _in_flight: None,
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        &self.channel
    }
}

/// A place in a confirm window, given back when the publish is done.
struct InFlight {
    live: Arc<Live>,
    index: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.live.windows.release(self.index);
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Delays between attempts to reach the broker again: short at first, as a broker
/// restart takes seconds, and never so long that a subscription resumes late.
pub(crate) fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
}

impl Shared {
    pub(crate) fn new(options: AmqpBuilder, display: String, addresses: Vec<Address>) -> Self {
        Shared {
            options,
            display,
            addresses,
            preferred: AtomicUsize::new(0),
            current: watch::Sender::new(None),
            connecting: Mutex::new(()),
            channels_opened: AtomicU64::new(0),
            rings: Arc::default(),
            inboxes: Inboxes::default(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The connection's state, for `Debug`.
    pub(crate) fn state(&self) -> &'static str {
        let current = self.current.borrow();
        let Some(live) = current.as_ref() else {
            return if self.is_closed() {
                "closed"
            } else {
                "not connected"
            };
        };
        let status = live.connection.status();
        match () {
            _ if status.connected() => "connected",
            _ if status.connecting() => "connecting",
            _ if status.errored() => "failed",
            _ => "closed",
        }
    }

    /// The open connection, connecting first if there is none or the last one
    /// failed. One attempt per broker address, within the connect timeout.
    pub(crate) async fn live(&self) -> Result<Arc<Live>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if let Some(live) = self.open_connection() {
            return Ok(live);
        }
        self.reconnect(Instant::now() + self.options.connect_timeout)
            .await
    }

    /// The error of a connect that ran out of time at a step that cannot tell why.
    fn no_answer(&self) -> Error {
        Error::Connection {
            message: format!(
                "could not connect to {} within {:?}: no answer",
                self.display, self.options.connect_timeout
            ),
            source: None,
        }
    }

    /// The open connection for a subscribe: like [`live`](Self::live), but a broker
    /// that cannot be reached yet is tried again with backoff until the connect
    /// timeout has passed, and then the last failure says why (a lazy backend's first
    /// subscribe waits for its broker, as `connect_timeout` promises; a refusal of the
    /// credentials or the vhost is final at once).
    pub(crate) async fn live_within_timeout(&self) -> Result<Arc<Live>> {
        let deadline = tokio::time::Instant::now() + self.options.connect_timeout;
        let mut backoff = reconnect_backoff();
        loop {
            match self.live().await {
                // Waiting cannot make a refused certificate good.
                Err(error @ Error::Connection { .. }) if certificate_problem(&error).is_none() => {
                    let delay = backoff.next_delay();
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(error);
                    }
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// The open connection, reconnecting with backoff while the broker cannot be
    /// reached, until it can or the backend is closed. For what must resume by itself
    /// (subscriptions); `Err` only for what waiting cannot change: the backend was
    /// closed, or the broker refused the credentials or the vhost. Any other failure
    /// to connect is tried again, as a subscription that gave up would stay silent.
    pub(crate) async fn live_eventually(&self) -> Result<Arc<Live>> {
        let mut backoff = reconnect_backoff();
        loop {
            match self.live().await {
                Err(Error::Connection { message, .. }) => {
                    tracing::debug!(broker = %self.display, %message, "waiting for the broker");
                }
                Err(error @ (Error::Closed | Error::Auth(_))) => return Err(error),
                Err(error) => {
                    tracing::warn!(broker = %self.display, %error, "connecting failed; trying again");
                }
                live => return live,
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    fn open_connection(&self) -> Option<Arc<Live>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|live| live.is_open())
            .cloned()
    }

    /// Connects by `deadline`. No timer wraps the whole: each step keeps to the
    /// deadline itself, so the one that runs out says why (an outer timer firing on
    /// the same tick as the probe's would hide the probe's reason).
    async fn reconnect(&self, deadline: Instant) -> Result<Arc<Live>> {
        let _connecting = tokio::time::timeout_at(deadline, self.connecting.lock())
            .await
            .map_err(|_| self.no_answer())?;
        // Someone else may have replaced it while this waited.
        if let Some(live) = self.open_connection() {
            return Ok(live);
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let number = self.current.borrow().as_ref().map_or(1, |l| l.number + 1);
        let live = Arc::new(self.open(number, deadline).await?);
        if number > 1 {
            tracing::info!(broker = %live.address, "connected to the broker again");
        }
        self.current.send_replace(Some(Arc::clone(&live)));
        if self.is_closed() {
            // Closed meanwhile: this connection would outlive the backend.
            drop(
                live.connection
                    .close(200, "closed by the application".into())
                    .await,
            );
            return Err(Error::Closed);
        }
        Ok(live)
    }

    /// Connects to the first address that answers, starting with the one that worked
    /// last, each given an equal share of the time left, so that one address that
    /// never answers leaves time for the others. Every address's failure is reported
    /// when none answers.
    async fn open(&self, number: u64, deadline: Instant) -> Result<Live> {
        let first = self.preferred.load(Ordering::Relaxed);
        let count = self.addresses.len();
        let mut failures = Vec::new();
        for (tried, index) in (0..count).map(|i| (i, (first + i) % count)) {
            let address = &self.addresses[index];
            let left = deadline.saturating_duration_since(Instant::now());
            let share = left / u32::try_from(count - tried).unwrap_or(u32::MAX);
            match self.open_at(address, number, Instant::now() + share).await {
                Ok(live) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(live);
                }
                // Another node will not accept these credentials either.
                Err(error @ Error::Auth(_)) => return Err(error),
                Err(error) => {
                    tracing::debug!(broker = %address.display, %error, "connect failed");
                    failures.push(error);
                }
            }
        }
        Err(match failures.len() {
            1 => failures.remove(0),
            _ => Error::Connection {
                message: format!(
                    "could not connect to any of {}: {}",
                    self.display,
                    failures
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                source: failures.pop().map(|e| Box::new(e) as _),
            },
        })
    }

    async fn open_at(&self, address: &Address, number: u64, deadline: Instant) -> Result<Live> {
        probe(address, deadline).await?;
        tokio::time::timeout_at(deadline, self.handshake(address, number))
            .await
            .map_err(|_| self.no_answer())?
    }

    /// The TLS settings of every connection to an `amqps://` address.
    fn tls(&self) -> OwnedTLSConfig {
        OwnedTLSConfig {
            identity: None,
            cert_chain: self.options.root_certificate.clone(),
        }
    }

    /// The address that worked last, and its TLS settings, for a connection spoken
    /// by hand ([`crate::quarantine`]).
    pub(crate) fn preferred_address(&self) -> Option<(&Address, OwnedTLSConfig)> {
        let index = self.preferred.load(Ordering::Relaxed);
        self.addresses
            .get(index)
            .map(|address| (address, self.tls()))
    }

    /// lapin's connection to an address the probe found answering.
    async fn handshake(&self, address: &Address, number: u64) -> Result<Live> {
        let properties =
            ConnectionProperties::default().with_connection_name(env!("CARGO_PKG_NAME").into());
        let tls = self.tls();
        let runtime =
            lapin::runtime::default_runtime().map_err(|e| connect_error(&address.display, e))?;
        let connection =
            Connection::connect_uri_with_config(address.uri.clone(), properties, tls, runtime)
                .await
                .map_err(|e| connect_error(&address.display, e))?;
        let channels = self.publishing_channels(&connection).await?;
        Ok(Live {
            windows: ConfirmWindows::new(channels.len(), self.options.confirm_window),
            liveness: Liveness::watch(&connection),
            connection,
            number,
            address: address.display.clone(),
            publishing: std::sync::Mutex::new(Publishing {
                channels,
                generation: self.channels_opened.fetch_add(1, Ordering::Relaxed) + 1,
            }),
            declaring: Mutex::new(HashSet::new()),
            consuming: Mutex::new(None),
            dead_letters: DeadLetters::default(),
        })
    }

    async fn publishing_channels(&self, connection: &Connection) -> Result<Vec<Arc<Channel>>> {
        let opened = (0..self.options.publishing_channels.max(1))
            .map(|_| self.publishing_channel(connection));
        futures::future::try_join_all(opened)
            .await
            .map(|channels| channels.into_iter().map(Arc::new).collect())
    }

    pub(crate) async fn publishing_channel(&self, connection: &Connection) -> Result<Channel> {
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

    /// A publishing channel, with `exchange` declared. A confirmed publish takes the
    /// channel its confirm window gives it ([`ConfirmWindows`]) and holds its place
    /// there until the returned lease drops; the others all take the first, which
    /// keeps their order (the broker would not across channels). Channels the broker
    /// closed (a soft error) are replaced, and so is a connection that failed.
    pub(crate) async fn publisher(&self, exchange: &Exchange, confirmed: bool) -> Result<Lease> {
        let live = self.live().await?;
        let index = match confirmed {
            true => live.windows.take(),
            false => 0,
        };
        // Taken before anything can return early, which gives it back.
        let in_flight = confirmed.then(|| InFlight {
            live: Arc::clone(&live),
            index,
        });
        // Every publish passes here: the common case takes a short lock, compares one
        // number and does not await.
        if let Some(channel) = lock(&live.publishing).ready(exchange, index) {
            return Ok(Lease {
                channel,
                _in_flight: in_flight,
            });
        }
        let mut declared = live.declaring.lock().await;
        let (mut channels, mut generation) = {
            let publishing = lock(&live.publishing);
            (publishing.channels.clone(), publishing.generation)
        };
        if channels.iter().any(|c| !c.status().connected()) {
            for channel in &mut channels {
                if !channel.status().connected() {
                    *channel = Arc::new(self.publishing_channel(&live.connection).await?);
                }
            }
            generation = self.channels_opened.fetch_add(1, Ordering::Relaxed) + 1;
            declared.clear();
            *lock(&live.publishing) = Publishing {
                channels: channels.clone(),
                generation,
            };
        }
        let channel = Arc::clone(&channels[index]);
        if !exchange.name.as_str().is_empty() && !declared.contains(&exchange.name) {
            declare_exchange(&channel, &exchange.name, exchange.kind.clone()).await?;
            declared.insert(exchange.name.clone());
        }
        exchange.declared_on(generation);
        Ok(Lease {
            channel,
            _in_flight: in_flight,
        })
    }

    /// Closes the connection: consumers are cancelled and their streams end.
    pub(crate) async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        // Waits for a connect under way, which then sees the flag.
        let _connecting = self.connecting.lock().await;
        let current = self.current.borrow().clone();
        if let Some(live) = current.filter(|live| live.is_open()) {
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

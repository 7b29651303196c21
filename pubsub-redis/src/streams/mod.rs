//! Streams mode: a topic is a Redis Stream. Publishes are `XADD`s on the command
//! connection; every subscription reads with blocking `XREAD`/`XREADGROUP` on a
//! connection of its own, since a blocked read holds its whole connection.

mod blocking;
mod broadcast;
mod group;
mod publisher;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::{Error, Result, Subscription, TopicName};
use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, RedisResult, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster;
use crate::commands::{Commands, Dialer, Renewed};
use crate::diagnose::connect_error;
use crate::errors::{convert, retry, retry_connect};
use crate::options::{Endpoint, StreamSettings};
use crate::publisher::{client, config};
use crate::RedisBuilder;

pub(crate) use publisher::StreamPublisher;

use blocking::READ_TIMEOUT;

/// The counter of messages a group got back, watched by its local members.
type Requeued = watch::Sender<u64>;

/// What the publishers, readers and group members of a Streams bus share.
pub(crate) struct Streams {
    commands: Commands,
    /// For the readers' own connections.
    dialer: Dialer,
    settings: StreamSettings,
    prefix: Arc<str>,
    raw: bool,
    shown: String,
    publish_timeout: Duration,
    backoff: Backoff,
    closed: watch::Sender<bool>,
    /// Per stream and group, a counter the local members watch: a nack bumps it so
    /// that they claim the message back at once.
    requeued: Mutex<HashMap<(String, String), Weak<Requeued>>>,
}

impl Streams {
    pub(crate) async fn connect(options: &RedisBuilder, endpoint: &Endpoint) -> Result<Self> {
        let deadline = Instant::now() + options.connect_budget;
        let shown = &endpoint.shown;
        let failed = |e| convert(&format!("cannot connect to {shown}"), e);
        if options.is_cluster() {
            let commands = cluster::client(endpoint, cluster::attempt_timeout(options))?;
            let connection = retry(deadline, options.backoff.clone(), || {
                commands.get_async_connection()
            })
            .await
            .map_err(failed)?;
            let readers = cluster::reader_client(endpoint, READ_TIMEOUT)?;
            return Ok(Self::new(
                options,
                endpoint,
                Dialer::Cluster(readers),
                Commands::Cluster(Renewed::new(commands, connection)),
            ));
        }
        let client = client(endpoint)?;
        let attempt = retry_connect(deadline, options.backoff.clone(), || {
            ConnectionManager::new_with_config(client.clone(), config(options.publish_timeout))
        });
        let commands = match attempt.await {
            Ok(commands) => commands,
            Err(e) => return Err(connect_error(shown, &endpoint.publish, e).await),
        };
        Ok(Self::new(
            options,
            endpoint,
            Dialer::Single(client),
            Commands::Single(commands),
        ))
    }

    pub(crate) fn lazy(options: &RedisBuilder, endpoint: &Endpoint) -> Result<Self> {
        let client = client(endpoint)?;
        let commands = ConnectionManager::new_lazy_with_config(
            client.clone(),
            config(options.publish_timeout),
        )
        .map_err(|e| convert(&format!("cannot connect to {}", endpoint.shown), e))?;
        Ok(Self::new(
            options,
            endpoint,
            Dialer::Single(client),
            Commands::Single(commands),
        ))
    }

    fn new(
        options: &RedisBuilder,
        endpoint: &Endpoint,
        dialer: Dialer,
        commands: Commands,
    ) -> Self {
        Streams {
            commands,
            dialer,
            settings: options.streams.clone().expect("Streams mode has settings"),
            prefix: Arc::clone(&options.prefix),
            raw: options.raw,
            shown: endpoint.shown.clone(),
            publish_timeout: options.publish_timeout,
            backoff: options.backoff.clone(),
            closed: watch::Sender::new(false),
            requeued: Mutex::default(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Ends every reader, and with them the subscriptions.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The stream key of `topic`.
    fn key(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// A broadcast subscription to `topic`, reading entries added after `from`
    /// (`None`: after the newest entry now).
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        topic: TopicName,
        buffer: usize,
        from: Option<String>,
    ) -> Result<Subscription> {
        broadcast::subscribe(self, topic, buffer, from).await
    }

    /// A member of consumer group `group` of `topic`.
    pub(crate) async fn subscribe_group(
        self: &Arc<Self>,
        topic: TopicName,
        group: &str,
        prefetch: usize,
    ) -> Result<Subscription> {
        group::subscribe(self, topic, group, prefetch).await
    }

    /// Runs `command` on the command connection, waiting through an outage up to the
    /// publish timeout.
    async fn send(&self, command: &Cmd) -> RedisResult<Value> {
        let deadline = Instant::now() + self.publish_timeout;
        retry(deadline, self.backoff.clone(), || async {
            let value = self.commands.send(command).await?;
            value.extract_error()
        })
        .await
    }

    /// [`send`](Self::send), with the reply converted and errors made core errors.
    async fn query<T: FromRedisValue>(&self, what: &str, command: &Cmd) -> Result<T> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let value = self
            .send(command)
            .await
            .map_err(|e| convert(&format!("{what} on {}", self.shown), e))?;
        redis::from_redis_value(value).map_err(|e| convert(what, e.into()))
    }

    /// The requeue counter of `key`'s group `group`, shared by the local members.
    fn requeued(&self, key: &str, group: &str) -> Arc<Requeued> {
        let mut map = self.requeued.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, counter| counter.strong_count() > 0);
        let slot = map.entry((key.to_owned(), group.to_owned())).or_default();
        match slot.upgrade() {
            Some(counter) => counter,
            None => {
                let counter = Arc::new(watch::Sender::new(0));
                *slot = Arc::downgrade(&counter);
                counter
            }
        }
    }
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("url", &self.shown)
            .field("settings", &self.settings)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Resolves once the bus is closed (holding no borrow of the flag across awaits).
async fn closing(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}

//! Publishing: one multiplexed connection that pipelines the concurrent publishes of
//! every topic and reconnects when it breaks, and the per-topic publishers on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pubsub_core::backend::{PublishOptions, Publisher, Publishing};
use pubsub_core::backoff::Backoff;
use pubsub_core::{Error, Message, Result, TopicName};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, RedisResult};
use tokio::time::Instant;

use crate::diagnose::connect_error;
use crate::envelope;
use crate::errors::{convert, is_transient, retry_connect};
use crate::options::Endpoint;
use crate::subscriber::Subscriber;

/// How long one attempt to open a connection may take.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// What every publisher of a bus shares: the connection, and the bus's subscriber,
/// whose reconnections a publish waits for.
pub(crate) struct Link {
    connection: ConnectionManager,
    pub(crate) subscriber: Subscriber,
    raw: bool,
    publish_timeout: Duration,
    backoff: Backoff,
    shown: String,
    closed: AtomicBool,
}

/// The publishing connection's settings, from the builder.
pub(crate) struct LinkOptions {
    pub(crate) raw: bool,
    pub(crate) publish_timeout: Duration,
    pub(crate) backoff: Backoff,
}

impl Link {
    /// Connects, trying until `budget` is spent.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        budget: Duration,
        options: LinkOptions,
        subscriber: Subscriber,
    ) -> Result<Self> {
        let client = client(endpoint)?;
        let deadline = Instant::now() + budget;
        let attempt = retry_connect(deadline, options.backoff.clone(), || {
            ConnectionManager::new_with_config(client.clone(), config(options.publish_timeout))
        });
        let connection = match attempt.await {
            Ok(connection) => connection,
            Err(e) => return Err(connect_error(&endpoint.shown, &endpoint.publish, e).await),
        };
        Ok(Self::new(endpoint, connection, options, subscriber))
    }

    /// A link that connects on its first publish.
    pub(crate) fn lazy(
        endpoint: &Endpoint,
        options: LinkOptions,
        subscriber: Subscriber,
    ) -> Result<Self> {
        let connection = ConnectionManager::new_lazy_with_config(
            client(endpoint)?,
            config(options.publish_timeout),
        )
        .map_err(|e| convert(&format!("cannot connect to {}", endpoint.shown), e))?;
        Ok(Self::new(endpoint, connection, options, subscriber))
    }

    fn new(
        endpoint: &Endpoint,
        connection: ConnectionManager,
        options: LinkOptions,
        subscriber: Subscriber,
    ) -> Self {
        Link {
            connection,
            subscriber,
            raw: options.raw,
            publish_timeout: options.publish_timeout,
            backoff: options.backoff,
            shown: endpoint.shown.clone(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Fails every later publish and subscribe, and ends the subscriptions.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.subscriber.close();
    }

    /// Sends `publish` (a `PUBLISH` of `topic`) and returns how many subscribers Redis
    /// handed it to. Waits through an outage up to the publish timeout.
    async fn send(&self, topic: &TopicName, publish: &Cmd) -> Result<u64> {
        let deadline = Instant::now() + self.publish_timeout;
        let mut backoff: Option<Backoff> = None;
        loop {
            // Subscriptions of this bus that wait for their connection must get what
            // is published now; the check is an atomic load while they do not.
            if !self.subscriber.is_ready() && !self.subscriber.ready(deadline).await {
                return Err(self.outage(topic, None));
            }
            match self.query(publish).await {
                Ok(receivers) => return Ok(receivers),
                Err(e) if is_transient(&e) => {
                    let now = Instant::now();
                    if now >= deadline || self.is_closed() {
                        return Err(self.outage(topic, Some(e)));
                    }
                    // Our subscriptions may have lost their connection too: what we
                    // publish next must not overtake their resubscription.
                    self.subscriber.check(deadline).await;
                    let delay = backoff
                        .get_or_insert_with(|| self.backoff.clone())
                        .next_delay();
                    tokio::time::sleep(delay.min(deadline.saturating_duration_since(now))).await;
                }
                Err(e) => return Err(convert(&format!("publish to {topic:?}"), e)),
            }
        }
    }

    /// One `PUBLISH`, straight to the connection: its reply is the receiver count.
    async fn query(&self, publish: &Cmd) -> RedisResult<u64> {
        // A clone is a handle on the same pipelined connection.
        let value = self.connection.clone().send_packed_command(publish).await?;
        Ok(redis::from_redis_value(value.extract_error()?)?)
    }

    fn outage(&self, topic: &TopicName, source: Option<redis::RedisError>) -> Error {
        if self.is_closed() {
            return Error::Closed;
        }
        Error::Connection {
            message: format!(
                "publish to {topic:?}: Redis at {} was unreachable for the whole publish \
                 timeout of {:?}",
                self.shown, self.publish_timeout
            ),
            source: source.map(Into::into),
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.shown)
            .field("raw", &self.raw)
            .field("publish_timeout", &self.publish_timeout)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The publisher of one topic: its Redis channel name, prefix included, built once.
#[derive(Debug)]
pub(crate) struct ChannelPublisher {
    topic: TopicName,
    channel: Box<[u8]>,
    link: Arc<Link>,
}

impl ChannelPublisher {
    pub(crate) fn new(link: Arc<Link>, prefix: &str, topic: &TopicName) -> Self {
        let channel = [prefix.as_bytes(), topic.as_bytes()].concat().into();
        ChannelPublisher {
            topic: topic.clone(),
            channel,
            link,
        }
    }

    /// The `PUBLISH` command, sized exactly so that building it allocates once.
    fn command(&self, payload: &[u8]) -> Cmd {
        const NAME: &str = "PUBLISH";
        let mut publish = Cmd::with_capacity(3, NAME.len() + self.channel.len() + payload.len());
        publish.arg(NAME).arg(&*self.channel).arg(payload);
        publish
    }
}

impl Publisher for ChannelPublisher {
    fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
        if self.link.is_closed() {
            return Publishing::done(Err(Error::Closed));
        }
        let publish = match envelope::encode(&message, self.link.raw) {
            Ok(payload) => self.command(&payload),
            Err(e) => return Publishing::done(Err(e)),
        };
        // The command holds its own copy: the message need not live on in the future.
        drop(message);
        Publishing::pending(async move {
            match self.link.send(&self.topic, &publish).await? {
                0 if options.mandatory => Err(Error::NoResponders {
                    topic: self.topic.to_string(),
                }),
                _ => Ok(()),
            }
        })
    }
}

pub(crate) fn client(endpoint: &Endpoint) -> Result<Client> {
    endpoint.client(&endpoint.publish)
}

/// One attempt per reconnection: the publish loop does the waiting, with its own
/// deadline.
pub(crate) fn config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
}

//! `RedisBackend`: the `Backend` over a publisher and a subscriber.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::{async_trait, Backend, Capabilities, Error, Message, Pattern, Result};
use pubsub_core::{SubscribeOptions, Subscription};
use tokio::time::Instant;

use crate::errors::{convert, is_transient};
use crate::options::Endpoint;
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;
use crate::{envelope, RedisBuilder};

/// Redis' own limit on a string (`proto-max-bulk-len`).
const MAX_PAYLOAD: usize = 512 * 1024 * 1024;

/// A Redis PubSub broker: see the [crate docs](crate) for how topics, patterns and
/// messages map to Redis.
///
/// ```no_run
/// use pubsub_core::PubSub;
/// use pubsub_redis::RedisBackend;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus = PubSub::new(RedisBackend::connect("redis://127.0.0.1/").await?);
/// bus.topic("changed_task.alice").publish(&serde_json::json!({"task": 1})).await?;
/// # Ok(())
/// # }
/// ```
pub struct RedisBackend {
    shown: String,
    prefix: std::sync::Arc<str>,
    raw: bool,
    buffer: usize,
    publish_timeout: Duration,
    backoff: Backoff,
    publisher: Publisher,
    subscriber: Subscriber,
    closed: AtomicBool,
}

impl RedisBackend {
    /// Connects to `url` (`redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://` for TLS) with the default options. For TLS, ring's rustls
    /// `CryptoProvider` becomes the process default unless one was installed.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// A builder for the options: prefix, raw mode, buffer size, timeouts.
    pub fn builder(url: &str) -> RedisBuilder {
        RedisBuilder::new(url)
    }

    /// Returns at once with the default options and connects in the background (see
    /// [`RedisBuilder::connect_lazy`]).
    pub fn connect_lazy(url: &str) -> Result<Self> {
        Self::builder(url).connect_lazy()
    }

    pub(crate) async fn open(options: RedisBuilder) -> Result<Self> {
        let endpoint = options.endpoint()?;
        let publisher = Publisher::connect(
            &endpoint,
            options.connect_budget,
            options.backoff.clone(),
            options.publish_timeout,
        )
        .await?;
        Self::assemble(options, endpoint, publisher)
    }

    pub(crate) fn open_lazy(options: RedisBuilder) -> Result<Self> {
        let endpoint = options.endpoint()?;
        let publisher = Publisher::lazy(&endpoint, options.publish_timeout)?;
        Self::assemble(options, endpoint, publisher)
    }

    fn assemble(options: RedisBuilder, endpoint: Endpoint, publisher: Publisher) -> Result<Self> {
        let subscribe_client = redis::Client::open(endpoint.subscribe.clone())
            .map_err(|e| convert(&format!("cannot use {}", endpoint.shown), e))?;
        let subscriber = Subscriber::new(
            subscribe_client,
            options.prefix.clone(),
            options.raw,
            options.backoff.clone(),
        );
        Ok(RedisBackend {
            shown: endpoint.shown,
            prefix: options.prefix,
            raw: options.raw,
            buffer: options.buffer,
            publish_timeout: options.publish_timeout,
            backoff: options.backoff,
            publisher,
            subscriber,
            closed: AtomicBool::new(false),
        })
    }

    /// Publishes and returns how many subscribers Redis handed the message to.
    async fn send(&self, message: &Message) -> Result<u64> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let channel = match self.prefix.is_empty() {
            true => std::borrow::Cow::Borrowed(message.topic()),
            false => std::borrow::Cow::Owned(format!("{}{}", self.prefix, message.topic())),
        };
        let payload = envelope::encode(message, self.raw)?;
        let deadline = Instant::now() + self.publish_timeout;
        let mut backoff = self.backoff.clone();
        loop {
            if !self.subscriber.ready(deadline).await {
                return Err(self.outage(message, None));
            }
            match self.publisher.publish(&channel, &payload).await {
                Ok(receivers) => return Ok(receivers),
                Err(e) if is_transient(&e) => {
                    let now = Instant::now();
                    if now >= deadline || self.closed.load(Ordering::Acquire) {
                        return Err(self.outage(message, Some(e)));
                    }
                    // Our subscriptions may have lost their connection too: what we
                    // publish next must not overtake their resubscription.
                    self.subscriber.check(deadline).await;
                    let delay = backoff.next_delay();
                    tokio::time::sleep(delay.min(deadline.saturating_duration_since(now))).await;
                }
                Err(e) => return Err(convert(&format!("publish to {:?}", message.topic()), e)),
            }
        }
    }

    fn outage(&self, message: &Message, source: Option<redis::RedisError>) -> Error {
        if self.closed.load(Ordering::Acquire) {
            return Error::Closed;
        }
        Error::Connection {
            message: format!(
                "publish to {:?}: Redis at {} was unreachable for the whole publish timeout of {:?}",
                message.topic(),
                self.shown,
                self.publish_timeout
            ),
            source: source.map(Into::into),
        }
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .patterns(true)
            .headers(!self.raw)
            .no_responders(true)
            .max_payload(Some(MAX_PAYLOAD))
    }

    async fn publish(&self, message: Message) -> Result<()> {
        self.send(&message).await.map(drop)
    }

    async fn publish_mandatory(&self, message: Message) -> Result<()> {
        match self.send(&message).await? {
            0 => Err(Error::NoResponders {
                topic: message.topic().to_owned(),
            }),
            _ => Ok(()),
        }
    }

    async fn subscribe(&self, topic: &str, options: SubscribeOptions) -> Result<Subscription> {
        if options.group.is_some() {
            return Err(Error::Unsupported(
                "Redis PubSub has no consumer groups: every subscriber gets every message. \
                 Use a broadcast `subscribe` and share the work yourself, or the AMQP \
                 backend (pubsub-amqp) for competing consumers."
                    .to_owned(),
            ));
        }
        if self.closed.load(Ordering::Acquire) || self.subscriber.is_closed() {
            return Err(Error::Closed);
        }
        let pattern = Pattern::parse(topic)?;
        let buffer = options.buffer.unwrap_or(self.buffer).max(1);
        self.subscriber.subscribe(pattern, buffer).await
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.subscriber.close();
        Ok(())
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.shown)
            .field("prefix", &self.prefix)
            .field("raw", &self.raw)
            .field("buffer", &self.buffer)
            .field("publish_timeout", &self.publish_timeout)
            .finish_non_exhaustive()
    }
}

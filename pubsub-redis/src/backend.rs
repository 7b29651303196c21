//! `RedisBackend`: the `Backend` over the publishing link and the subscriber.

use std::sync::Arc;

use pubsub_core::backend::{Backend, Capabilities, Publisher};
use pubsub_core::{async_trait, Error, Pattern, Result, SubscribeOptions, Subscription, TopicName};

use crate::errors::convert;
use crate::options::Endpoint;
use crate::publisher::{ChannelPublisher, Link, LinkOptions};
use crate::subscriber::Subscriber;
use crate::RedisBuilder;

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
    link: Arc<Link>,
    prefix: Arc<str>,
    raw: bool,
    buffer: usize,
}

impl RedisBackend {
    /// Connects to `url` (`redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://` for TLS) with the default options. For TLS, ring's rustls
    /// `CryptoProvider` becomes the process default unless one was installed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled connect leaves nothing behind.
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
        let subscriber = subscriber(&options, &endpoint)?;
        let link = Link::connect(
            &endpoint,
            options.connect_budget,
            link_options(&options),
            subscriber,
        )
        .await?;
        Ok(Self::assemble(options, link))
    }

    pub(crate) fn open_lazy(options: RedisBuilder) -> Result<Self> {
        let endpoint = options.endpoint()?;
        let subscriber = subscriber(&options, &endpoint)?;
        let link = Link::lazy(&endpoint, link_options(&options), subscriber)?;
        Ok(Self::assemble(options, link))
    }

    fn assemble(options: RedisBuilder, link: Link) -> Self {
        RedisBackend {
            link: Arc::new(link),
            prefix: options.prefix,
            raw: options.raw,
            buffer: options.buffer,
        }
    }
}

fn subscriber(options: &RedisBuilder, endpoint: &Endpoint) -> Result<Subscriber> {
    let client = redis::Client::open(endpoint.subscribe.clone())
        .map_err(|e| convert(&format!("cannot use {}", endpoint.shown), e))?;
    Ok(Subscriber::new(
        client,
        Arc::clone(&options.prefix),
        options.raw,
        options.backoff.clone(),
    ))
}

fn link_options(options: &RedisBuilder) -> LinkOptions {
    LinkOptions {
        raw: options.raw,
        publish_timeout: options.publish_timeout,
        backoff: options.backoff.clone(),
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Backend for RedisBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .patterns(true)
            .headers(!self.raw)
            .no_responders(true)
            .max_payload(Some(MAX_PAYLOAD))
    }

    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        if self.link.is_closed() {
            return Err(Error::Closed);
        }
        let link = Arc::clone(&self.link);
        Ok(Arc::new(ChannelPublisher::new(link, &self.prefix, topic)))
    }

    async fn subscribe(
        &self,
        pattern: &Pattern,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        if self.link.is_closed() {
            return Err(Error::Closed);
        }
        let buffer = options.buffer.unwrap_or(self.buffer);
        self.link.subscriber.subscribe(pattern, buffer).await
    }

    async fn close(&self) -> Result<()> {
        self.link.close();
        Ok(())
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("link", &self.link)
            .field("prefix", &self.prefix)
            .field("buffer", &self.buffer)
            .finish()
    }
}

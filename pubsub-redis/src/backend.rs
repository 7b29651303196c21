//! `RedisBackend`: the `Backend` over the publishing link and the subscriber.

use std::sync::Arc;

use pubsub_core::backend::{system, Backend, Capabilities, Publisher};
use pubsub_core::{async_trait, Error, Pattern, Result, SubscribeOptions, Subscription, TopicName};

use crate::cluster::{Cluster, ClusterPublisher};
use crate::options::Endpoint;
use crate::publisher::{ChannelPublisher, Link, LinkOptions};
use crate::replay::Replay;
use crate::streams::{StreamPublisher, Streams};
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
#[derive(Clone)]
pub struct RedisBackend {
    mode: Mode,
    prefix: Arc<str>,
    raw: bool,
    buffer: usize,
}

/// PubSub channels or Streams.
#[derive(Clone)]
enum Mode {
    PubSub(Arc<Link>),
    Cluster(Arc<Cluster>),
    Streams(Arc<Streams>),
}

/// Unsettled messages a group member holds, unless its options say otherwise.
const DEFAULT_PREFETCH: usize = 16;

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

    /// In Streams mode, a broadcast subscription to `topic` that first reads the
    /// entries still in the stream after `from`, then what comes: a replay. Other
    /// modes answer [`Error::Unsupported`].
    ///
    /// ```no_run
    /// use pubsub_redis::{RedisBackend, Replay};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let backend = RedisBackend::builder("redis://127.0.0.1/").streams(true).connect().await?;
    /// let mut history = backend.replay("sync.alice", Replay::All).await?;
    /// let bus = pubsub_core::PubSub::new(backend.clone());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay(&self, topic: &str, from: Replay) -> Result<Subscription> {
        let Mode::Streams(streams) = &self.mode else {
            return Err(Error::Unsupported(
                "replay needs Streams mode (RedisBuilder::streams): PubSub keeps nothing".into(),
            ));
        };
        let topic = TopicName::new(topic)?;
        streams
            .subscribe(topic, self.buffer, Some(from.start_id()))
            .await
    }

    pub(crate) async fn open(options: RedisBuilder) -> Result<Self> {
        let endpoint = options.endpoint()?;
        if options.streams.is_some() {
            let streams = Streams::connect(&options, &endpoint).await?;
            return Ok(Self::assemble(options, Mode::Streams(Arc::new(streams))));
        }
        if options.is_cluster() {
            let cluster = Cluster::connect(&options, &endpoint).await?;
            return Ok(Self::assemble(options, Mode::Cluster(Arc::new(cluster))));
        }
        let subscriber = subscriber(&options, &endpoint)?;
        let link = Link::connect(
            &endpoint,
            options.connect_budget,
            link_options(&options),
            subscriber,
        )
        .await?;
        Ok(Self::assemble(options, Mode::PubSub(Arc::new(link))))
    }

    pub(crate) fn open_lazy(options: RedisBuilder) -> Result<Self> {
        let endpoint = options.endpoint()?;
        if options.is_cluster() {
            return Err(Error::Unsupported(
                "connect_lazy is not offered on a Redis Cluster: use connect".into(),
            ));
        }
        if options.streams.is_some() {
            let streams = Streams::lazy(&options, &endpoint)?;
            return Ok(Self::assemble(options, Mode::Streams(Arc::new(streams))));
        }
        let subscriber = subscriber(&options, &endpoint)?;
        let link = Link::lazy(&endpoint, link_options(&options), subscriber)?;
        Ok(Self::assemble(options, Mode::PubSub(Arc::new(link))))
    }

    fn assemble(options: RedisBuilder, mode: Mode) -> Self {
        RedisBackend {
            mode,
            prefix: options.prefix,
            raw: options.raw,
            buffer: options.buffer,
        }
    }
}

fn subscriber(options: &RedisBuilder, endpoint: &Endpoint) -> Result<Subscriber> {
    let client = endpoint.client(&endpoint.subscribe)?;
    Ok(Subscriber::new(
        client,
        Arc::clone(&options.prefix),
        options.raw,
        options.backoff.clone(),
        endpoint.shown.clone(),
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
        let caps = Capabilities::new()
            .system(system::REDIS)
            .headers(!self.raw)
            .max_payload(Some(MAX_PAYLOAD));
        match self.mode {
            Mode::PubSub(_) => caps.patterns(true).no_responders(true),
            // Other nodes' pattern subscribers are not counted by a PUBLISH.
            Mode::Cluster(ref cluster) => caps.patterns(cluster.patterns()),
            // A stream is one key: no command reads the keys of a pattern. Entries are
            // read in order, so priorities travel but do not reorder.
            Mode::Streams(_) => caps.groups(true).acks(true).persistence(true),
        }
    }

    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        match &self.mode {
            Mode::PubSub(link) if link.is_closed() => Err(Error::Closed),
            Mode::Streams(streams) if streams.is_closed() => Err(Error::Closed),
            Mode::Cluster(cluster) if cluster.is_closed() => Err(Error::Closed),
            Mode::Cluster(cluster) => Ok(Arc::new(ClusterPublisher::new(
                Arc::clone(cluster),
                &self.prefix,
                topic,
            ))),
            Mode::PubSub(link) => Ok(Arc::new(ChannelPublisher::new(
                Arc::clone(link),
                &self.prefix,
                topic,
            ))),
            Mode::Streams(streams) => {
                Ok(Arc::new(StreamPublisher::new(Arc::clone(streams), topic)))
            }
        }
    }

    async fn subscribe(
        &self,
        pattern: &Pattern,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        let buffer = options.buffer.unwrap_or(self.buffer);
        // Replies to an inbox are published to the topic it subscribed.
        let reply_address = options.inbox.then(|| pattern.as_str());
        let subscription = match &self.mode {
            Mode::PubSub(link) => {
                if link.is_closed() {
                    return Err(Error::Closed);
                }
                link.subscriber.subscribe(pattern, buffer).await
            }
            Mode::Cluster(cluster) => {
                if cluster.is_closed() {
                    return Err(Error::Closed);
                }
                cluster.subscribe(pattern, buffer).await
            }
            Mode::Streams(streams) => {
                if streams.is_closed() {
                    return Err(Error::Closed);
                }
                let Some(topic) = pattern.as_name() else {
                    return Err(Error::Unsupported(
                        "Redis Streams mode cannot subscribe to a pattern: a stream is one \
                         key, and no command reads the streams of a pattern"
                            .into(),
                    ));
                };
                match options.group {
                    Some(group) => {
                        let prefetch = options.prefetch.map_or(DEFAULT_PREFETCH, usize::from);
                        streams.subscribe_group(topic, &group, prefetch).await
                    }
                    None => streams.subscribe(topic, buffer, None).await,
                }
            }
        }?;
        Ok(match reply_address {
            Some(address) => subscription.with_reply_address(address),
            None => subscription,
        })
    }

    /// A reply address here is a topic name (see the crate docs): the reply is a
    /// publish to it.
    fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>> {
        self.publisher(&pubsub_core::name::reply_topic(address)?)
    }

    async fn close(&self) -> Result<()> {
        match &self.mode {
            Mode::PubSub(link) => link.close(),
            Mode::Cluster(cluster) => cluster.close(),
            Mode::Streams(streams) => streams.close(),
        }
        Ok(())
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field(
                "mode",
                match &self.mode {
                    Mode::PubSub(link) => link as &dyn std::fmt::Debug,
                    Mode::Cluster(cluster) => cluster,
                    Mode::Streams(streams) => streams,
                },
            )
            .field("prefix", &self.prefix)
            .field("buffer", &self.buffer)
            .finish()
    }
}

//! `PubSub`, the handle applications hold, and `Topic`, a name on it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{PublishOptions, Publisher, Publishing};
use crate::message::MAX_PRIORITY;
use crate::request::Inbox;
use crate::telemetry;
use crate::{name, Backend, Capabilities, Delivery, Error, Message, Pattern, Result};
use crate::{SubscribeOptions, Subscription, TopicName};

/// The payload limit of a bus unless [`PubSub::with_max_payload`] says otherwise.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// A publish/subscribe bus over one backend. Cheap to clone; clones share everything.
///
/// ```
/// use pubsub_core::{PubSub, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
///
/// let mut stored = bus.topic("message:stored").subscribe().await?;
/// bus.topic("message:stored").publish(&serde_json::json!({"_id": 456})).await?;
///
/// let Some(Received::Message(delivery)) = stored.next().await else { panic!("a message") };
/// assert_eq!(delivery.json::<serde_json::Value>()?["_id"], 456);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PubSub {
    backend: Arc<dyn Backend>,
    capabilities: Capabilities,
    inbox: Arc<tokio::sync::OnceCell<Inbox>>,
    max_payload: usize,
}

impl PubSub {
    /// A bus over `backend`.
    pub fn new(backend: impl Backend) -> Self {
        Self::from_arc(Arc::new(backend))
    }

    /// A bus over a backend that is already shared.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        let capabilities = backend.capabilities();
        let limit = capabilities.max_payload;
        PubSub {
            backend,
            capabilities,
            inbox: Default::default(),
            max_payload: limit.map_or(DEFAULT_MAX_PAYLOAD, |l| l.min(DEFAULT_MAX_PAYLOAD)),
        }
    }

    /// This bus with another payload limit (capped by the backend's own limit).
    /// Larger publishes fail with [`Error::PayloadTooLarge`] before any I/O.
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        let broker = self.capabilities.max_payload;
        self.max_payload = broker.map_or(bytes, |l| l.min(bytes));
        self
    }

    /// The largest payload this bus publishes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// A topic on this bus: no I/O, and the name is parsed once, here. An invalid
    /// name fails on first use with [`Error::InvalidTopic`].
    ///
    /// ```
    /// # let bus: pubsub_core::PubSub = pubsub_local::LocalBackend::new().into();
    /// let user = "alice";
    /// let changed = bus.topic(format!("changed_task.{user}"));
    /// let all = bus.topic("changed_task.*");
    /// assert!(!changed.is_pattern() && all.is_pattern());
    /// ```
    pub fn topic(&self, name: impl AsRef<str>) -> Topic {
        let name = name.as_ref();
        let target = match Pattern::parse(name) {
            Ok(pattern) => Ok(Target {
                name: pattern.as_name(),
                pattern,
            }),
            Err(Error::InvalidTopic { reason, .. }) => Err(Invalid {
                name: name.into(),
                reason,
            }),
            Err(_) => Err(Invalid {
                name: name.into(),
                reason: "invalid topic name",
            }),
        };
        Topic {
            inner: Arc::new(TopicInner {
                bus: self.clone(),
                target,
                publisher: OnceLock::new(),
                #[cfg(feature = "metrics")]
                published: OnceLock::new(),
            }),
        }
    }

    /// The backend underneath.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// What the backend can do.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Closes the backend: every subscription ends, and later calls fail with
    /// [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled close may have closed part of the backend.
    pub async fn close(&self) -> Result<()> {
        self.backend.close().await
    }

    /// The topic that replies to `address` are published on: a publish through the
    /// backend's reply publisher, with the checks and telemetry of any other.
    pub(crate) fn reply_topic(&self, address: &str) -> Result<Topic> {
        let publisher = self.backend.reply_publisher(address)?;
        let topic = self.topic(address);
        // A fresh topic: its publisher is unset, and set here before any publish
        // could look the address up as a topic name.
        let _ = topic.inner.publisher.set(publisher);
        Ok(topic)
    }

    pub(crate) async fn inbox(&self) -> Result<&Inbox> {
        self.inbox.get_or_try_init(|| Inbox::open(self)).await
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::Unsupported(format!("{what} (backend {:?})", self.backend))
    }
}

impl<B: Backend> From<B> for PubSub {
    fn from(backend: B) -> Self {
        PubSub::new(backend)
    }
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("backend", &self.backend)
            .field("max_payload", &self.max_payload)
            .finish()
    }
}

/// A topic name on a bus, to publish to, subscribe to or request on.
///
/// Cheap to clone; clones share the parsed name and the topic's publisher, which is
/// resolved on the first publish and reused after. The name may be a pattern
/// (`task.*.#`) for subscribing; publishing needs a concrete name.
///
/// ```
/// use pubsub_core::{Message, PubSub, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut workers = bus.topic("git.file.get").subscribe_group("git-agents").await?;
///
/// let topic = bus.topic("git.file.get");
/// topic.publish_message(Message::new("README.md").with_priority(4).with_header("k", "v")).await?;
///
/// let Some(Received::Message(job)) = workers.next().await else { panic!("a job") };
/// assert_eq!((job.payload().as_ref(), job.priority(), job.header("k")), (&b"README.md"[..], 4, Some("v")));
/// job.ack().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Topic {
    inner: Arc<TopicInner>,
}

struct TopicInner {
    bus: PubSub,
    target: std::result::Result<Target, Invalid>,
    publisher: OnceLock<Arc<dyn Publisher>>,
    /// The published counter, registered on the first publish.
    #[cfg(feature = "metrics")]
    published: OnceLock<metrics::Counter>,
}

struct Target {
    pattern: Pattern,
    /// The pattern as a concrete name, when it is one.
    name: Option<TopicName>,
}

struct Invalid {
    name: Box<str>,
    reason: &'static str,
}

impl Topic {
    /// The name as given.
    pub fn name(&self) -> &str {
        match &self.inner.target {
            Ok(target) => target.pattern.as_str(),
            Err(invalid) => &invalid.name,
        }
    }

    /// The bus this topic is on.
    pub fn bus(&self) -> &PubSub {
        &self.inner.bus
    }

    /// Whether the name is a pattern (has a `*` or `#` segment).
    pub fn is_pattern(&self) -> bool {
        self.inner
            .target
            .as_ref()
            .is_ok_and(|t| t.pattern.is_wildcard())
    }

    fn pattern(&self) -> Result<&Pattern> {
        match &self.inner.target {
            Ok(target) => Ok(&target.pattern),
            Err(invalid) => Err(Error::invalid_topic(&invalid.name, invalid.reason)),
        }
    }

    /// The concrete name, as publishing needs.
    pub fn topic_name(&self) -> Result<&TopicName> {
        self.pattern()?;
        match &self.inner.target {
            Ok(Target {
                name: Some(name), ..
            }) => Ok(name),
            _ => Err(Error::invalid_topic(
                self.name(),
                "cannot publish to a pattern: `*` and `#` segments are for subscribing",
            )),
        }
    }

    fn publisher(&self) -> Result<&Arc<dyn Publisher>> {
        if let Some(publisher) = self.inner.publisher.get() {
            return Ok(publisher);
        }
        let publisher = self.bus().backend.publisher(self.topic_name()?)?;
        Ok(self.inner.publisher.get_or_init(|| publisher))
    }

    /// Publishes `value` as JSON. `Ok` means the backend accepted it.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled publish may or may not have reached the broker.
    pub fn publish<T: Serialize + ?Sized>(&self, value: &T) -> Publishing<'_> {
        match Message::json(value) {
            Ok(message) => self.publish_with(message, PublishOptions::default()),
            Err(unencodable) => Publishing::done(Err(unencodable)),
        }
    }

    /// Publishes a message of your own making (raw bytes, headers, priority).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`publish`](Self::publish).
    pub fn publish_message(&self, message: Message) -> Publishing<'_> {
        self.publish_with(message, PublishOptions::default())
    }

    /// Checks `message` against the bus's limits and capabilities, then publishes it.
    /// Not an `async fn`: the in-process backend publishes at once, and a state machine
    /// around its ready future would cost more than the publish itself.
    fn publish_with(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
        match self.check(&message) {
            Ok(publisher) => telemetry::publish(self, publisher, message, options),
            Err(refused) => Publishing::done(Err(refused)),
        }
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn published_counter(
        &self,
        register: impl FnOnce() -> metrics::Counter,
    ) -> &metrics::Counter {
        self.inner.published.get_or_init(register)
    }

    fn check(&self, message: &Message) -> Result<&Arc<dyn Publisher>> {
        let bus = self.bus();
        let size = message.payload().len();
        if size > bus.max_payload {
            return Err(Error::PayloadTooLarge {
                size,
                limit: bus.max_payload,
            });
        }
        if message.has_metadata() {
            if message.priority() > MAX_PRIORITY {
                return Err(Error::InvalidPriority(message.priority()));
            }
            if !bus.capabilities.headers && message.has_headers() {
                return Err(bus.unsupported("headers cannot travel on this backend"));
            }
        }
        self.publisher()
    }

    /// Subscribes to every message published to this name (or matching this
    /// pattern) from now on. Returns once the broker has confirmed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a subscription whose subscribe was cancelled is released.
    pub async fn subscribe(&self) -> Result<Subscription> {
        self.subscribe_with(SubscribeOptions::new()).await
    }

    /// Joins group `group`: each message goes to one member of the group, and every
    /// group gets every message.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`subscribe`](Self::subscribe).
    pub async fn subscribe_group(&self, group: &str) -> Result<Subscription> {
        self.subscribe_with(SubscribeOptions::new().group(group))
            .await
    }

    /// Subscribes with explicit options (group, buffer size, prefetch).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`subscribe`](Self::subscribe).
    pub async fn subscribe_with(&self, options: SubscribeOptions) -> Result<Subscription> {
        let pattern = self.pattern()?;
        let bus = self.bus();
        if let Some(group) = &options.group {
            name::validate_group(group)?;
            if !bus.capabilities.groups {
                return Err(bus.unsupported(
                    "groups (competing consumers) need a backend with queues: \
                     use the in-process or AMQP backend, or a broadcast subscription",
                ));
            }
        }
        if pattern.is_wildcard() && !bus.capabilities.patterns {
            return Err(bus.unsupported("pattern subscriptions"));
        }
        let consumer = telemetry::Consumer::new(self, pattern, options.group.as_deref());
        let subscription = bus.backend.subscribe(pattern, options).await?;
        Ok(subscription.with_bus(bus.clone(), consumer))
    }

    /// Sends `request` as JSON and waits up to `timeout` for the JSON reply of a
    /// responder (who answers with [`Delivery::reply`]).
    ///
    /// Fails with [`Error::Timeout`] when no reply comes in time, with
    /// [`Error::NoResponders`] at once where the backend can tell nobody listens, and
    /// with [`Error::Unsupported`] on a backend that cannot carry headers.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the pending request is forgotten, a late reply is dropped.
    pub async fn request<Req, Resp>(&self, request: &Req, timeout: Duration) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.request_message(Message::json(request)?, timeout)
            .await?
            .json()
    }

    /// Sends a request message and returns the reply as it came.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`request`](Self::request).
    pub async fn request_message(&self, message: Message, timeout: Duration) -> Result<Delivery> {
        self.topic_name()?;
        let bus = self.bus();
        if !bus.capabilities.headers {
            return Err(bus.unsupported(
                "request/reply carries its reply address in headers, which this backend cannot",
            ));
        }
        let exchange = async {
            let inbox = bus.inbox().await?;
            let (message, reply) = inbox.prepare(message);
            self.publish_with(message, PublishOptions::mandatory())
                .await?;
            reply.await
        };
        let exchange = async {
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| Error::Timeout {
                    operation: "request",
                    after: timeout,
                })?
        };
        telemetry::request(self, exchange).await
    }

    /// Publishes `value` here, then on the topic of the same name on `other` (ESN's
    /// `forward`: a local event made global).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled forward may have published here only.
    pub async fn forward<T: Serialize + ?Sized>(&self, other: &PubSub, value: &T) -> Result<()> {
        let message = Message::json(value)?;
        self.publish_message(message.clone()).await?;
        other
            .topic(self.topic_name()?)
            .publish_message(message)
            .await
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.name()).finish()
    }
}

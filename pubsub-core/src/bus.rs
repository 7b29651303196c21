//! `PubSub`, the handle applications hold, and `Topic`, a name on it.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::PublishNow;
use crate::message::MAX_PRIORITY;
use crate::request::Inbox;
use crate::{name, Backend, Capabilities, Delivery, Error, Message, Result};
use crate::{SubscribeOptions, Subscription};

/// The payload limit of a bus unless [`PubSub::with_max_payload`] says otherwise.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// A publish/subscribe bus over one backend. Cheap to clone; clones share everything.
///
/// ```
/// use pubsub_core::PubSub;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
///
/// let mut stored = bus.topic("message:stored").subscribe().await?;
/// bus.topic("message:stored").publish(&serde_json::json!({"_id": 456})).await?;
///
/// let delivery = stored.next().await.unwrap()?;
/// assert_eq!(delivery.json::<serde_json::Value>()?["_id"], 456);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PubSub {
    backend: Arc<dyn Backend>,
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
        let limit = backend.capabilities().max_payload;
        PubSub {
            backend,
            inbox: Default::default(),
            max_payload: limit.map_or(DEFAULT_MAX_PAYLOAD, |l| l.min(DEFAULT_MAX_PAYLOAD)),
        }
    }

    /// This bus with another payload limit (capped by the backend's own limit).
    /// Larger publishes fail with [`Error::PayloadTooLarge`] before any I/O.
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        let broker = self.backend.capabilities().max_payload;
        self.max_payload = broker.map_or(bytes, |l| l.min(bytes));
        self
    }

    /// The largest payload this bus publishes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// A topic on this bus: no I/O, and the name is checked once, here. An invalid
    /// name fails on first use with [`Error::InvalidTopic`].
    pub fn topic(&self, name: &str) -> Topic {
        Topic {
            bus: self.clone(),
            validity: name::validate(name).map_err(|e| match e {
                Error::InvalidTopic { reason, .. } => reason,
                _ => "invalid topic name",
            }),
            name: Arc::from(name),
        }
    }

    /// The backend underneath.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// What the backend can do.
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// Closes the backend: every subscription ends, and later calls fail with
    /// [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        self.backend.close().await
    }

    pub(crate) async fn inbox(&self) -> Result<&Inbox> {
        self.inbox.get_or_try_init(|| Inbox::open(self)).await
    }

    /// Checks and publishes; `mandatory` asks the backend to report no receivers.
    pub(crate) async fn send_message(
        &self,
        topic: &Arc<str>,
        message: Message,
        mandatory: bool,
    ) -> Result<()> {
        if message.payload().len() > self.max_payload {
            return Err(Error::PayloadTooLarge {
                size: message.payload().len(),
                limit: self.max_payload,
            });
        }
        if message.priority() > MAX_PRIORITY {
            return Err(Error::InvalidPriority(message.priority()));
        }
        let message = message.with_topic(Arc::clone(topic));
        if mandatory {
            return self.backend.publish_mandatory(message).await;
        }
        match self.backend.publish_now(message) {
            PublishNow::Done(outcome) => outcome,
            PublishNow::Later(message) => self.backend.publish(message).await,
        }
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
/// Cheap to create and to clone. The name may be a pattern (`task.*.#`) for
/// subscribing; publishing needs a concrete name.
///
/// ```
/// use pubsub_core::{Message, PubSub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut workers = bus.topic("git.file.get").subscribe_group("git-agents").await?;
///
/// let topic = bus.topic("git.file.get");
/// topic.publish_message(Message::new("README.md").with_priority(4).with_header("k", "v")).await?;
///
/// let job = workers.next().await.unwrap()?;
/// assert_eq!((job.payload().as_ref(), job.priority(), job.header("k")), (&b"README.md"[..], 4, Some("v")));
/// job.ack().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Topic {
    bus: PubSub,
    name: Arc<str>,
    validity: std::result::Result<bool, &'static str>,
}

impl Topic {
    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bus this topic is on.
    pub fn bus(&self) -> &PubSub {
        &self.bus
    }

    /// Whether the name is a pattern (has a `*` or `#` segment).
    pub fn is_pattern(&self) -> bool {
        self.validity == Ok(true)
    }

    fn check(&self) -> Result<bool> {
        self.validity
            .map_err(|reason| Error::invalid_topic(&self.name, reason))
    }

    fn check_concrete(&self) -> Result<()> {
        if self.check()? {
            return Err(Error::invalid_topic(
                &self.name,
                "cannot publish to a pattern: `*` and `#` segments are for subscribing",
            ));
        }
        Ok(())
    }

    /// Publishes `value` as JSON. `Ok` means the backend accepted it.
    pub async fn publish<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.check_concrete()?;
        self.bus
            .send_message(&self.name, Message::json(value)?, false)
            .await
    }

    /// Publishes a message of your own making (raw bytes, headers, priority).
    pub async fn publish_message(&self, message: Message) -> Result<()> {
        self.check_concrete()?;
        self.bus.send_message(&self.name, message, false).await
    }

    /// Subscribes to every message published to this name (or matching this
    /// pattern) from now on. Returns once the broker has confirmed.
    pub async fn subscribe(&self) -> Result<Subscription> {
        self.subscribe_with(SubscribeOptions::new()).await
    }

    /// Joins group `group`: each message goes to one member of the group, and every
    /// group gets every message.
    pub async fn subscribe_group(&self, group: &str) -> Result<Subscription> {
        self.subscribe_with(SubscribeOptions::new().group(group))
            .await
    }

    /// Subscribes with explicit options (group, buffer size, prefetch).
    pub async fn subscribe_with(&self, options: SubscribeOptions) -> Result<Subscription> {
        self.check()?;
        if let Some(group) = &options.group {
            name::validate_group(group)?;
        }
        let subscription = self.bus.backend.subscribe(&self.name, options).await?;
        Ok(subscription.with_replies(Arc::clone(&self.bus.backend)))
    }

    /// Sends `request` as JSON and waits up to `timeout` for the JSON reply of a
    /// responder (who answers with [`Delivery::reply`]).
    ///
    /// Fails with [`Error::Timeout`] when no reply comes in time, and with
    /// [`Error::NoResponders`] at once where the backend can tell nobody listens.
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
    pub async fn request_message(&self, message: Message, timeout: Duration) -> Result<Delivery> {
        self.check_concrete()?;
        let exchange = async {
            let inbox = self.bus.inbox().await?;
            inbox.exchange(&self.bus, &self.name, message).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                operation: "request",
                after: timeout,
            })?
    }

    /// Publishes `value` here, then on the topic of the same name on `other` (ESN's
    /// `forward`: a local event made global).
    pub async fn forward<T: Serialize + ?Sized>(&self, other: &PubSub, value: &T) -> Result<()> {
        self.check_concrete()?;
        let message = Message::json(value)?;
        self.bus
            .send_message(&self.name, message.clone(), false)
            .await?;
        other.send_message(&self.name, message, false).await
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.name).finish()
    }
}

//! The implementor's side: the trait a broker implements, its publishers, and what it
//! tells about itself. Applications use [`PubSub`](crate::PubSub) instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::{Message, Pattern, Result, Subscription, TopicName};

/// What a backend can do, so that users and tests ask instead of guess.
///
/// ```
/// use pubsub_core::backend::Capabilities;
///
/// use pubsub_core::backend::system;
///
/// let caps = Capabilities::new().groups(true).acks(true).system(system::RABBITMQ);
/// assert!(caps.groups && caps.acks && !caps.persistence);
/// assert_eq!(caps.system, "rabbitmq");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `subscribe_group` works (competing consumers).
    pub groups: bool,
    /// Group deliveries are acknowledged; nack with requeue delivers again.
    pub acks: bool,
    /// Waiting group messages are delivered highest priority first.
    pub priorities: bool,
    /// Group queues survive a broker restart.
    pub persistence: bool,
    /// `*` and `#` patterns can be subscribed to.
    pub patterns: bool,
    /// Headers, id and priority travel with the message.
    pub headers: bool,
    /// A mandatory publish can tell that nobody is subscribed
    /// ([`Error::NoResponders`](crate::Error::NoResponders)).
    pub no_responders: bool,
    /// The largest payload the broker takes, if it has a limit.
    pub max_payload: Option<usize>,
    /// Which messaging system this is, as spans' `messaging.system` and metrics'
    /// `system` label name it: one of the [`system`] constants.
    pub system: &'static str,
}

/// The `messaging.system` of each backend. OpenTelemetry's conventions name
/// `rabbitmq`; for Redis PubSub and the in-process bus they have no value, so these
/// are our own, documented here.
pub mod system {
    /// RabbitMQ (AMQP 0-9-1), the convention's own value.
    pub const RABBITMQ: &str = "rabbitmq";
    /// Redis PubSub and Streams: our value.
    pub const REDIS: &str = "redis";
    /// The in-process bus (`pubsub-local`): our value.
    pub const IN_PROCESS: &str = "pubsub_local";
    /// A backend that did not say.
    pub const UNKNOWN: &str = "unknown";
}

impl Capabilities {
    /// A backend that can do nothing beyond broadcast publish/subscribe.
    pub const fn new() -> Self {
        Capabilities {
            groups: false,
            acks: false,
            priorities: false,
            persistence: false,
            patterns: false,
            headers: false,
            no_responders: false,
            max_payload: None,
            system: system::UNKNOWN,
        }
    }

    /// Sets [`groups`](Self::groups).
    pub const fn groups(mut self, yes: bool) -> Self {
        self.groups = yes;
        self
    }

    /// Sets [`acks`](Self::acks).
    pub const fn acks(mut self, yes: bool) -> Self {
        self.acks = yes;
        self
    }

    /// Sets [`priorities`](Self::priorities).
    pub const fn priorities(mut self, yes: bool) -> Self {
        self.priorities = yes;
        self
    }

    /// Sets [`persistence`](Self::persistence).
    pub const fn persistence(mut self, yes: bool) -> Self {
        self.persistence = yes;
        self
    }

    /// Sets [`patterns`](Self::patterns).
    pub const fn patterns(mut self, yes: bool) -> Self {
        self.patterns = yes;
        self
    }

    /// Sets [`headers`](Self::headers).
    pub const fn headers(mut self, yes: bool) -> Self {
        self.headers = yes;
        self
    }

    /// Sets [`no_responders`](Self::no_responders).
    pub const fn no_responders(mut self, yes: bool) -> Self {
        self.no_responders = yes;
        self
    }

    /// Sets [`max_payload`](Self::max_payload).
    pub const fn max_payload(mut self, limit: Option<usize>) -> Self {
        self.max_payload = limit;
        self
    }

    /// Sets [`system`](Self::system).
    pub const fn system(mut self, name: &'static str) -> Self {
        self.system = name;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// How to subscribe: broadcast or in a group, and with what buffer.
///
/// ```
/// use pubsub_core::backend::SubscribeOptions;
///
/// let opts = SubscribeOptions::new().group("git-agents").prefetch(2);
/// assert_eq!(opts.group.as_deref(), Some("git-agents"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// The group to join (competing consumers); `None` for a broadcast subscription.
    pub group: Option<String>,
    /// How many messages may wait for this subscriber before it lags; the backend's
    /// default when `None`.
    pub buffer: Option<usize>,
    /// How many unacknowledged group messages a member may hold; the backend's default
    /// when `None`.
    pub prefetch: Option<u16>,
    /// This subscription is a request inbox: the backend may give it an address of its
    /// own for replies, in [`Subscription::reply_address`].
    pub inbox: bool,
}

impl SubscribeOptions {
    /// Broadcast, with the backend's buffer sizes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins group `name`.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }

    /// Sets the buffer size.
    pub fn buffer(mut self, messages: usize) -> Self {
        self.buffer = Some(messages);
        self
    }

    /// Sets the prefetch of a group member.
    pub fn prefetch(mut self, messages: u16) -> Self {
        self.prefetch = Some(messages);
        self
    }

    /// Makes this subscription a request inbox, as the bus's own for its requests: a
    /// backend with a reply mechanism of its own (AMQP's direct reply-to) may use that
    /// instead of the subscribed name.
    ///
    /// ```
    /// use pubsub_core::backend::SubscribeOptions;
    ///
    /// assert!(SubscribeOptions::new().inbox().inbox);
    /// ```
    pub fn inbox(mut self) -> Self {
        self.inbox = true;
        self
    }
}

/// How to publish one message.
///
/// ```
/// use pubsub_core::backend::PublishOptions;
///
/// assert!(PublishOptions::mandatory().mandatory);
/// assert!(!PublishOptions::default().mandatory);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Fail with [`Error::NoResponders`](crate::Error::NoResponders) where the backend
    /// can tell that no subscription received the message.
    pub mandatory: bool,
}

impl PublishOptions {
    /// A mandatory publish: tell when nobody received it.
    pub const fn mandatory() -> Self {
        PublishOptions { mandatory: true }
    }
}

/// The future of one publish: ready at once where the backend needed no I/O (an
/// in-process bus), a boxed future where it waits on a broker.
///
/// ```
/// use pubsub_core::backend::Publishing;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert!(Publishing::done(Ok(())).await.is_ok());
/// assert!(Publishing::pending(async { Ok(()) }).await.is_ok());
/// # }
/// ```
#[must_use = "a publish does nothing unless awaited"]
pub struct Publishing<'a>(PublishingState<'a>);

enum PublishingState<'a> {
    Done(Option<Result<()>>),
    Pending(BoxFuture<'a, Result<()>>),
}

impl<'a> Publishing<'a> {
    /// A publish that has already finished with `outcome`.
    pub fn done(outcome: Result<()>) -> Self {
        Publishing(PublishingState::Done(Some(outcome)))
    }

    /// A publish that finishes when `future` does.
    pub fn pending(future: impl Future<Output = Result<()>> + Send + 'a) -> Self {
        Publishing(PublishingState::Pending(Box::pin(future)))
    }

    /// Calls `seen` with the outcome once there is one: at once for a publish that is
    /// done (no future is made), when it finishes for a pending one. For the bus's
    /// spans and metrics.
    #[cfg(any(feature = "otel", feature = "metrics"))]
    pub(crate) fn inspect(self, seen: impl FnOnce(&Result<()>) + Send + 'a) -> Self {
        match self.0 {
            PublishingState::Done(Some(outcome)) => {
                seen(&outcome);
                Publishing::done(outcome)
            }
            PublishingState::Done(None) => self,
            PublishingState::Pending(future) => Publishing::pending(async move {
                let outcome = future.await;
                seen(&outcome);
                outcome
            }),
        }
    }
}

impl Future for Publishing<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.get_mut().0 {
            PublishingState::Done(outcome) => {
                Poll::Ready(outcome.take().unwrap_or_else(|| Err(crate::Error::Closed)))
            }
            PublishingState::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl std::fmt::Debug for Publishing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.0 {
            PublishingState::Done(_) => "done",
            PublishingState::Pending(_) => "pending",
        };
        f.debug_tuple("Publishing").field(&state).finish()
    }
}

/// The route of one concrete topic, resolved once per [`Topic`](crate::Topic): a
/// publish goes straight to it, without looking the topic up again.
pub trait Publisher: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes `message` to this publisher's topic. `Ok` means the broker accepted
    /// it. The bus has checked the payload size, the priority and the capabilities.
    fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_>;
}

/// A broker, seen through the few operations every broker shares.
///
/// Backends are small translations to their broker; [`PubSub`](crate::PubSub) builds
/// request/reply, typed events, handlers and validation on top, once for all. The bus
/// parses names before calling in, so a backend receives only valid, parsed
/// [`TopicName`]s and [`Pattern`]s, and enforces [`Capabilities`], so a backend without
/// groups is never asked for one.
///
/// # Wrapping a backend
///
/// Cross-cutting concerns (a prefix, tracing, fault injection) are decorators: a
/// `Backend` that wraps another. Every method is required, with no default a wrapper
/// could forget to forward; decorators in this workspace are compiled with
/// `#[deny(clippy::missing_trait_methods)]` so that a method added later must be
/// forwarded too.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use pubsub_core::backend::{Backend, Capabilities, Publisher, Publishing, PublishOptions, SubscribeOptions};
/// use pubsub_core::{async_trait, Message, Pattern, PubSub, Result, Subscription, TopicName};
///
/// /// Counts publishes, then hands everything to the backend it wraps.
/// #[derive(Debug)]
/// struct Counting<B> {
///     inner: B,
///     published: Arc<AtomicU64>,
/// }
///
/// #[derive(Debug)]
/// struct CountingPublisher {
///     inner: Arc<dyn Publisher>,
///     published: Arc<AtomicU64>,
/// }
///
/// impl Publisher for CountingPublisher {
///     fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
///         self.published.fetch_add(1, Ordering::Relaxed);
///         self.inner.publish(message, options)
///     }
/// }
///
/// #[deny(clippy::missing_trait_methods)]
/// #[async_trait]
/// impl<B: Backend> Backend for Counting<B> {
///     fn capabilities(&self) -> Capabilities {
///         self.inner.capabilities()
///     }
///     fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
///         let inner = self.inner.publisher(topic)?;
///         Ok(Arc::new(CountingPublisher { inner, published: Arc::clone(&self.published) }))
///     }
///     async fn subscribe(&self, pattern: &Pattern, options: SubscribeOptions) -> Result<Subscription> {
///         self.inner.subscribe(pattern, options).await
///     }
///     fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>> {
///         self.inner.reply_publisher(address)
///     }
///     async fn close(&self) -> Result<()> {
///         self.inner.close().await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let published = Arc::new(AtomicU64::new(0));
/// let bus = PubSub::new(Counting { inner: pubsub_local::LocalBackend::new(), published: published.clone() });
/// bus.topic("a").publish(&1).await?;
/// assert_eq!(published.load(Ordering::Relaxed), 1);
///
/// // A mandatory publish (a request) still reaches the inner backend's own answer.
/// let err = bus.topic("nobody").request::<_, i32>(&1, std::time::Duration::from_secs(5)).await;
/// assert!(matches!(err, Err(pubsub_core::Error::NoResponders { .. })));
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// The publisher of concrete topic `topic`. Called once per
    /// [`Topic`](crate::Topic) handle, before its first publish; does no I/O.
    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>>;

    /// Subscribes to a name or pattern. Returns once the broker has confirmed: every
    /// message published after that reaches the subscription.
    async fn subscribe(&self, pattern: &Pattern, options: SubscribeOptions)
        -> Result<Subscription>;

    /// A publisher for replies to `address`, the reply-to of a request this backend
    /// delivered (an [`inbox`](SubscribeOptions::inbox) subscription's
    /// [`reply_address`](Subscription::reply_address), or a foreign client's). Addresses
    /// are the backend's own, so a wrapper passes them through unchanged
    /// ([`Prefixed`](crate::Prefixed) does not prefix them). Does no I/O; an address the
    /// backend cannot reach is an error that says so.
    fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>>;

    /// Closes the backend: subscriptions end, later calls fail with
    /// [`Error::Closed`](crate::Error::Closed).
    async fn close(&self) -> Result<()>;
}

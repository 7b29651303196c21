//! The trait a broker implements, and what it tells about itself.

use async_trait::async_trait;

use crate::{Message, Result, Subscription};

/// What a backend can do, so that users and tests ask instead of guess.
///
/// ```
/// use pubsub_core::Capabilities;
///
/// let caps = Capabilities::new().groups(true).acks(true);
/// assert!(caps.groups && caps.acks && !caps.persistence);
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
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// How to subscribe: broadcast or in a group, and with what buffer.
///
/// ```
/// use pubsub_core::SubscribeOptions;
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
}

/// What [`Backend::publish_now`] did with a message.
#[derive(Debug)]
pub enum PublishNow {
    /// Published (or refused) at once; this is the outcome.
    Done(Result<()>),
    /// Not published: it needs I/O, so the bus awaits [`Backend::publish`] with it.
    Later(Message),
}

/// A broker, seen through the few operations every broker shares.
///
/// Backends are small translations to their broker; [`PubSub`](crate::PubSub) builds
/// request/reply, typed events, handlers and validation on top, once for all. The bus
/// validates names, sizes and priorities before calling in, so a backend receives
/// only concrete, valid topics on `publish` and valid names or patterns on
/// `subscribe`.
///
/// Cross-cutting concerns (a prefix, tracing, fault injection) are decorators: a
/// `Backend` that wraps another.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use pubsub_core::{Backend, Capabilities, Message, PubSub, Result, SubscribeOptions, Subscription};
///
/// /// Counts publishes, then hands everything to the backend it wraps.
/// #[derive(Debug)]
/// struct Counting<B> {
///     inner: B,
///     published: std::sync::atomic::AtomicU64,
/// }
///
/// #[async_trait]
/// impl<B: Backend> Backend for Counting<B> {
///     fn capabilities(&self) -> Capabilities {
///         self.inner.capabilities()
///     }
///     async fn publish(&self, message: Message) -> Result<()> {
///         self.published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.publish(message).await
///     }
///     async fn subscribe(&self, topic: &str, options: SubscribeOptions) -> Result<Subscription> {
///         self.inner.subscribe(topic, options).await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let counting = Arc::new(Counting { inner: pubsub_local::LocalBackend::new(), published: 0.into() });
/// let bus = PubSub::from_arc(counting.clone());
/// bus.topic("a").publish(&1).await?;
/// assert_eq!(counting.published.load(std::sync::atomic::Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Publishes `message` to `message.topic()`. `Ok` means the broker accepted it.
    async fn publish(&self, message: Message) -> Result<()>;

    /// Publishes without awaiting, where the backend can do so at once (an in-process
    /// bus); hands the message back otherwise. The bus tries this before
    /// [`publish`](Self::publish): it spares the boxed future of an async trait call
    /// on every publish.
    fn publish_now(&self, message: Message) -> PublishNow {
        PublishNow::Later(message)
    }

    /// Publishes like [`publish`](Self::publish), but fails with
    /// [`Error::NoResponders`](crate::Error::NoResponders) where the backend can tell
    /// that no subscription received it.
    async fn publish_mandatory(&self, message: Message) -> Result<()> {
        self.publish(message).await
    }

    /// Subscribes to a name or pattern. Returns once the broker has confirmed: every
    /// message published after that reaches the subscription.
    async fn subscribe(&self, topic: &str, options: SubscribeOptions) -> Result<Subscription>;

    /// Closes the backend: subscriptions end, later calls fail with
    /// [`Error::Closed`](crate::Error::Closed).
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

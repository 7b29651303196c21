//! The stream of deliveries a subscriber reads.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::Stream;

use crate::ring::RingReceiver;
use crate::telemetry::Consumer;
use crate::{Delivery, Message, PubSub, Received, Result, TopicName};

type Unsubscribe = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;
type Rename = Box<dyn Fn(Delivery) -> Delivery + Send + Sync>;

/// A live subscription: deliveries and [`Signal`](crate::Signal)s, read with
/// [`next`](Self::next) or as a [`Stream`] of [`Received`].
///
/// The stream goes on after a signal, and ends only when the subscription is dropped or
/// unsubscribed, or the bus is closed. Dropping it unsubscribes; [`unsubscribe`]
/// does the same and waits until the broker has confirmed.
///
/// ```
/// use pubsub_core::{PubSub, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut sub = bus.topic("sync.*").subscribe().await?;
/// bus.topic("sync.alice").publish(&serde_json::json!({"stored_count": 2})).await?;
///
/// while let Some(received) = sub.next().await {
///     match received {
///         Received::Message(delivery) => {
///             assert_eq!(delivery.topic(), "sync.alice");
///             break;
///         }
///         Received::Signal(signal) => eprintln!("sync listener: {signal}"),
///     }
/// }
/// sub.unsubscribe().await?;
/// # Ok(())
/// # }
/// ```
///
/// [`unsubscribe`]: Self::unsubscribe
#[must_use = "a subscription delivers nothing unless it is read"]
pub struct Subscription {
    // Fields drop in order: the ring's receiver is gone before the guard releases the
    // registration, so the backend sees the subscription as ended.
    source: Source,
    guard: Option<Box<dyn Send + Sync>>,
    unsubscribe: Option<Unsubscribe>,
    rename: Option<Rename>,
    /// The bus that made this subscription, for replies, and what it knows for spans,
    /// metrics and logs; absent for a backend's own subscriptions (a bus's inbox).
    bus: Option<Box<(PubSub, Consumer)>>,
    /// Where replies to this inbox go, when the backend gave it an address of its own.
    reply_address: Option<Arc<str>>,
}

/// Where a subscription reads from.
#[derive(Debug)]
enum Source {
    /// Deliveries made by the backend, one ring per subscription.
    Deliveries(RingReceiver<Delivery>),
    /// Messages of one topic from a ring its subscribers share.
    Messages {
        receiver: RingReceiver<Message>,
        topic: TopicName,
    },
}

impl Subscription {
    /// A subscription reading `receiver`, which a backend fills. For backends.
    pub fn new(receiver: RingReceiver<Delivery>) -> Self {
        Self::from_source(Source::Deliveries(receiver))
    }

    /// A subscription to the one topic `topic`, reading messages from `receiver`, a
    /// reader of a ring that every subscriber of the topic may share
    /// ([`RingSender::subscribe`](crate::ring::RingSender::subscribe)). For backends.
    pub fn of_topic(topic: TopicName, receiver: RingReceiver<Message>) -> Self {
        Self::from_source(Source::Messages { receiver, topic })
    }

    fn from_source(source: Source) -> Self {
        Subscription {
            source,
            guard: None,
            unsubscribe: None,
            rename: None,
            bus: None,
            reply_address: None,
        }
    }

    /// Keeps `guard` alive as long as the subscription; dropping it releases the
    /// subscription with the backend. For backends.
    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Adds a step that [`unsubscribe`](Self::unsubscribe) awaits after releasing the
    /// subscription, for backends whose broker confirms an unsubscribe.
    pub fn with_unsubscribe<F, Fut>(mut self, unsubscribe: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.unsubscribe = Some(Box::new(move || Box::pin(unsubscribe())));
        self
    }

    /// Gives an [`inbox`](crate::SubscribeOptions::inbox) subscription the address its
    /// requests carry as their reply-to, which the backend's
    /// [`reply_publisher`](crate::Backend::reply_publisher) reaches. For backends.
    pub fn with_reply_address(mut self, address: impl Into<Arc<str>>) -> Self {
        self.reply_address = Some(address.into());
        self
    }

    /// The address replies to this inbox are sent to, if the backend gave it one.
    ///
    /// ```
    /// use pubsub_core::{Backend, Pattern, SubscribeOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let backend = pubsub_local::LocalBackend::new();
    /// let inbox = Pattern::parse("_inbox.1")?;
    /// let sub = backend.subscribe(&inbox, SubscribeOptions::new().inbox()).await?;
    /// // In-process, a reply address is the topic the inbox subscribed.
    /// assert_eq!(sub.reply_address(), Some("_inbox.1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn reply_address(&self) -> Option<&str> {
        self.reply_address.as_deref()
    }

    /// Transforms every delivery on its way out (a decorator renaming topics), after
    /// any transformation already set.
    pub fn map_deliveries(
        mut self,
        f: impl Fn(Delivery) -> Delivery + Send + Sync + 'static,
    ) -> Self {
        self.rename = Some(match self.rename.take() {
            Some(first) => Box::new(move |delivery| f(first(delivery))),
            None => Box::new(f),
        });
        self
    }

    pub(crate) fn with_bus(mut self, bus: PubSub, consumer: Consumer) -> Self {
        self.bus = Some(Box::new((bus, consumer)));
        self
    }

    /// The next delivery or signal; `None` once the subscription has ended.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: a delivery is taken only when it returns, so in a
    /// `tokio::select!` that picks another branch, no message is lost.
    pub async fn next(&mut self) -> Option<Received> {
        poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let received = match &mut self.source {
            Source::Deliveries(receiver) => receiver.poll_recv(cx),
            Source::Messages { receiver, topic } => receiver
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map(|message| Delivery::new(topic.clone(), message)))),
        };
        let mut delivery = match received {
            Poll::Ready(Some(Received::Message(delivery))) => delivery,
            Poll::Ready(Some(Received::Signal(signal))) => {
                if let Some(bus) = &self.bus {
                    bus.1.signal(&signal);
                }
                return Poll::Ready(Some(Received::Signal(signal)));
            }
            other => return other,
        };
        if let Some(rename) = &self.rename {
            delivery = rename(delivery);
        }
        if let Some(bus) = &self.bus {
            let (bus, consumer) = &**bus;
            let observed = consumer.received(&delivery);
            delivery.set_bus(bus, observed);
        }
        Poll::Ready(Some(Received::Message(delivery)))
    }

    /// Ends the subscription and waits until the backend has released it.
    ///
    /// # Cancel safety
    ///
    /// The subscription is released with the broker when this is cancelled too, in the
    /// background.
    pub async fn unsubscribe(self) -> Result<()> {
        let Subscription {
            source,
            guard,
            unsubscribe,
            ..
        } = self;
        drop(source);
        drop(guard);
        match unsubscribe {
            Some(unsubscribe) => unsubscribe().await,
            None => Ok(()),
        }
    }
}

impl Stream for Subscription {
    type Item = Received;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        self.get_mut().poll_item(cx)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

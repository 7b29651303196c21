//! A received message and what its receiver does with it: ack, nack, reply.

use std::ops::Deref;

use async_trait::async_trait;
use serde::Serialize;

use crate::message::{CORRELATION_ID, REPLY_TO};
use crate::telemetry::{self, Observed};
use crate::{Error, Message, PubSub, Result, TopicName};

/// Settles one delivery with its broker. Backends with acknowledgements implement it.
///
/// Each method takes the acker by value: a delivery is settled once.
#[async_trait]
pub trait Acker: Send + Sync + 'static {
    /// The message was handled: the broker may forget it.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// The message was not handled: with `requeue` it is delivered again (to this or
    /// another member of the group), without it is dropped or dead-lettered.
    async fn nack(self: Box<Self>, requeue: bool) -> Result<()>;
    /// The delivery was dropped without being settled: give the message back to its
    /// group (requeue it) without waiting, so it does not hold a prefetch slot.
    fn release(self: Box<Self>);
}

/// A message as received by a [`Subscription`](crate::Subscription).
///
/// It derefs to [`Message`], so `payload()`, `header(k)`, `id()` and `priority()` are at
/// hand; [`topic`](Self::topic) is the concrete topic it was published to (useful with
/// patterns) and [`attempt`](Self::attempt) counts redeliveries.
///
/// In a group, settle it by value with [`ack`](Self::ack) or [`nack`](Self::nack).
/// A group delivery dropped without either is given back to its group and delivered
/// again, as if nacked with requeue. Elsewhere settling does nothing.
///
/// ```
/// use pubsub_core::{PubSub, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut jobs = bus.topic("jobs").subscribe_group("workers").await?;
/// bus.topic("jobs").publish(&"resize").await?;
///
/// let Some(Received::Message(job)) = jobs.next().await else { panic!("a job") };
/// let text: String = job.json()?;
/// assert_eq!((text.as_str(), job.attempt()), ("resize", 1));
/// job.ack().await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a group delivery that is dropped unsettled is delivered again; ack or nack it"]
pub struct Delivery {
    topic: TopicName,
    message: Message,
    attempt: u32,
    acker: Option<Box<dyn Acker>>,
    /// Boxed: only requests, traced and metered deliveries carry it, and a delivery is
    /// moved often on its way.
    extras: Option<Box<Extras>>,
}

/// What some deliveries carry besides their message.
#[derive(Clone)]
struct Extras {
    /// The bus to reply on, for a request.
    replies: Option<PubSub>,
    /// The delivery's span and its subscription's meters, when there are any.
    observed: Option<Observed>,
}

impl Delivery {
    /// A first delivery with nothing to acknowledge (broadcast, or a backend without
    /// acks). For backends.
    pub fn new(topic: TopicName, message: Message) -> Self {
        Delivery {
            topic,
            message,
            attempt: 1,
            acker: None,
            extras: None,
        }
    }

    /// This delivery, settled through `acker`. For backends.
    pub fn with_acker(mut self, acker: impl Acker) -> Self {
        self.acker = Some(Box::new(acker));
        self
    }

    /// This delivery as attempt `attempt` (1 for the first). For backends.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// This delivery on another topic name, keeping how it is settled. For decorators
    /// that rename topics.
    pub fn with_topic(mut self, topic: TopicName) -> Self {
        self.topic = topic;
        self
    }

    /// Gives the delivery what the bus that subscribed knows: where to reply, and its
    /// span and meters.
    pub(crate) fn set_bus(&mut self, bus: &PubSub, observed: Option<Observed>) {
        let replies = self.message.header(REPLY_TO).is_some().then(|| bus.clone());
        if replies.is_some() || observed.is_some() {
            self.extras = Some(Box::new(Extras { replies, observed }));
        }
    }

    pub(crate) fn observed(&self) -> Option<&Observed> {
        self.extras.as_deref()?.observed.as_ref()
    }

    /// The receive span of this delivery: a child of its producer's span, and the
    /// parent of the handler's and the settlement's spans. A disabled span when no
    /// subscriber records it (and for deliveries a backend made itself).
    ///
    /// ```
    /// use pubsub_core::{PubSub, Received};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let bus: PubSub = pubsub_local::LocalBackend::new().into();
    /// let mut sub = bus.topic("jobs").subscribe().await?;
    /// bus.topic("jobs").publish(&1).await?;
    /// let Some(Received::Message(job)) = sub.next().await else { panic!("a job") };
    /// // Work done in the delivery's span is part of the message's trace.
    /// job.span().in_scope(|| tracing::info!("working on it"));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "otel")]
    pub fn span(&self) -> &tracing::Span {
        static NONE: tracing::Span = tracing::Span::none();
        self.observed().map_or(&NONE, |o| &o.span)
    }

    /// The concrete topic the message was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The same topic as a parsed, shared name, to keep or publish to without copying.
    pub fn topic_name(&self) -> &TopicName {
        &self.topic
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Which delivery of this message this is: 1 the first time, more after a nack
    /// with requeue or a member that went away before settling.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Takes the message out. A group delivery is given back to its group, as when it
    /// is dropped: settle it first if it was handled.
    pub fn into_message(mut self) -> Message {
        std::mem::take(&mut self.message)
    }

    /// Decodes the payload as JSON; a failure is [`Error::Decode`] for this message.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        self.message.json_as(&self.topic)
    }

    /// Whether this delivery must be settled (it came from a group of a backend with
    /// acknowledgements).
    pub fn needs_ack(&self) -> bool {
        self.acker.is_some()
    }

    /// Acknowledges the message; where there are no acks this does nothing.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled ack may or may not have reached the broker.
    pub async fn ack(mut self) -> Result<()> {
        match self.acker.take() {
            Some(acker) => {
                telemetry::settle(self.observed(), self.topic(), "ack", acker.ack()).await
            }
            None => Ok(()),
        }
    }

    /// Rejects the message; with `requeue` it is delivered again.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`ack`](Self::ack).
    pub async fn nack(mut self, requeue: bool) -> Result<()> {
        match self.acker.take() {
            Some(acker) => {
                let nack = acker.nack(requeue);
                telemetry::settle(self.observed(), self.topic(), "nack", nack).await
            }
            None => Ok(()),
        }
    }

    /// Answers a [`request`](crate::Topic::request) with `value` as JSON.
    ///
    /// The reply goes to the request's reply-to through the backend's
    /// [`reply_publisher`](crate::Backend::reply_publisher), with the request's
    /// correlation id: a reply-to the backend cannot address is an error saying so.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled reply may or may not have been published.
    pub async fn reply<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.reply_message(Message::json(value)?).await
    }

    /// Answers a request with a message of your own making.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`reply`](Self::reply).
    pub async fn reply_message(&self, reply: Message) -> Result<()> {
        let not_a_request = || Error::NotARequest {
            topic: self.topic.to_string(),
        };
        let reply_to = self.header(REPLY_TO).ok_or_else(not_a_request)?;
        let extras = self.extras.as_deref();
        let bus = extras
            .and_then(|e| e.replies.as_ref())
            .ok_or_else(not_a_request)?;
        let mut reply = reply;
        if let Some(id) = self.header(CORRELATION_ID) {
            reply = reply.with_header(CORRELATION_ID, id);
        }
        let topic = bus.reply_topic(reply_to)?;
        telemetry::scoped(self.observed(), || topic.publish_message(reply)).await
    }

    /// A copy that shares the message but cannot settle it, for a handler while the
    /// runner keeps the right to settle.
    pub(crate) fn unsettled_copy(&self) -> Delivery {
        Delivery {
            topic: self.topic.clone(),
            message: self.message.clone(),
            attempt: self.attempt,
            acker: None,
            extras: self.extras.clone(),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            acker.release();
        }
    }
}

impl Deref for Delivery {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("message", &self.message)
            .field("attempt", &self.attempt)
            .field("needs_ack", &self.needs_ack())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    /// A delivery is moved through rings and futures on every receive: keep it small.
    #[test]
    fn a_delivery_stays_small() {
        assert!(std::mem::size_of::<super::Delivery>() <= 96);
        assert_eq!(std::mem::size_of::<crate::Message>(), 40);
    }
}

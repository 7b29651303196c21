//! A received message and what its receiver can do with it: ack, nack, reply.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::message::{CORRELATION_ID, REPLY_TO};
use crate::{Backend, Error, Message, Result};

/// Settles one delivery with its broker. Backends with acknowledgements implement it.
#[async_trait]
pub trait Acker: Send + Sync + 'static {
    /// The message was handled: the broker may forget it.
    async fn ack(&self) -> Result<()>;
    /// The message was not handled: with `requeue` it is delivered again (to this or
    /// another member of the group), without it is dropped or dead-lettered.
    async fn nack(&self, requeue: bool) -> Result<()>;
}

/// A message as received by a [`Subscription`](crate::Subscription).
///
/// It derefs to [`Message`], so `topic()`, `payload()`, `header(k)`, `priority()` and
/// `attempt()` are at hand. In a group, [`ack`](Self::ack) or [`nack`](Self::nack) it;
/// elsewhere these are no-ops. A delivery dropped without either stays unacknowledged
/// until its subscription ends, and is then delivered again.
///
/// ```
/// use pubsub_core::PubSub;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut sub = bus.topic("greetings").subscribe().await?;
/// bus.topic("greetings").publish(&"hello").await?;
///
/// let delivery = sub.next().await.unwrap()?;
/// let text: String = delivery.json()?;
/// assert_eq!(text, "hello");
/// assert_eq!(delivery.attempt(), 1);
/// delivery.ack().await?;
/// # Ok(())
/// # }
/// ```
pub struct Delivery {
    message: Message,
    acker: Option<Box<dyn Acker>>,
    settled: AtomicBool,
    replies: Option<Arc<dyn Backend>>,
}

impl Delivery {
    /// A delivery with nothing to acknowledge (broadcast, or a backend without acks).
    pub fn new(message: Message) -> Self {
        Delivery {
            message,
            acker: None,
            settled: AtomicBool::new(false),
            replies: None,
        }
    }

    /// A delivery that must be settled through `acker`.
    pub fn with_acker(message: Message, acker: impl Acker) -> Self {
        Delivery {
            acker: Some(Box::new(acker)),
            ..Delivery::new(message)
        }
    }

    /// Transforms the message, keeping how it is settled. For decorators.
    pub fn map_message(mut self, f: impl FnOnce(Message) -> Message) -> Self {
        self.message = f(self.message);
        self
    }

    /// Where [`reply`](Self::reply) publishes. The bus sets it.
    pub(crate) fn set_reply_backend(&mut self, backend: &Arc<dyn Backend>) {
        self.replies = Some(Arc::clone(backend));
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Takes the message out.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// Decodes the payload as JSON; a failure is [`Error::Decode`] for this message.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        self.message.json_as()
    }

    /// Whether this delivery must be acked (it came from a group of a backend with
    /// acknowledgements).
    pub fn needs_ack(&self) -> bool {
        self.acker.is_some()
    }

    /// Acknowledges the message. Settling twice, or where there are no acks, does
    /// nothing.
    pub async fn ack(&self) -> Result<()> {
        match self.take_acker() {
            Some(acker) => acker.ack().await,
            None => Ok(()),
        }
    }

    /// Rejects the message; with `requeue` it is delivered again.
    pub async fn nack(&self, requeue: bool) -> Result<()> {
        match self.take_acker() {
            Some(acker) => acker.nack(requeue).await,
            None => Ok(()),
        }
    }

    fn take_acker(&self) -> Option<&dyn Acker> {
        let acker = self.acker.as_deref()?;
        (!self.settled.swap(true, Ordering::AcqRel)).then_some(acker)
    }

    /// Answers a [`request`](crate::Topic::request) with `value` as JSON.
    pub async fn reply<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.reply_message(Message::json(value)?).await
    }

    /// Answers a request with a message of your own making.
    pub async fn reply_message(&self, reply: Message) -> Result<()> {
        let not_a_request = || Error::NotARequest {
            topic: self.topic().to_owned(),
        };
        let reply_to = self.header(REPLY_TO).ok_or_else(not_a_request)?;
        let backend = self.replies.as_ref().ok_or_else(not_a_request)?;
        crate::name::validate_concrete(reply_to)?;
        let mut reply = reply.with_topic(reply_to);
        if let Some(id) = self.header(CORRELATION_ID) {
            reply = reply.with_header(CORRELATION_ID, id);
        }
        backend.publish(reply).await
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
            .field("message", &self.message)
            .field("needs_ack", &self.needs_ack())
            .finish()
    }
}

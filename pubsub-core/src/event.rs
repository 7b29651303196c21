//! Typed events: a Rust type that knows its routing key and default priority.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Message, PubSub, Received, Result, Subscription};

/// A message type with its own topic and priority, as Infrahub maps each message class
/// to a routing key and a priority.
///
/// ```
/// use pubsub_core::{Event, PubSub, Received};
/// use futures::StreamExt;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct EchoRequest { message: String }
///
/// impl Event for EchoRequest {
///     const TOPIC: &'static str = "send.echo.request";
///     const PRIORITY: u8 = 5;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut echoes = bus.subscribe_to::<EchoRequest>().await?;
/// bus.send(&EchoRequest { message: "ping".into() }).await?;
/// let Some(Received::Message(echo)) = echoes.next().await else { panic!("an event") };
/// assert_eq!(echo?, EchoRequest { message: "ping".into() });
/// # Ok(())
/// # }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + 'static {
    /// The topic (or pattern, for types whose topic holds an id) that
    /// [`PubSub::subscribe_to`] listens on.
    const TOPIC: &'static str;
    /// The priority [`PubSub::send`] gives it.
    const PRIORITY: u8 = 0;

    /// The concrete topic this value is published to. Override it when the topic holds
    /// data of the value (Inthe.AM's `changed_task.<username>`).
    fn topic(&self) -> Cow<'_, str> {
        Cow::Borrowed(Self::TOPIC)
    }
}

impl PubSub {
    /// Publishes `event` as JSON to its own topic with its own priority.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`Topic::publish`](crate::Topic::publish).
    pub async fn send<E: Event>(&self, event: &E) -> Result<()> {
        let message = Message::json(event)?.with_priority(E::PRIORITY);
        self.topic(event.topic()).publish_message(message).await
    }

    /// Subscribes to `E::TOPIC` and decodes each message as `E`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Topic::subscribe`](crate::Topic::subscribe).
    pub async fn subscribe_to<E: Event>(&self) -> Result<Events<E>> {
        let subscription = self.topic(E::TOPIC).subscribe().await?;
        Ok(Events {
            subscription,
            _type: PhantomData,
        })
    }
}

/// A stream of typed events: each message decoded as `E`. A message that does not
/// decode is an [`Error::Decode`](crate::Error::Decode) for that message only, and
/// signals pass through; the stream goes on after both.
pub struct Events<E> {
    subscription: Subscription,
    _type: PhantomData<fn() -> E>,
}

impl<E> Events<E> {
    /// The untyped subscription underneath.
    pub fn into_inner(self) -> Subscription {
        self.subscription
    }
}

impl<E: Event> Stream for Events<E> {
    type Item = Received<Result<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.subscription)
            .poll_next(cx)
            .map(|item| item.map(|received| received.map(|delivery| delivery.json())))
    }
}

impl<E> std::fmt::Debug for Events<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("type", &std::any::type_name::<E>())
            .finish()
    }
}

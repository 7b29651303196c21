//! The stream of deliveries a subscriber reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::Stream;

use crate::{Backend, Delivery, Result};

type DeliveryStream = Pin<Box<dyn Stream<Item = Result<Delivery>> + Send>>;
type Unsubscribe = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

/// A live subscription: a [`Stream`] of `Result<Delivery>`.
///
/// `Err` items are signals ([`Error::Lagged`](crate::Error::Lagged),
/// [`Error::Gap`](crate::Error::Gap)) and the stream goes on after them. The stream
/// ends only when the subscription is dropped or unsubscribed, or the bus is closed.
/// Dropping it unsubscribes; [`unsubscribe`](Self::unsubscribe) does the same and
/// waits until the broker has confirmed.
///
/// ```
/// use pubsub_core::PubSub;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut sub = bus.topic("sync.*").subscribe().await?;
/// bus.topic("sync.alice").publish(&serde_json::json!({"stored_count": 2})).await?;
///
/// while let Some(item) = sub.next().await {
///     let delivery = item?;
///     assert_eq!(delivery.topic(), "sync.alice");
///     break;
/// }
/// sub.unsubscribe().await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a subscription delivers nothing unless it is polled"]
pub struct Subscription {
    stream: DeliveryStream,
    unsubscribe: Option<Unsubscribe>,
    replies: Option<Arc<dyn Backend>>,
}

impl Subscription {
    /// Wraps a backend's stream of deliveries. Dropping the stream must release the
    /// subscription.
    pub fn new(stream: impl Stream<Item = Result<Delivery>> + Send + 'static) -> Self {
        Subscription {
            stream: Box::pin(stream),
            unsubscribe: None,
            replies: None,
        }
    }

    /// Adds a step that [`unsubscribe`](Self::unsubscribe) awaits after dropping the
    /// stream, for backends whose broker confirms an unsubscribe.
    pub fn with_unsubscribe<F, Fut>(mut self, unsubscribe: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.unsubscribe = Some(Box::new(move || Box::pin(unsubscribe())));
        self
    }

    pub(crate) fn with_replies(mut self, backend: Arc<dyn Backend>) -> Self {
        self.replies = Some(backend);
        self
    }

    /// Transforms every delivery, keeping the unsubscribe step. For decorators.
    pub fn map_deliveries<F>(self, mut f: F) -> Self
    where
        F: FnMut(Delivery) -> Delivery + Send + 'static,
    {
        use futures::StreamExt;
        Subscription {
            stream: Box::pin(self.stream.map(move |item| item.map(&mut f))),
            ..self
        }
    }

    /// The next delivery or signal; `None` once the subscription has ended. The same
    /// as `StreamExt::next`, without the import.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        futures::StreamExt::next(self).await
    }

    /// Ends the subscription and waits until the backend has released it.
    pub async fn unsubscribe(self) -> Result<()> {
        let Subscription {
            stream,
            unsubscribe,
            ..
        } = self;
        drop(stream);
        match unsubscribe {
            Some(unsubscribe) => unsubscribe().await,
            None => Ok(()),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(mut delivery))) => {
                // Only requests need a way to answer; the rest skip the refcount bump.
                if let Some(backend) = &this.replies {
                    if delivery.header(crate::message::REPLY_TO).is_some() {
                        delivery.set_reply_backend(backend);
                    }
                }
                Poll::Ready(Some(Ok(delivery)))
            }
            other => other,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

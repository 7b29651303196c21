//! Callback-style consumption: `topic.on(handler)` runs a handler for each message,
//! acks on `Ok` and retries, dead-letters or nacks on `Err`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::telemetry;
use crate::{
    BoxError, Delivery, Error, Message, Received, Result, SubscribeOptions, Topic, MAX_PRIORITY,
};

/// What a handler returns: `Ok` acks the message, `Err` fails this attempt.
pub type HandlerResult = std::result::Result<(), BoxError>;

/// Header a dead-lettered message carries: the topic it was first published to.
pub const ORIGINAL_TOPIC: &str = "x-original-topic";
/// Header a dead-lettered message carries: the handler's last error.
pub const LAST_ERROR: &str = "x-last-error";

/// How a failing handler is retried before the message is given up.
///
/// ```
/// use std::time::Duration;
/// use pubsub_core::RetryPolicy;
///
/// let retry = RetryPolicy::attempts(5).delay(Duration::from_millis(200)).dead_letter("git.dead");
/// assert_eq!(retry.max_attempts, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many times the handler runs for one message, the first time included.
    pub max_attempts: u32,
    /// The pause before each retry.
    pub delay: Duration,
    /// Where a message goes after its last failed attempt, with the
    /// [`ORIGINAL_TOPIC`] and [`LAST_ERROR`] headers, and its priority lowered to
    /// [`MAX_PRIORITY`] (a foreign one may be higher). Without one it is nacked without
    /// requeue (and logged). A dead letter that cannot be published for a broker's
    /// reason requeues the message; one the dead-letter topic refuses for the message
    /// itself (too large, say) is nacked without requeue and logged, as a requeued
    /// message would fail the same way forever.
    pub dead_letter: Option<String>,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self::attempts(1)
    }

    /// Up to `max_attempts` runs of the handler, with no pause between them.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            delay: Duration::ZERO,
            dead_letter: None,
        }
    }

    /// Pauses `delay` before each retry.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Publishes given-up messages to `topic`.
    pub fn dead_letter(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter = Some(topic.into());
        self
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

/// Options of [`Topic::on_with`].
///
/// ```
/// use pubsub_core::{HandlerOptions, RetryPolicy};
///
/// let opts = HandlerOptions::new().group("notifications").concurrency(4).retry(RetryPolicy::attempts(3));
/// assert_eq!(opts.concurrency, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// Subscription options (group, buffer, prefetch).
    pub subscribe: SubscribeOptions,
    /// How many messages the handler works on at once (at least 1).
    pub concurrency: usize,
    /// What happens when the handler fails.
    pub retry: RetryPolicy,
}

impl HandlerOptions {
    /// Broadcast, one message at a time, no retry.
    pub fn new() -> Self {
        HandlerOptions {
            subscribe: SubscribeOptions::new(),
            concurrency: 1,
            retry: RetryPolicy::none(),
        }
    }

    /// Consumes as a member of `group`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.subscribe = self.subscribe.group(group);
        self
    }

    /// Runs up to `n` handlers at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

impl Default for HandlerOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A running handler. Dropping it leaves the handler running (as a tokio
/// `JoinHandle` does); [`stop`](Self::stop) ends it.
#[derive(Debug)]
pub struct Handler {
    task: JoinHandle<()>,
    ready: Option<oneshot::Receiver<Result<()>>>,
}

impl Handler {
    /// Waits until the handler's subscription is confirmed (messages published after
    /// this reach it), or returns the error that kept it from subscribing.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: after a cancelled wait, `ready` returns `Ok` at once.
    pub async fn ready(&mut self) -> Result<()> {
        match self.ready.take() {
            Some(ready) => ready.await.unwrap_or(Err(Error::Closed)),
            None => Ok(()),
        }
    }

    /// Stops the handler; messages it had not acked are delivered again where the
    /// backend has acks.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Whether the handler has ended (its subscription ended or it was stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Topic {
    /// Runs `handler` for every message on this topic (ESN's `subscribe(callback)`):
    /// ack on `Ok`, nack on `Err`. Subscribes in the background; await
    /// [`Handler::ready`] to know when.
    ///
    /// ```
    /// use pubsub_core::{Delivery, PubSub};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let bus: PubSub = pubsub_local::LocalBackend::new().into();
    /// let (seen, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let mut handler = bus.topic("login:success").on(move |d: Delivery| {
    ///     let seen = seen.clone();
    ///     async move {
    ///         seen.send(d.json::<String>()?)?;
    ///         Ok(())
    ///     }
    /// });
    /// handler.ready().await?;
    /// bus.topic("login:success").publish("alice").await?;
    /// assert_eq!(rx.recv().await.as_deref(), Some("alice"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on<F, Fut>(&self, handler: F) -> Handler
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.on_with(HandlerOptions::new(), handler)
    }

    /// [`on`](Self::on) with options: a group, concurrency, a retry policy.
    pub fn on_with<F, Fut>(&self, options: HandlerOptions, handler: F) -> Handler
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let (ready_tx, ready) = oneshot::channel();
        let topic = self.clone();
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            let subscription = match topic.subscribe_with(options.subscribe.clone()).await {
                Ok(subscription) => {
                    let _ = ready_tx.send(Ok(()));
                    subscription
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            let retry = Arc::new(options.retry);
            subscription
                .for_each_concurrent(options.concurrency, |received| {
                    let (topic, handler, retry) =
                        (&topic, Arc::clone(&handler), Arc::clone(&retry));
                    async move {
                        match received {
                            Received::Message(delivery) => {
                                settle(topic, &*handler, &retry, delivery).await
                            }
                            // The subscription has logged it; the handler has nothing to add.
                            Received::Signal(_) => {}
                        }
                    }
                })
                .await;
        });
        Handler {
            task,
            ready: Some(ready),
        }
    }
}

/// Runs the handler on one delivery under the retry policy, then settles it.
async fn settle<F, Fut>(topic: &Topic, handler: &F, retry: &RetryPolicy, delivery: Delivery)
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = HandlerResult>,
{
    let mut attempt = 1;
    let error = loop {
        // The handler takes the delivery by value; it gets a twin that shares the
        // message but cannot settle it, so the ack stays here.
        let attempt_done = handler(delivery.unsettled_copy());
        match telemetry::process(delivery.observed(), delivery.topic(), attempt_done).await {
            Ok(()) => {
                if let Err(error) = delivery.ack().await {
                    tracing::warn!(topic = topic.name(), %error, "ack failed");
                }
                return;
            }
            Err(error) if attempt < retry.max_attempts => {
                tracing::debug!(topic = topic.name(), attempt, %error, "handler failed, retrying");
                attempt += 1;
                tokio::time::sleep(retry.delay).await;
            }
            Err(error) => break error,
        }
    };
    give_up(topic, retry, delivery, &error).await;
}

/// Whether publishing failed for the message itself, not for the broker's state.
fn refuses_the_message(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidTopic { .. }
            | Error::InvalidPriority(_)
            | Error::PayloadTooLarge { .. }
            | Error::Unsupported(_)
    )
}

async fn give_up(topic: &Topic, retry: &RetryPolicy, delivery: Delivery, error: &BoxError) {
    let Some(dead_letter) = &retry.dead_letter else {
        tracing::error!(topic = delivery.topic(), attempts = retry.max_attempts, %error, "handler failed, message given up");
        if let Err(error) = delivery.nack(false).await {
            tracing::warn!(topic = topic.name(), %error, "nack failed");
        }
        return;
    };
    // A foreign message may carry any priority its broker allows (AMQP's go to 255,
    // delivered as the queue's highest): the dead letter keeps it within ours.
    let priority = delivery.priority().min(MAX_PRIORITY);
    let mut message = Message::new(delivery.payload().clone()).with_priority(priority);
    for (key, value) in delivery.headers() {
        message = message.with_header(key, value.clone());
    }
    // Where headers cannot travel, the dead letter is the message as it came.
    if topic.bus().capabilities().headers {
        message = message
            .with_header(ORIGINAL_TOPIC, delivery.topic())
            .with_header(LAST_ERROR, error.to_string());
    }
    let dead_letters = topic.bus().topic(dead_letter);
    let publishing = telemetry::scoped(delivery.observed(), || {
        dead_letters.publish_message(message)
    });
    match publishing.await {
        Ok(()) => {
            telemetry::dead_lettered(delivery.observed());
            tracing::warn!(topic = delivery.topic(), dead_letter, %error, "handler failed, message dead-lettered");
            if let Err(error) = delivery.ack().await {
                tracing::warn!(topic = topic.name(), %error, "ack failed");
            }
        }
        // Requeued, the message would come back to fail and be refused again, forever.
        Err(publish_error) if refuses_the_message(&publish_error) => {
            tracing::error!(topic = delivery.topic(), dead_letter, %publish_error, "the dead-letter topic refuses this message; it is given up");
            let _ = delivery.nack(false).await;
        }
        Err(publish_error) => {
            tracing::error!(topic = delivery.topic(), %publish_error, "dead-lettering failed, message requeued");
            let _ = delivery.nack(true).await;
        }
    }
}

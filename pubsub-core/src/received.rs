//! What a subscription yields: a message, or a signal that messages were missed.

use crate::Delivery;

/// Something happened to a subscription's stream that is not a message: messages
/// were missed. The stream goes on after a signal.
///
/// `Signal` is not an error type on purpose: a consumer cannot end itself on a lag
/// with `?` by accident, it has to decide what a missed message means to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// The subscriber fell behind; its bounded buffer dropped the `missed` oldest
    /// messages.
    Lagged {
        /// How many messages were dropped.
        missed: u64,
    },
    /// The connection to the broker was lost and re-established: messages published
    /// in between may have been missed, how many is unknown.
    Gap {
        /// What happened.
        reason: String,
    },
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signal::Lagged { missed } => write!(f, "lagged behind and missed {missed} messages"),
            Signal::Gap { reason } => write!(f, "messages may have been missed: {reason}"),
        }
    }
}

/// One item of a [`Subscription`](crate::Subscription): a message, or a [`Signal`].
///
/// ```
/// use pubsub_core::{PubSub, Received};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let mut sub = bus.topic("sync.*").subscribe().await?;
/// bus.topic("sync.alice").publish(&1).await?;
/// match sub.next().await {
///     Some(Received::Message(delivery)) => assert_eq!(delivery.topic(), "sync.alice"),
///     Some(Received::Signal(signal)) => eprintln!("{signal}"),
///     None => unreachable!("the bus is open"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a received message should be handled, a signal at least logged"]
pub enum Received<T = Delivery> {
    /// A message.
    Message(T),
    /// Messages were missed; the stream goes on.
    Signal(Signal),
}

impl<T> Received<T> {
    /// The message, if this is one.
    pub fn message(self) -> Option<T> {
        match self {
            Received::Message(message) => Some(message),
            Received::Signal(_) => None,
        }
    }

    /// The signal, if this is one.
    pub fn signal(&self) -> Option<&Signal> {
        match self {
            Received::Message(_) => None,
            Received::Signal(signal) => Some(signal),
        }
    }

    /// Transforms the message, passing a signal through.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Received<U> {
        match self {
            Received::Message(message) => Received::Message(f(message)),
            Received::Signal(signal) => Received::Signal(signal),
        }
    }
}

//! The one error type every backend reports through.

use std::time::Duration;

/// A boxed error from a broker client, an I/O layer or a user's handler.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, named by its cause.
///
/// Missed messages are not errors: a [`Subscription`](crate::Subscription) reports
/// them as [`Signal`](crate::Signal)s.
///
/// ```
/// use pubsub_core::{Error, PubSub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus: PubSub = pubsub_local::LocalBackend::new().into();
/// let err = bus.topic("task.*").publish(&1).await.unwrap_err();
/// assert!(matches!(err, Error::InvalidTopic { .. }));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topic name breaks the naming rules, or a pattern was used where only a
    /// concrete name is allowed (publishing).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic {
        /// The name as given (cut to 300 bytes).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A message priority outside 0 to 9.
    #[error("invalid priority {0}: priorities go from 0 to 9")]
    InvalidPriority(u8),
    /// The payload is larger than the bus or the broker accepts.
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The largest payload accepted.
        limit: usize,
    },
    /// A value could not be serialized to JSON.
    #[error("could not encode the message as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// A payload could not be decoded into the requested type. Only this message is
    /// affected: the subscription goes on.
    #[error("could not decode the message on {topic:?}: {source}")]
    Decode {
        /// The topic the message came from.
        topic: String,
        /// What the decoder said.
        #[source]
        source: serde_json::Error,
    },
    /// The backend cannot do this; the message says what to use instead.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An operation did not finish in time.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        operation: &'static str,
        /// The time that was allowed.
        after: Duration,
    },
    /// A request found nobody subscribed to its topic.
    #[error("no responders on topic {topic:?}")]
    NoResponders {
        /// The request's topic.
        topic: String,
    },
    /// A group queue is full; the message was not accepted.
    #[error("queue {queue:?} is full ({capacity} messages waiting)")]
    QueueFull {
        /// The queue's name.
        queue: String,
        /// Its capacity.
        capacity: usize,
    },
    /// `reply` was called on a delivery that was not sent by `request`.
    #[error("the message on {topic:?} has no reply-to header: it is not a request")]
    NotARequest {
        /// The topic of the delivery.
        topic: String,
    },
    /// The URL given to `connect` is malformed or of the wrong scheme.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The broker refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The broker could not be reached, or the connection broke.
    #[error("connection error: {message}")]
    Connection {
        /// What was attempted.
        message: String,
        /// The client's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The broker answered with an error.
    #[error("broker error: {message}")]
    Broker {
        /// What was attempted and what the broker said.
        message: String,
        /// The client's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The bus was closed.
    #[error("the bus is closed")]
    Closed,
}

impl Error {
    /// Builds [`Error::InvalidTopic`], cutting very long names so errors stay readable.
    pub fn invalid_topic(name: &str, reason: &'static str) -> Self {
        let mut end = name.len().min(300);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Error::InvalidTopic {
            name: name[..end].to_owned(),
            reason,
        }
    }

    /// Builds [`Error::Connection`] from a message and the client's error.
    pub fn connection(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Connection {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds [`Error::Broker`] from a message and the client's error.
    pub fn broker(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Broker {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

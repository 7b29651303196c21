//! What a workload needs from a client: publish handles, subscriptions, and
//! optionally request/reply. Our library and each raw client implement it once, so
//! every workload is written once and runs unchanged on both sides of a comparison.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;

/// Errors of a benchmark run: any error, with its message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a benchmark step.
pub type BenchResult<T> = Result<T, BenchError>;

/// How a subscription receives.
#[derive(Debug, Clone, Copy)]
pub enum Receive<'a> {
    /// Every message published to this concrete name.
    Broadcast,
    /// Every message whose topic matches this `*`/`#` pattern.
    Pattern,
    /// Competing consumers: each message to one member of this group, acked.
    Group(&'a str),
}

/// One received item.
#[derive(Debug)]
pub enum Recv {
    /// A message's payload.
    Msg(Bytes),
    /// The client dropped this many messages for a slow subscriber.
    Lagged(u64),
    /// The subscription ended.
    Closed,
}

/// A client under test: our library over some backend, or a raw broker client.
pub trait Client: Send + Sync + 'static {
    /// A handle that publishes to one topic.
    type Publisher: Publisher;
    /// A live subscription.
    type Subscriber: Subscriber;

    /// Publishes a publisher keeps in flight (1: wait for each before the next).
    fn depth(&self) -> usize;

    /// A publisher for the concrete topic `topic`.
    fn publisher(&self, topic: &str) -> impl Future<Output = BenchResult<Self::Publisher>> + Send;

    /// Subscribes; `None` when this client has no such way of receiving (the row
    /// then says "n/a").
    fn subscribe(
        &self,
        topic: &str,
        how: Receive<'_>,
    ) -> impl Future<Output = BenchResult<Option<Self::Subscriber>>> + Send;

    /// Runs sequential request/reply round trips on `topic` against an echo
    /// responder for `length`, recording each round trip in nanoseconds. `None`
    /// when the client has no request/reply of its own.
    fn round_trips(
        &self,
        topic: &str,
        payload: Bytes,
        length: Duration,
    ) -> impl Future<Output = BenchResult<Option<Histogram<u64>>>> + Send {
        let _ = (topic, payload, length);
        async { Ok(None) }
    }

    /// The most subscriptions this client can hold at once, where its broker caps
    /// what the client's way of subscribing uses (`None`: no such cap).
    fn max_subscriptions(&self) -> Option<usize> {
        None
    }

    /// Closes the client's connections, so none outlives the runtime; errors are of
    /// no interest at the end of a run.
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Publishes to one topic.
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one payload; `Ok` when the client considers it sent.
    fn publish(&self, payload: Bytes) -> impl Future<Output = BenchResult<()>> + Send;
}

/// Receives from one subscription. Group members ack each message before
/// returning it, as a worker that finished its job does.
pub trait Subscriber: Send + 'static {
    /// The next item.
    fn recv(&mut self) -> impl Future<Output = Recv> + Send;
}

//! Our library, through its public API, over whatever backend it is given.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use pubsub_core::{
    Error, Message, PubSub, Received, Signal, SubscribeOptions, Subscription, Topic,
};

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};
use crate::measure;

/// `PubSub` over one backend, with `depth` publishes in flight per publisher.
#[derive(Debug, Clone)]
pub struct BusClient {
    bus: PubSub,
    depth: usize,
}

impl BusClient {
    /// A client over `bus`.
    pub fn new(bus: PubSub, depth: usize) -> Self {
        BusClient { bus, depth }
    }
}

impl Client for BusClient {
    type Publisher = Topic;
    type Subscriber = BusSubscriber;

    fn depth(&self) -> usize {
        self.depth
    }

    async fn publisher(&self, topic: &str) -> BenchResult<Topic> {
        Ok(self.bus.topic(topic))
    }

    async fn subscribe(&self, topic: &str, how: Receive<'_>) -> BenchResult<Option<BusSubscriber>> {
        let options = match how {
            Receive::Broadcast | Receive::Pattern => SubscribeOptions::new(),
            Receive::Group(group) => SubscribeOptions::new().group(group),
        };
        match self.bus.topic(topic).subscribe_with(options).await {
            Ok(sub) => Ok(Some(BusSubscriber(sub))),
            Err(Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn round_trips(
        &self,
        topic: &str,
        payload: Bytes,
        length: Duration,
    ) -> BenchResult<Option<Histogram<u64>>> {
        let mut requests = self.bus.topic(topic).subscribe().await?;
        let responder = tokio::spawn(async move {
            while let Some(Received::Message(request)) = requests.next().await {
                let echo = Message::new(request.payload().clone());
                if request.reply_message(echo).await.is_err() {
                    break;
                }
            }
        });
        let topic = self.bus.topic(topic);
        let mut histogram = measure::histogram();
        let deadline = Instant::now() + length;
        while Instant::now() < deadline {
            let sent = Instant::now();
            let reply = topic
                .request_message(Message::new(payload.clone()), Duration::from_secs(5))
                .await?;
            drop(reply);
            histogram.saturating_record(sent.elapsed().as_nanos() as u64);
        }
        responder.abort();
        Ok(Some(histogram))
    }

    async fn close(&self) {
        let _ = self.bus.close().await;
    }
}

impl Publisher for Topic {
    async fn publish(&self, payload: Bytes) -> BenchResult<()> {
        Ok(self.publish_message(Message::new(payload)).await?)
    }
}

/// A subscription of our library.
pub struct BusSubscriber(Subscription);

impl Subscriber for BusSubscriber {
    async fn recv(&mut self) -> Recv {
        match self.0.next().await {
            // The payload moves out where there is nothing to settle: a clone would be
            // one more round trip on a reference count the publisher's core touches too.
            Some(Received::Message(delivery)) if !delivery.needs_ack() => {
                Recv::Msg(delivery.into_message().into_payload())
            }
            Some(Received::Message(delivery)) => {
                let payload = delivery.payload().clone();
                if delivery.ack().await.is_err() {
                    return Recv::Closed;
                }
                Recv::Msg(payload)
            }
            Some(Received::Signal(Signal::Lagged { missed })) => Recv::Lagged(missed),
            // Other signals (a gap after a reconnect) lose an unknown number of
            // messages; the count of what arrived tells how many.
            Some(Received::Signal(_)) => Recv::Lagged(0),
            None => Recv::Closed,
        }
    }
}

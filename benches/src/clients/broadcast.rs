//! Raw `tokio::sync::broadcast`, written the way a user of tokio would: one channel
//! per topic, the sender kept at hand, `recv` in a loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::client::{BenchResult, Client, Publisher, Receive, Recv, Subscriber};

/// Channels by topic, each with `buffer` slots (as the in-process backend's).
#[derive(Debug, Clone)]
pub struct BroadcastClient {
    buffer: usize,
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<Bytes>>>>,
}

impl BroadcastClient {
    /// Channels of `buffer` messages.
    pub fn new(buffer: usize) -> Self {
        BroadcastClient {
            buffer,
            channels: Arc::default(),
        }
    }

    /// The channel of `topic`; looked up at setup only, never per message.
    fn channel(&self, topic: &str) -> broadcast::Sender<Bytes> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(self.buffer).0)
            .clone()
    }
}

impl Client for BroadcastClient {
    type Publisher = BroadcastPublisher;
    type Subscriber = BroadcastSubscriber;

    fn depth(&self) -> usize {
        1
    }

    async fn publisher(&self, topic: &str) -> BenchResult<BroadcastPublisher> {
        Ok(BroadcastPublisher(self.channel(topic)))
    }

    /// Broadcast only: tokio has neither patterns nor competing consumers.
    async fn subscribe(
        &self,
        topic: &str,
        how: Receive<'_>,
    ) -> BenchResult<Option<BroadcastSubscriber>> {
        Ok(match how {
            Receive::Broadcast => Some(BroadcastSubscriber(self.channel(topic).subscribe())),
            Receive::Pattern | Receive::Group(_) => None,
        })
    }
}

/// The sending half of one topic's channel.
pub struct BroadcastPublisher(broadcast::Sender<Bytes>);

impl Publisher for BroadcastPublisher {
    async fn publish(&self, payload: Bytes) -> BenchResult<()> {
        // No receivers is not an error for a broadcast.
        let _ = self.0.send(payload);
        Ok(())
    }
}

/// The receiving half of one topic's channel.
pub struct BroadcastSubscriber(broadcast::Receiver<Bytes>);

impl Subscriber for BroadcastSubscriber {
    async fn recv(&mut self) -> Recv {
        match self.0.recv().await {
            Ok(payload) => Recv::Msg(payload),
            Err(RecvError::Lagged(missed)) => Recv::Lagged(missed),
            Err(RecvError::Closed) => Recv::Closed,
        }
    }
}

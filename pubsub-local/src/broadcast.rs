//! Broadcast subscriptions: one `tokio::sync::broadcast` channel per name or pattern
//! (and buffer size), shared by every subscriber to it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use pubsub_core::{Delivery, Error, Message, Pattern, Subscription};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::backend::Shared;

/// A channel with the buffer size its subscribers asked for.
#[derive(Debug)]
struct Channel {
    buffer: usize,
    sender: broadcast::Sender<Message>,
}

/// Every broadcast channel of a bus: concrete names in a map, patterns in a list that
/// publishes scan.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    names: HashMap<Arc<str>, Vec<Channel>>,
    patterns: Vec<(Pattern, Vec<Channel>)>,
}

impl Channels {
    /// Sends to every channel whose name or pattern matches; returns how many
    /// subscribers got the message.
    pub(crate) fn send(&self, message: &Message) -> usize {
        let topic = message.topic();
        let mut receivers = 0;
        if let Some(channels) = self.names.get(topic) {
            receivers += send_all(channels, message);
        }
        for (pattern, channels) in &self.patterns {
            if pattern.matches(topic) {
                receivers += send_all(channels, message);
            }
        }
        receivers
    }

    pub(crate) fn subscribe(
        &mut self,
        pattern: Pattern,
        buffer: usize,
    ) -> broadcast::Receiver<Message> {
        let channels = match pattern.is_wildcard() {
            false => self.names.entry(Arc::from(pattern.as_str())).or_default(),
            true => match self.patterns.iter().position(|(p, _)| *p == pattern) {
                Some(i) => &mut self.patterns[i].1,
                None => {
                    self.patterns.push((pattern, Vec::new()));
                    &mut self.patterns.last_mut().expect("just pushed").1
                }
            },
        };
        if let Some(channel) = channels.iter().find(|c| c.buffer == buffer) {
            return channel.sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(buffer);
        channels.push(Channel { buffer, sender });
        receiver
    }

    /// Drops the channels of `pattern` that no subscriber reads any more.
    fn release(&mut self, pattern: &Pattern) {
        let idle = |channels: &mut Vec<Channel>| {
            channels.retain(|c| c.sender.receiver_count() > 0);
            channels.is_empty()
        };
        if pattern.is_wildcard() {
            self.patterns
                .retain_mut(|(p, channels)| p != pattern || !idle(channels));
        } else if let Some(channels) = self.names.get_mut(pattern.as_str()) {
            if idle(channels) {
                self.names.remove(pattern.as_str());
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty() && self.patterns.is_empty()
    }
}

fn send_all(channels: &[Channel], message: &Message) -> usize {
    channels
        .iter()
        .map(|c| c.sender.send(message.clone()).unwrap_or(0))
        .sum()
}

/// The subscriber's side: the channel's receiver as a stream, and the registration
/// it releases when dropped.
pub(crate) fn subscription(
    receiver: broadcast::Receiver<Message>,
    pattern: Pattern,
    shared: Weak<Shared>,
) -> Subscription {
    let stream = BroadcastStream::new(receiver).map(|item| match item {
        Ok(message) => Ok(Delivery::new(message)),
        Err(BroadcastStreamRecvError::Lagged(missed)) => Err(Error::Lagged { missed }),
    });
    Subscription::new(Registered {
        stream,
        _registration: Registration { pattern, shared },
    })
}

/// A stream that keeps its registration until it is dropped. Fields drop in order, so
/// the receiver is gone by the time the registration looks for idle channels.
struct Registered<S> {
    stream: S,
    _registration: Registration,
}

impl<S: Stream + Unpin> Stream for Registered<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.stream.poll_next_unpin(cx)
    }
}

struct Registration {
    pattern: Pattern,
    shared: Weak<Shared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.write().channels.release(&self.pattern);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::LocalBackend;
    use pubsub_core::PubSub;

    #[tokio::test]
    async fn dropping_the_last_subscriber_frees_its_channel() {
        let backend = LocalBackend::new();
        let bus = PubSub::new(backend.clone());
        let a = bus.topic("a.b").subscribe().await.unwrap();
        let b = bus.topic("a.*").subscribe().await.unwrap();
        let c = bus.topic("a.b").subscribe().await.unwrap();
        drop((a, b));
        assert!(!backend.channels_are_empty());
        drop(c);
        assert!(backend.channels_are_empty());
    }
}

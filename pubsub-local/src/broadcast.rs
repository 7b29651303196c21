//! Broadcast subscriptions: one `tokio::sync::broadcast` channel per name or pattern
//! (and buffer size), shared by every subscriber to it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use pubsub_core::{Delivery, Error, Message, Pattern, Result, Subscription};
use std::future::Future;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

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
    /// Keyed with foldhash: the topic is hashed on every publish, and SipHash's cost
    /// showed in the profile; foldhash keeps a per-process seed against flooding.
    names: HashMap<Arc<str>, Vec<Channel>, foldhash::fast::RandomState>,
    patterns: Vec<(Pattern, Vec<Channel>)>,
}

impl Channels {
    /// Sends to every channel whose name or pattern matches; returns how many
    /// subscribers got the message.
    pub(crate) fn send(&self, message: Message) -> usize {
        let topic = message.topic();
        let named = self.names.get(topic).map_or(&[][..], Vec::as_slice);
        // The common case, one channel and no patterns, takes the message without a copy.
        if self.patterns.is_empty() {
            return match named {
                [only] => only.sender.send(message).unwrap_or(0),
                _ => send_all(named, &message),
            };
        }
        let mut receivers = send_all(named, &message);
        for (pattern, channels) in &self.patterns {
            if pattern.matches(topic) {
                receivers += send_all(channels, &message);
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
    Subscription::new(Receiving {
        state: State::Ready(receiver),
        _registration: Registration { pattern, shared },
    })
}

/// A receiver as a stream. It takes what is buffered with `try_recv` and builds a
/// waiting future only when the channel is empty, so a subscriber that is behind pays
/// no allocation per message. Fields drop in order: the receiver is gone by the time
/// the registration looks for idle channels.
struct Receiving {
    state: State,
    _registration: Registration,
}

type Received = (
    std::result::Result<Message, RecvError>,
    broadcast::Receiver<Message>,
);

enum State {
    Ready(broadcast::Receiver<Message>),
    Waiting(Pin<Box<dyn Future<Output = Received> + Send>>),
    Ended,
}

fn item(received: std::result::Result<Message, RecvError>) -> Option<Result<Delivery>> {
    match received {
        Ok(message) => Some(Ok(Delivery::new(message))),
        Err(RecvError::Lagged(missed)) => Some(Err(Error::Lagged { missed })),
        Err(RecvError::Closed) => None,
    }
}

impl Stream for Receiving {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::mem::replace(&mut self.state, State::Ended) {
                State::Ready(mut receiver) => match receiver.try_recv() {
                    Err(TryRecvError::Empty) => {
                        self.state =
                            State::Waiting(Box::pin(
                                async move { (receiver.recv().await, receiver) },
                            ));
                    }
                    Err(TryRecvError::Lagged(missed)) => {
                        self.state = State::Ready(receiver);
                        return Poll::Ready(Some(Err(Error::Lagged { missed })));
                    }
                    Err(TryRecvError::Closed) => return Poll::Ready(None),
                    Ok(message) => {
                        self.state = State::Ready(receiver);
                        return Poll::Ready(Some(Ok(Delivery::new(message))));
                    }
                },
                State::Waiting(mut waiting) => match waiting.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Waiting(waiting);
                        return Poll::Pending;
                    }
                    Poll::Ready((received, receiver)) => {
                        let item = item(received);
                        if item.is_some() {
                            self.state = State::Ready(receiver);
                        }
                        return Poll::Ready(item);
                    }
                },
                State::Ended => return Poll::Ready(None),
            }
        }
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

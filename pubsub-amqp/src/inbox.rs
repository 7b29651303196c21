//! Request/reply as AMQP clients do it: a request carries `reply-to` (a queue name)
//! and `correlation-id` as properties, and a reply goes to the default exchange with
//! the `reply-to` as routing key and the request's `correlation-id`.
//!
//! Our requesters use RabbitMQ's direct reply-to: no reply queue is declared. The
//! connection consumes the pseudo-queue `amq.rabbitmq.reply-to` (without acks, as the
//! broker requires) on a channel of its own, and a request, whose `reply-to` is then
//! that name, must be published on that same channel; the broker rewrites its
//! `reply-to` into an address (`amq.rabbitmq.reply-to.<opaque>`) that leads back to
//! the channel. The channel confirms, so a mandatory request that nobody receives is
//! still returned and told as [`Error::NoResponders`].
//!
//! One consumer serves every inbox subscription of the connection (one per bus):
//! a publish cannot say which of them a request is from, so each reply goes to every
//! inbox, and each keeps the replies whose correlation id it waits for. After the
//! connection or the channel is lost, the inboxes consume again on a new channel;
//! replies to requests sent before are lost with the old one, and those requests
//! time out.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};
use pubsub_core::backend::{PublishOptions, Publisher, Publishing};
use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Error, Message, Pattern, Result, SubscribeOptions, Subscription};
use pubsub_core::{TopicName, REPLY_TO};
use tokio::task::JoinHandle;

use crate::connection::{Live, Shared};
use crate::errors::lapin_error;
use crate::lost::Liveness;
use crate::properties::{short, to_message, to_properties};
use crate::publish::{publish, Exchange, Outgoing};
use crate::subscribe::resume;

/// RabbitMQ's direct reply-to pseudo-queue: what our requests carry as `reply-to`.
pub(crate) const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Whether `message` is one of our requests, to publish on the inbox's channel.
pub(crate) fn is_request(message: &Message) -> bool {
    message.header(REPLY_TO) == Some(DIRECT_REPLY_TO)
}

/// The connection's direct reply-to consumer and the inbox subscriptions it serves.
#[derive(Default)]
pub(crate) struct Inboxes {
    state: Mutex<State>,
    /// Held while the consumer is first made, so that one is.
    starting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    inboxes: Vec<Inbox>,
    last_id: u64,
    /// The channel consuming now: `None` before the first inbox, and while it
    /// consumes again after a loss.
    channel: Option<Arc<Channel>>,
    /// Reads the consumer and consumes again after a loss; it runs while an inbox is.
    pump: Option<JoinHandle<()>>,
}

/// One inbox subscription: its ring, and the topic its deliveries carry.
struct Inbox {
    id: u64,
    topic: TopicName,
    ring: RingSender<Delivery>,
}

impl Inboxes {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The channel to publish a request on, with `exchange` declared.
    pub(crate) async fn channel(
        &self,
        shared: &Shared,
        exchange: &Exchange,
    ) -> Result<Arc<Channel>> {
        // Declares the exchange once per publishing channel: a request to an exchange
        // that does not exist would close the inbox's channel.
        shared.publisher(exchange, false).await?;
        let state = self.lock();
        match &state.channel {
            Some(channel) if channel.status().connected() => Ok(Arc::clone(channel)),
            _ if state.inboxes.is_empty() => Err(Error::Unsupported(format!(
                "a message with reply-to {DIRECT_REPLY_TO} must be published on the channel \
                 that consumes the replies, and this connection has no inbox subscription \
                 (SubscribeOptions::inbox)"
            ))),
            // Waited for by the publish, up to its timeout.
            _ => Err(Error::Connection {
                message: "the request inbox is consuming again after its channel was lost".into(),
                source: None,
            }),
        }
    }

    /// Hands a reply to every inbox.
    fn deliver(&self, delivery: lapin::message::Delivery) {
        let message = to_message(delivery.data, &delivery.properties, false).message;
        for inbox in &self.lock().inboxes {
            let _ = inbox
                .ring
                .push(Delivery::new(inbox.topic.clone(), message.clone()));
        }
    }

    fn consuming(&self, channel: Channel) {
        self.lock().channel = Some(Arc::new(channel));
    }

    /// Every inbox hears that replies may have been lost.
    fn resumed(&self, address: &str) {
        for inbox in &self.lock().inboxes {
            inbox.ring.gap(format!(
                "the request inbox's consumer or connection ended and it consumes again \
                 (on {address}): replies sent in between were lost"
            ));
        }
    }

    /// The consumer cannot be made again: the inboxes end.
    fn end(&self) {
        let mut state = self.lock();
        for inbox in &state.inboxes {
            inbox.ring.close();
        }
        state.channel = None;
        state.pump = None;
    }
}

/// Subscribes an inbox: its replies come through the connection's direct reply-to
/// consumer, made now if there is none.
pub(crate) async fn subscribe(
    shared: &Arc<Shared>,
    pattern: &Pattern,
    options: &SubscribeOptions,
) -> Result<Subscription> {
    if shared.is_closed() {
        return Err(Error::Closed);
    }
    if options.group.is_some() {
        return Err(Error::Unsupported(
            "an inbox subscription cannot join a group: its replies are for one requester".into(),
        ));
    }
    let Some(topic) = pattern.as_name() else {
        return Err(Error::invalid_topic(
            pattern.as_str(),
            "an inbox subscribes one topic name, not a pattern",
        ));
    };
    // Replies come without acks, so nothing holds them back in the broker: the ring
    // holds as many as a subscription's queue would (it grows only as used).
    let backlog = usize::try_from(shared.options.backlog).unwrap_or(usize::MAX);
    let buffer = options
        .buffer
        .unwrap_or(shared.options.buffer.max(backlog))
        .max(1);
    let (ring, receiver) = ring::channel(buffer);
    let _starting = shared.inboxes.starting.lock().await;
    let (id, running) = {
        let mut state = shared.inboxes.lock();
        state.last_id += 1;
        let id = state.last_id;
        state.inboxes.push(Inbox { id, topic, ring });
        (id, state.pump.is_some())
    };
    // From here on, a failure or a cancelled subscribe takes the inbox out again.
    let leave = Leave {
        shared: Arc::clone(shared),
        id,
    };
    if !running {
        let live = shared.live_within_timeout().await?;
        let (consumer, channel) = consume(shared, &live).await?;
        let pump = tokio::spawn(pump(Arc::clone(shared), consumer, live.liveness.clone()));
        let mut state = shared.inboxes.lock();
        state.channel = Some(Arc::new(channel));
        state.pump = Some(pump);
    }
    Ok(Subscription::new(receiver)
        .with_guard(leave)
        .with_reply_address(DIRECT_REPLY_TO))
}

/// Consumes the direct reply-to pseudo-queue on a new channel of `live`, in confirm
/// mode for the requests published on it.
async fn consume(shared: &Shared, live: &Live) -> Result<(Consumer, Channel)> {
    let consuming = async {
        // A publishing channel: requests go out on it, mandatory and confirmed.
        let channel = shared.publishing_channel(&live.connection).await?;
        let options = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                ShortString::default(),
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|e| lapin_error(&format!("consume {DIRECT_REPLY_TO}"), e))?;
        Ok((consumer, channel))
    };
    live.liveness
        .unless_lost(&format!("consume {DIRECT_REPLY_TO}"), consuming)
        .await
}

/// Moves replies to the inboxes, and consumes again whenever the consumer ends, until
/// the last inbox goes (which aborts this task) or the backend is closed.
async fn pump(shared: Arc<Shared>, mut consumer: Consumer, mut liveness: Liveness) {
    loop {
        // A consumer lapin leaves open on a lost connection ends here too.
        let lost = liveness.lost();
        tokio::pin!(lost);
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                () = &mut lost => break,
            };
            match next {
                Some(Ok(delivery)) => shared.inboxes.deliver(delivery),
                Some(Err(_)) | None => break,
            }
        }
        shared.inboxes.lock().channel = None;
        let resumed = resume(&shared, "the request inbox", |live| {
            let shared = &shared;
            async move { consume(shared, &live).await }
        })
        .await;
        let Some(((resumed, channel), live)) = resumed else {
            shared.inboxes.end();
            return;
        };
        (consumer, liveness) = (resumed, live.liveness.clone());
        shared.inboxes.consuming(channel);
        shared.inboxes.resumed(&live.address);
    }
}

/// Takes an inbox out when its subscription goes; the last one stops the consumer and
/// closes its channel (with its last handle).
struct Leave {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let mut state = self.shared.inboxes.lock();
        state.inboxes.retain(|inbox| inbox.id != self.id);
        if state.inboxes.is_empty() {
            if let Some(pump) = state.pump.take() {
                pump.abort();
            }
            state.channel = None;
        }
    }
}

/// Publishes replies to one address: the default exchange, with the address (any
/// queue's name, or a direct reply-to address) as routing key.
#[derive(Debug)]
pub(crate) struct ReplyPublisher {
    shared: Arc<Shared>,
    exchange: Exchange,
    queue: ShortString,
}

impl ReplyPublisher {
    pub(crate) fn new(shared: Arc<Shared>, address: &str) -> Result<Self> {
        if address.is_empty() {
            return Err(Error::invalid_topic(
                "reply-to",
                "an AMQP reply-to names a queue, and this one is empty",
            ));
        }
        Ok(ReplyPublisher {
            shared,
            exchange: Exchange::default_exchange(),
            queue: short("reply-to", address)?,
        })
    }
}

impl Publisher for ReplyPublisher {
    fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
        let properties = match to_properties(&message, self.shared.options.persistent) {
            Ok(properties) => properties,
            Err(error) => return Publishing::done(Err(error)),
        };
        Publishing::pending(async move {
            let out = Outgoing {
                exchange: &self.exchange,
                routing_key: &self.queue,
                payload: message.payload(),
                properties,
                mandatory: options.mandatory,
                topic: self.queue.as_str(),
            };
            publish(&self.shared, out).await
        })
    }
}

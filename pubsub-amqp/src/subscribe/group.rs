//! Group subscriptions: a durable queue named after group, exchange and topic, with
//! `x-max-priority`, shared by the members and consumed with manual acks and a
//! prefetch.
//!
//! Each member has a channel of its own: the prefetch is a channel's setting that
//! lapin replays after a reconnect, and a queue declared with other arguments than an
//! existing one (a common mistake) is refused by closing the channel. The broker sends
//! a member at most its prefetch of unacked messages, so that bounds what the ring
//! holds (twice that across a reconnect). Closing the channel when the member goes gives back what it held; a
//! member's releases of dropped deliveries finish first (see [`crate::acker`]).

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Consumer, ErrorKind};
use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Error, Pattern, Result, Subscription};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, RwLock};

use super::{bind, declare, Topics};
use crate::acker::{GroupAcker, Member};
use crate::connection::Shared;
use crate::errors::lapin_error;
use crate::properties::{short, to_message};
use crate::publish::Exchange;
use crate::route::{group_queue, Route};

/// Joins `group` on `pattern` along `route`, holding at most `prefetch` messages.
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    route: &Route,
    pattern: &Pattern,
    group: &str,
    prefetch: u16,
    topics: Topics,
) -> Result<Subscription> {
    let queue = group_queue(group, &route.exchange, pattern.as_str())?;
    let name = short("queue name", &queue)?;
    let live = shared.live().await?;
    let channel = live
        .connection
        .create_channel()
        .await
        .map_err(|e| lapin_error("open a channel", e))?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| lapin_error("set the prefetch", e))?;
    let max_priority = shared.options.max_priority;
    let mut arguments = FieldTable::default();
    if max_priority > 0 {
        arguments.insert(
            "x-max-priority".into(),
            AMQPValue::ShortShortUInt(max_priority),
        );
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    declare(&channel, &queue, options, arguments)
        .await
        .map_err(|error| conflicting_arguments(error, &queue, max_priority))?;
    bind(&channel, &queue, route).await?;
    let consumer = channel
        .basic_consume(
            name.clone(),
            ShortString::default(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| lapin_error(&format!("consume queue {queue:?}"), e))?;

    let runtime = Handle::current();
    let member = Arc::new(Member {
        shared: Arc::clone(shared),
        queue: name,
        default_exchange: Exchange::default_exchange(),
        runtime: runtime.clone(),
        releasing: Arc::default(),
    });
    let (done, closed) = oneshot::channel();
    let closer = Closer {
        channel,
        runtime: runtime.clone(),
        releasing: Arc::clone(&member.releasing),
        done: Some(done),
    };
    // Room for the prefetch twice: deliveries from before a reconnect (whose acks
    // fail; the broker requeued them) may still wait when the broker sends the
    // prefetch again.
    let (sender, receiver) = ring::channel(usize::from(prefetch) * 2);
    runtime.spawn(pump(consumer, sender, topics, member));
    Ok(Subscription::new(receiver)
        .with_guard(closer)
        .with_unsubscribe(|| async move {
            // The guard's task closes the channel; this waits for the broker's word.
            let _ = closed.await;
            Ok(())
        }))
}

/// Moves group deliveries to the ring, each with its acker, until the consumer ends
/// or the subscription is gone.
async fn pump(
    mut consumer: Consumer,
    ring: RingSender<Delivery>,
    topics: Topics,
    member: Arc<Member>,
) {
    while let Some(item) = consumer.next().await {
        let mut delivery = match item {
            Ok(delivery) => delivery,
            Err(error) => {
                // lapin consumes again once the connection is back; the broker kept
                // what was not acked, so nothing is lost and there is nothing to say.
                tracing::debug!(%error, queue = member.queue.as_str(), "group consumer interrupted; recovering");
                continue;
            }
        };
        let incoming = to_message(
            std::mem::take(&mut delivery.data),
            &delivery.properties,
            delivery.redelivered,
        );
        let Some(topic) = topics.of_delivery(&delivery, incoming.topic) else {
            // Not a topic this API can name; no member could read it either.
            tracing::warn!(
                queue = member.queue.as_str(),
                routing_key = delivery.routing_key.as_str(),
                "group message whose routing key is no topic name; rejected"
            );
            let _ = delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await;
            continue;
        };
        let acker = GroupAcker {
            acker: delivery.acker,
            member: Arc::clone(&member),
            topic: topic.clone(),
            payload: incoming.message.payload().clone(),
            properties: delivery.properties,
            attempt: incoming.attempt,
        };
        let delivery = Delivery::new(topic, incoming.message)
            .with_attempt(incoming.attempt)
            .with_acker(acker);
        if ring.push(delivery).is_err() {
            return;
        }
    }
}

/// A group queue that exists with other arguments: say which queue and argument.
fn conflicting_arguments(error: Error, queue: &str, max_priority: u8) -> Error {
    let Error::Broker { message, source } = error else {
        return error;
    };
    let refused = source
        .as_deref()
        .and_then(|s| s.downcast_ref::<lapin::Error>())
        .is_some_and(|e| {
            matches!(e.kind(), ErrorKind::ProtocolError(amqp)
                if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
        });
    if !refused {
        return Error::Broker { message, source };
    }
    let asked = match max_priority {
        0 => "no x-max-priority".to_owned(),
        n => format!("x-max-priority = {n}"),
    };
    Error::Broker {
        message: format!(
            "group queue {queue:?} already exists with other arguments than this \
             subscription asks ({asked}); RabbitMQ keeps a queue's arguments, so join it \
             with the same settings (AmqpBuilder::max_priority) or delete it first. \
             The broker said: {message}"
        ),
        source,
    }
}

/// Closes a member's channel when the subscription goes, once its releases are done:
/// the broker then requeues what the member still held.
struct Closer {
    channel: Channel,
    runtime: Handle,
    releasing: Arc<RwLock<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let channel = self.channel.clone();
        let releasing = Arc::clone(&self.releasing);
        let done = self.done.take();
        self.runtime.spawn(async move {
            let _releases_done = releasing.write().await;
            if channel.status().connected() {
                // A channel already closing answers with an error that means the same.
                let _ = channel.close(200, "unsubscribed".into()).await;
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }
}

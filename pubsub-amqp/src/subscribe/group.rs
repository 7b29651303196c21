//! Group subscriptions: a durable queue named after group, exchange and topic, with
//! `x-max-priority`, shared by the members and consumed with manual acks and a
//! prefetch; or a queue that another system owns ([`QueueSpec`]), declared as its
//! owner does, and shared with the owner's consumers.
//!
//! Each member has a channel of its own: the prefetch is a channel's setting, and a
//! queue declared with other arguments than an existing one (a common mistake) is
//! refused by closing the channel. After a failure the member joins again on a new
//! channel. The broker sends a member at most its prefetch of unacked messages, so
//! that bounds what the ring holds (twice that across a reconnect). Closing the
//! channel when the member goes gives back what it held; a member's releases of
//! dropped deliveries finish first (see [`crate::acker`]).

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Consumer, ErrorKind};
use pubsub_core::ring::{self, RingSender};
use pubsub_core::{Delivery, Error, Pattern, Result, Subscription};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, RwLock};
use tokio::task::JoinHandle;

use super::{bind, declare, resume, Consuming, Topics};
use crate::acker::{GroupAcker, Member};
use crate::connection::{Live, Shared};
use crate::errors::lapin_error;
use crate::lost::Liveness;
use crate::options::QueueSpec;
use crate::properties::{short, to_message};
use crate::publish::Exchange;
use crate::quarantine::{contain, is_unreadable};
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
    let owned = shared.options.owned_queue(group).cloned();
    let (queue, topics) = match &owned {
        // Its owner may bind it to other topics too: where the broker routed a
        // message names it.
        Some(spec) => (spec.name.clone(), Topics::Routed(pattern.clone())),
        None => (
            group_queue(group, &route.exchange, pattern.as_str())?,
            topics,
        ),
    };
    let queue = short("queue name", &queue)?;
    let live = shared.live().await?;
    let join = Join {
        shared: Arc::clone(shared),
        route: route.clone(),
        queue: queue.clone(),
        owned,
        prefetch,
        consuming: Consuming::new(),
    };
    let (consumer, liveness) = join.establish(&live).await?;

    let runtime = Handle::current();
    let member = Arc::new(Member {
        shared: Arc::clone(shared),
        queue,
        default_exchange: Exchange::default_exchange(),
        runtime: runtime.clone(),
        releasing: Arc::default(),
    });
    let (done, closed) = oneshot::channel();
    let closer = Closer {
        consuming: Arc::clone(&join.consuming),
        runtime: runtime.clone(),
        releasing: Arc::clone(&member.releasing),
        done: Some(done),
    };
    // Room for the prefetch twice: deliveries from before a reconnect (whose acks
    // fail; the broker requeued them) may still wait when the broker sends the
    // prefetch again.
    let (sender, receiver) = ring::channel(usize::from(prefetch) * 2);
    let consuming = Arc::clone(&join.consuming);
    consuming.started(runtime.spawn(pump(consumer, liveness, sender, topics, member, join)));
    Ok(Subscription::new(receiver)
        .with_guard(closer)
        .with_unsubscribe(|| async move {
            // The guard's task closes the channel; this waits for the broker's word.
            let _ = closed.await;
            Ok(())
        }))
}

/// What joining the group's queue takes, the first time and after a failure.
struct Join {
    shared: Arc<Shared>,
    route: Route,
    queue: ShortString,
    /// The queue as another system declares it, if it owns it.
    owned: Option<QueueSpec>,
    prefetch: u16,
    consuming: Arc<Consuming>,
}

impl Join {
    /// The queue's arguments, and how to name them in an error.
    fn arguments(&self) -> Result<(FieldTable, String)> {
        if let Some(owned) = &self.owned {
            let asked = owned
                .arguments
                .iter()
                .map(|(key, value)| format!("{key} = {value}"))
                .collect::<Vec<_>>();
            let asked = match asked.is_empty() {
                true => "no arguments".to_owned(),
                false => asked.join(", "),
            };
            return Ok((
                owned.argument_table()?,
                format!("durable = {}, {asked}", owned.durable),
            ));
        }
        let options = &self.shared.options;
        let mut arguments = FieldTable::default();
        let mut asked = Vec::new();
        if options.quorum {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            asked.push("x-queue-type = quorum".to_owned());
            if let Some(limit) = options.delivery_limit {
                arguments.insert("x-delivery-limit".into(), AMQPValue::LongUInt(limit));
                asked.push(format!("x-delivery-limit = {limit}"));
            }
        } else if options.max_priority > 0 {
            arguments.insert(
                "x-max-priority".into(),
                AMQPValue::ShortShortUInt(options.max_priority),
            );
            asked.push(format!("x-max-priority = {}", options.max_priority));
        } else {
            asked.push("no x-max-priority".to_owned());
        }
        if let Some(topic) = &options.dead_letter_topic {
            let exchange = match self.route.kind {
                lapin::ExchangeKind::Fanout => topic.as_str(),
                _ => self.route.exchange.as_str(),
            };
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(exchange.into()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(topic.as_str().into()),
            );
            asked.push(format!("dead letters to {topic:?}"));
        }
        Ok((arguments, asked.join(", ")))
    }

    /// A channel of the member's own with its prefetch, the queue declared and
    /// bound, and a consumer on it; and the connection's liveness, which its
    /// deliveries' acks wait on.
    async fn establish(&self, live: &Live) -> Result<(Consumer, Liveness)> {
        let what = format!("join group queue {:?}", self.queue.as_str());
        let consumer = live.liveness.unless_lost(&what, self.consume_on(live));
        Ok((consumer.await?, live.liveness.clone()))
    }

    async fn consume_on(&self, live: &Live) -> Result<Consumer> {
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(|e| lapin_error("open a channel", e))?;
        self.consuming.on(channel.clone(), live);
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| lapin_error("set the prefetch", e))?;
        let options = QueueDeclareOptions {
            durable: self.owned.as_ref().is_none_or(|q| q.durable),
            exclusive: self.owned.as_ref().is_some_and(|q| q.exclusive),
            passive: self.owned.as_ref().is_some_and(|q| q.passive),
            ..QueueDeclareOptions::default()
        };
        let (arguments, asked) = self.arguments()?;
        declare(&channel, &self.queue, options, arguments)
            .await
            .map_err(|error| self.refused(error, &asked))?;
        bind(&channel, &self.queue, &self.route).await?;
        let consumer = channel
            .basic_consume(
                self.queue.clone(),
                ShortString::default(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| lapin_error(&format!("consume queue {:?}", self.queue.as_str()), e))?;
        self.consuming.consumes(consumer.tag());
        Ok(consumer)
    }
}

/// Moves group deliveries to the ring, each with its acker, joining the queue again
/// whenever the consumer ends, until the subscription is gone (which aborts this
/// task) or can no longer be made. The broker keeps what was not acked, so a member
/// that consumes again has missed nothing and there is nothing to signal.
async fn pump(
    mut consumer: Consumer,
    mut liveness: Liveness,
    ring: RingSender<Delivery>,
    topics: Topics,
    member: Arc<Member>,
    join: Join,
) {
    loop {
        // A consumer lapin leaves open on a lost connection ends here all the same;
        // one wait for the loss per connection, not one per delivery.
        let lost = liveness.lost();
        tokio::pin!(lost);
        let unreadable = loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                () = &mut lost => break liveness.unreadable(),
            };
            match next {
                Some(Ok(delivery)) => {
                    if !deliver(delivery, &liveness, &ring, &topics, &member).await {
                        return;
                    }
                }
                Some(Err(error)) => break is_unreadable(&error),
                None => break false,
            }
        };
        // Else the message that lapin could not read comes back to this member, or
        // another, and ends its connection again.
        if unreadable {
            contain(&join.shared, join.queue.as_str(), join.prefetch, &ring).await;
        }
        if join.consuming.is_stopped() {
            return;
        }
        let what = format!("group queue {:?}", join.queue.as_str());
        // Boxed: joining again is a large future, and an idle member's pump would
        // carry its room all the time.
        let Some(resumed) = Box::pin(resume(&join.shared, &what, |live| {
            let join = &join;
            async move { join.establish(&live).await }
        }))
        .await
        else {
            ring.close();
            return;
        };
        (consumer, liveness) = resumed.0;
    }
}

/// Hands one delivery to the ring with its acker; `false` once the ring is gone.
async fn deliver(
    mut delivery: lapin::message::Delivery,
    liveness: &Liveness,
    ring: &RingSender<Delivery>,
    topics: &Topics,
    member: &Arc<Member>,
) -> bool {
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
        let reject = delivery.acker.reject(BasicRejectOptions { requeue: false });
        let _ = liveness
            .unless_lost("reject", async {
                reject.await.map_err(|e| lapin_error("reject", e))
            })
            .await;
        return true;
    };
    let acker = GroupAcker {
        acker: delivery.acker,
        liveness: liveness.clone(),
        member: Arc::clone(member),
        topic: topic.clone(),
        payload: incoming.message.payload().clone(),
        properties: delivery.properties,
        attempt: incoming.attempt,
    };
    let delivery = Delivery::new(topic, incoming.message)
        .with_attempt(incoming.attempt)
        .with_acker(acker);
    ring.push(delivery).is_ok()
}

impl Join {
    /// A declare the broker refused: a queue that exists with other arguments, or
    /// an owned queue joined passively that does not exist; say which queue, what
    /// was asked and what to do.
    fn refused(&self, error: Error, asked: &str) -> Error {
        let Error::Broker { message, source } = error else {
            return error;
        };
        let soft = source
            .as_deref()
            .and_then(|s| s.downcast_ref::<lapin::Error>())
            .and_then(|e| match e.kind() {
                ErrorKind::ProtocolError(amqp) => match amqp.kind() {
                    AMQPErrorKind::Soft(soft) => Some(soft.clone()),
                    AMQPErrorKind::Hard(_) => None,
                },
                _ => None,
            });
        let queue = self.queue.as_str();
        let (owned, advice) = match &self.owned {
            Some(_) => (
                "queue",
                "declare it with its owner's flags and arguments (QueueSpec::durable, \
                 QueueSpec::argument), or join it as it is with QueueSpec::passive",
            ),
            None => (
                "group queue",
                "join it with the same settings (AmqpBuilder::max_priority, \
                 quorum_queues, delivery_limit, dead_letter_topic) or delete it first",
            ),
        };
        let message = match soft {
            Some(AMQPSoftError::PRECONDITIONFAILED) => format!(
                "{owned} {queue:?} already exists with other flags or arguments than \
                 this subscription asks ({asked}); RabbitMQ keeps a queue's arguments, \
                 so {advice}. The broker said: {message}"
            ),
            Some(AMQPSoftError::NOTFOUND) => format!(
                "queue {queue:?} does not exist, and QueueSpec::passive only joins a \
                 queue that its owner declared: start the owner first, or declare it \
                 with QueueSpec::declare and the owner's arguments. \
                 The broker said: {message}"
            ),
            _ => message,
        };
        Error::Broker { message, source }
    }
}

/// Closes a member's channel when the subscription goes, once its releases are done:
/// the broker then requeues what the member still held.
struct Closer {
    consuming: Arc<Consuming>,
    runtime: Handle,
    releasing: Arc<RwLock<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let super::Stopped { channel, tag, pump } = self.consuming.stop_for_cancel();
        let releasing = Arc::clone(&self.releasing);
        let done = self.done.take();
        self.runtime.spawn(async move {
            let _releases_done = releasing.write().await;
            let Some((channel, liveness)) = channel.filter(|(c, _)| c.status().connected()) else {
                pump.inspect(JoinHandle::abort);
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            };
            let close = async {
                // Cancelled, and its pump ended, before the channel closes: a
                // consumer lapin still holds as active cancels itself when dropped,
                // and a cancel that reaches the broker after the close is a
                // connection error (CHANNEL_ERROR, "expected 'channel.open'") that
                // takes every other subscription of the connection with it.
                if let Some(tag) = tag {
                    let _ = channel
                        .basic_cancel(tag, BasicCancelOptions::default())
                        .await;
                }
                if let Some(pump) = pump {
                    pump.abort();
                    let _ = pump.await;
                }
                let closed = channel.close(200, "unsubscribed".into()).await;
                closed.map_err(|e| lapin_error("close the channel", e))
            };
            // A channel already closing answers with an error that means the same.
            let _ = liveness.unless_lost("close the channel", close).await;
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }
}

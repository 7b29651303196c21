//! Subscriptions: what broadcast and group subscriptions share (where a delivery's
//! topic comes from, declaring and binding a queue), and the two kinds.
//!
//! Every subscription hands its deliveries to the subscriber through one
//! [`ring`](pubsub_core::ring), filled by a small task per subscription that reads
//! lapin's consumer. When the consumer ends without the subscriber going, that task
//! declares, binds and consumes again on the open connection ([`resume`]), which is
//! a new one after the old failed.

mod acks;
mod broadcast;
mod dropped;
mod group;

pub(crate) use broadcast::SharedChannel;
pub(crate) use dropped::{DeadLetters, Rings};

use std::future::Future;
use std::sync::Arc;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::Channel;
use pubsub_core::{Error, Pattern, Result, SubscribeOptions, Subscription, TopicName};
use tokio::task::JoinHandle;

use crate::connection::{reconnect_backoff, Live, Shared};
use crate::errors::lapin_error;
use crate::lost::Liveness;
use crate::properties::short;
use crate::publish::Exchange;
use crate::route::Route;

/// Subscribes to `pattern` along `route`.
pub(crate) async fn subscribe(
    shared: &Arc<Shared>,
    route: Route,
    pattern: &Pattern,
    options: SubscribeOptions,
) -> Result<Subscription> {
    // A broker not there yet is waited for up to the connect timeout (a lazy backend
    // started before its broker), then the subscribe says why it could not.
    shared.live_within_timeout().await?;
    // Declared through the publishing channel, once per exchange: a refused declare
    // closes that channel, which is replaced, and no subscription's.
    let exchange = Exchange::new(short("exchange name", &route.exchange)?, route.kind.clone());
    shared.publisher(&exchange, false).await?;
    let topics = Topics::of(pattern);
    match options.group {
        None => {
            let buffer = options.buffer.unwrap_or(shared.options.buffer).max(1);
            let buffer = u16::try_from(buffer).unwrap_or(u16::MAX);
            broadcast::subscribe(shared, &route, buffer, topics).await
        }
        Some(group) => {
            let prefetch = options.prefetch.unwrap_or(shared.options.prefetch).max(1);
            group::subscribe(shared, &route, pattern, &group, prefetch, topics).await
        }
    }
}

/// Runs `establish` on the open connection (waiting for one while the broker cannot
/// be reached) until it succeeds, and returns what it made with the connection it made
/// it on. `None` when it never can: the backend was closed, or the broker refuses the
/// credentials.
pub(crate) async fn resume<T, F, Fut>(
    shared: &Shared,
    what: &str,
    mut establish: F,
) -> Option<(T, Arc<Live>)>
where
    F: FnMut(Arc<Live>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = reconnect_backoff();
    loop {
        let live = match shared.live_eventually().await {
            Ok(live) => live,
            Err(Error::Closed) => return None,
            Err(error) => {
                tracing::warn!(%error, "{what} cannot be consumed again; its subscription ends");
                return None;
            }
        };
        match establish(Arc::clone(&live)).await {
            Ok(established) => return Some((established, live)),
            Err(error) => {
                tracing::warn!(%error, "{what} could not be consumed again; trying again");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Where a subscription consumes now, shared by its pump (which consumes again after
/// a failure) and its guard (which stops the pump and cleans up when it goes).
#[derive(Default)]
struct Consuming {
    state: std::sync::Mutex<ConsumingState>,
}

/// What a stopped subscription leaves to clean up.
struct Stopped {
    channel: Option<(Channel, Liveness)>,
    tag: Option<ShortString>,
    /// A pump still consuming, to end once its consumer is cancelled.
    pump: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct ConsumingState {
    /// The channel, and the connection's liveness for what is done on it.
    channel: Option<(Channel, Liveness)>,
    tag: Option<ShortString>,
    pump: Option<JoinHandle<()>>,
    stopped: bool,
}

impl Consuming {
    fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConsumingState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Now on `channel` of `live`, not consuming yet.
    fn on(&self, channel: Channel, live: &Live) {
        let mut state = self.lock();
        state.channel = Some((channel, live.liveness.clone()));
        state.tag = None;
    }

    fn consumes(&self, tag: ShortString) {
        self.lock().tag = Some(tag);
    }

    /// The pump task, aborted when the subscription goes.
    fn started(&self, pump: JoinHandle<()>) {
        let mut state = self.lock();
        if state.stopped {
            pump.abort();
        }
        state.pump = Some(pump);
    }

    /// Stops the subscription but leaves a consuming pump to end by itself once its
    /// consumer is cancelled: the channel, the consumer tag and that pump. A pump
    /// that consumes nothing yet is aborted.
    fn stop_for_cancel(&self) -> Stopped {
        let mut state = self.lock();
        state.stopped = true;
        let mut pump = state.pump.take();
        if state.tag.is_none() {
            pump.take().inspect(JoinHandle::abort);
        }
        Stopped {
            channel: state.channel.take(),
            tag: state.tag.take(),
            pump,
        }
    }

    /// Whether the subscription is gone: a pump then does not consume again.
    fn is_stopped(&self) -> bool {
        self.lock().stopped
    }
}

/// How a delivery's topic is found: the subscription's own name, or for a pattern
/// the routing key (the exchange's name for a foreign publish to a fanout exchange
/// with an empty key). Where the broker routed a message is its topic: a header
/// cannot say otherwise.
enum Topics {
    Fixed(TopicName),
    Routed(Pattern),
}

impl Topics {
    fn of(pattern: &Pattern) -> Self {
        match pattern.as_name() {
            Some(name) => Topics::Fixed(name),
            None => Topics::Routed(pattern.clone()),
        }
    }

    /// The topic of `delivery`; `kept` is the topic header a requeued copy carries.
    /// `None` (logged) for a delivery that names no topic of this subscription.
    ///
    /// Any publisher can set that header, so it is believed only where this crate's
    /// copies come from, the default exchange (whose routing key is the group
    /// queue's name, no topic), and only for a topic the subscription takes.
    fn of_delivery(
        &self,
        delivery: &lapin::message::Delivery,
        kept: Option<String>,
    ) -> Option<TopicName> {
        let copied = kept
            .filter(|_| delivery.exchange.as_str().is_empty())
            .and_then(|kept| TopicName::new(kept).ok())
            .filter(|topic| self.takes(topic));
        if copied.is_some() {
            return copied;
        }
        let routed = match self {
            Topics::Fixed(name) => return Some(name.clone()),
            Topics::Routed(_) => match delivery.routing_key.as_str() {
                "" => delivery.exchange.as_str(),
                key => key,
            },
        };
        TopicName::new(routed)
            .inspect_err(|error| {
                tracing::debug!(routing_key = delivery.routing_key.as_str(), %error, "AMQP message whose topic is no topic name; skipped");
            })
            .ok()
    }

    fn takes(&self, topic: &TopicName) -> bool {
        match self {
            Topics::Fixed(name) => name == topic,
            Topics::Routed(pattern) => pattern.matches(topic.as_str()),
        }
    }
}

/// Declares `queue` on `channel`.
async fn declare(
    channel: &Channel,
    queue: &ShortString,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> Result<()> {
    channel
        .queue_declare(queue.clone(), options, arguments)
        .await
        .map(drop)
        .map_err(|e| lapin_error(&format!("declare queue {:?}", queue.as_str()), e))
}

/// Binds `queue` along `route` on `channel`.
async fn bind(channel: &Channel, queue: &ShortString, route: &Route) -> Result<()> {
    channel
        .queue_bind(
            queue.clone(),
            short("exchange name", &route.exchange)?,
            short("binding key", &route.binding_key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            lapin_error(
                &format!("bind queue {:?} to {:?}", queue.as_str(), route.exchange),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(exchange: &str, routing_key: &str) -> lapin::message::Delivery {
        lapin::message::Delivery::mock(1, exchange.into(), routing_key.into(), false, Vec::new())
    }

    #[test]
    fn a_name_subscription_names_its_deliveries_itself() {
        let topics = Topics::of(&Pattern::parse("message:stored").unwrap());
        // A foreign publish to the fanout exchange, with any routing key.
        let topic = topics.of_delivery(&delivery("message:stored", "whatever key"), None);
        assert_eq!(topic.unwrap(), "message:stored");
    }

    #[test]
    fn a_pattern_subscription_reads_the_routing_key_or_the_exchange() {
        let topics = Topics::of(&Pattern::parse("task.*").unwrap());
        let routed = topics.of_delivery(&delivery("pubsub", "task.42"), None);
        assert_eq!(routed.unwrap(), "task.42");
        let fanout = topics.of_delivery(&delivery("task.7", ""), None);
        assert_eq!(fanout.unwrap(), "task.7");
        assert!(topics
            .of_delivery(&delivery("pubsub", "has space"), None)
            .is_none());
    }

    #[test]
    fn a_requeued_copy_keeps_its_topic() {
        let topics = Topics::of(&Pattern::parse("task.*").unwrap());
        // Requeued through the default exchange: the routing key is the queue's name.
        let kept = Some("task.9".to_owned());
        let topic = topics.of_delivery(&delivery("", "g@pubsub/task.*"), kept);
        assert_eq!(topic.unwrap(), "task.9");
    }

    #[test]
    fn a_topic_header_cannot_rename_a_routed_delivery() {
        let topics = Topics::of(&Pattern::parse("orders.*").unwrap());
        let forged = || Some("admin.payroll.deleted".to_owned());
        // Routed by the exchange: the routing key is the topic, whatever the header.
        let routed = topics.of_delivery(&delivery("pubsub", "orders.7"), forged());
        assert_eq!(routed.unwrap(), "orders.7");
        // Sent to the group queue through the default exchange: a topic outside the
        // subscription is not believed, and the queue's name is no topic.
        let copied = topics.of_delivery(&delivery("", "g@pubsub/orders.*"), forged());
        assert!(copied.is_none());
        // Nor for a subscription to one name.
        let exact = Topics::of(&Pattern::parse("orders.7").unwrap());
        let renamed = exact.of_delivery(&delivery("", "g@pubsub/orders.7"), forged());
        assert_eq!(renamed.unwrap(), "orders.7");
    }
}

//! Subscriptions: what broadcast and group subscriptions share (where a delivery's
//! topic comes from, declaring and binding a queue), and the two kinds.
//!
//! Every subscription hands its deliveries to the subscriber through one
//! [`ring`](pubsub_core::ring), filled by a small task per subscription that reads
//! lapin's consumer; lapin's own recovery replays queues, bindings and consumers after
//! a reconnect.

mod broadcast;
mod group;

use std::sync::Arc;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use pubsub_core::{Pattern, Result, SubscribeOptions, Subscription, TopicName};

use crate::connection::Shared;
use crate::errors::lapin_error;
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
    // Declared through the publishing channel, once per exchange: a refused declare
    // closes that channel, which is replaced, and no subscription's.
    let exchange = Exchange::new(short("exchange name", &route.exchange)?, route.kind.clone());
    shared.publisher(&exchange).await?;
    let topics = Topics::of(pattern);
    match options.group {
        None => {
            let buffer = options.buffer.unwrap_or(shared.options.buffer).max(1);
            broadcast::subscribe(shared, &route, buffer, topics).await
        }
        Some(group) => {
            let prefetch = options.prefetch.unwrap_or(shared.options.prefetch).max(1);
            group::subscribe(shared, &route, pattern, &group, prefetch, topics).await
        }
    }
}

/// How a delivery's topic is found: the subscription's own name, or for a pattern
/// the routing key (the exchange's name for a foreign publish to a fanout exchange
/// with an empty key).
enum Topics {
    Fixed(TopicName),
    Routed,
}

impl Topics {
    fn of(pattern: &Pattern) -> Self {
        match pattern.as_name() {
            Some(name) => Topics::Fixed(name),
            None => Topics::Routed,
        }
    }

    /// The topic of `delivery`; `kept` is the topic a requeued copy carries. `None`
    /// (logged) for a routing key that is no topic name.
    fn of_delivery(
        &self,
        delivery: &lapin::message::Delivery,
        kept: Option<String>,
    ) -> Option<TopicName> {
        let parsed = match (kept, self) {
            (Some(kept), _) => TopicName::new(kept),
            (None, Topics::Fixed(name)) => return Some(name.clone()),
            (None, Topics::Routed) => TopicName::new(match delivery.routing_key.as_str() {
                "" => delivery.exchange.as_str(),
                key => key,
            }),
        };
        parsed
            .inspect_err(|error| {
                tracing::debug!(routing_key = delivery.routing_key.as_str(), %error, "AMQP message whose topic is no topic name; skipped");
            })
            .ok()
    }
}

/// Declares `queue` on `channel`.
async fn declare(
    channel: &Channel,
    queue: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> Result<()> {
    channel
        .queue_declare(short("queue name", queue)?, options, arguments)
        .await
        .map(drop)
        .map_err(|e| lapin_error(&format!("declare queue {queue:?}"), e))
}

/// Binds `queue` along `route` on `channel`.
async fn bind(channel: &Channel, queue: &str, route: &Route) -> Result<()> {
    channel
        .queue_bind(
            short("queue name", queue)?,
            short("exchange name", &route.exchange)?,
            short("binding key", &route.binding_key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| lapin_error(&format!("bind queue {queue:?} to {:?}", route.exchange), e))
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
}

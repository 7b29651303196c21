//! Where a topic goes: which exchange, of which kind, with which keys.

use lapin::ExchangeKind;
use pubsub_core::{Error, Pattern, Result};

use crate::options::Routing;

/// The exchange and keys for one topic (or pattern).
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) exchange: String,
    pub(crate) kind: ExchangeKind,
    /// The routing key to publish with: the topic on a topic exchange; empty on a
    /// topic's fanout exchange, as ESN publishes (receivers learn the topic from
    /// the exchange's name).
    pub(crate) routing_key: String,
    /// The key to bind a queue with.
    pub(crate) binding_key: String,
}

/// The route of `pattern` (a concrete name when publishing) on `exchange` under
/// `routing`.
pub(crate) fn route(exchange: &str, routing: Routing, pattern: &Pattern) -> Result<Route> {
    let topic = pattern.as_str();
    Ok(match routing {
        Routing::Topic => Route {
            exchange: exchange.to_owned(),
            kind: ExchangeKind::Topic,
            routing_key: topic.to_owned(),
            binding_key: topic.to_owned(),
        },
        Routing::Headers => Route {
            exchange: exchange.to_owned(),
            kind: ExchangeKind::Headers,
            routing_key: topic.to_owned(),
            binding_key: topic.to_owned(),
        },
        Routing::FanoutPerTopic => {
            if pattern.is_wildcard() {
                return Err(Error::Unsupported(format!(
                    "pattern {topic:?} in fanout-per-topic mode: each topic is its own \
                     exchange there; subscribe to each topic, or use the topic-exchange \
                     mode (the default) for patterns"
                )));
            }
            Route {
                exchange: topic.to_owned(),
                kind: ExchangeKind::Fanout,
                routing_key: String::new(),
                binding_key: String::new(),
            }
        }
    })
}

/// The name of the durable queue of `group` for `topic` (a name or pattern) on
/// `exchange`: every member of the group consumes it, and it outlives them. For a
/// program that cleans up what it declared, or inspects it with `rabbitmqctl`.
///
/// ```
/// let queue = pubsub_amqp::group_queue("git-agents", "pubsub", "git.*.*").unwrap();
/// assert_eq!(queue, "git-agents@pubsub/git.*.*");
/// ```
pub fn group_queue(group: &str, exchange: &str, topic: &str) -> Result<String> {
    let name = format!("{group}@{exchange}/{topic}");
    if name.len() > 255 {
        return Err(Error::invalid_topic(
            topic,
            "group, exchange and topic together make an AMQP queue name over 255 bytes",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_refuses_patterns() {
        let pattern = Pattern::parse("a.*").unwrap();
        let err = route("x", Routing::FanoutPerTopic, &pattern).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        let name = Pattern::parse("message:stored").unwrap();
        let r = route("x", Routing::FanoutPerTopic, &name).unwrap();
        assert_eq!(
            (
                r.exchange.as_str(),
                r.routing_key.as_str(),
                r.binding_key.as_str()
            ),
            ("message:stored", "", "")
        );
    }

    #[test]
    fn group_queue_names_are_bounded() {
        assert_eq!(group_queue("g", "pubsub", "a.b").unwrap(), "g@pubsub/a.b");
        assert!(group_queue(&"g".repeat(200), "pubsub", &"t".repeat(60)).is_err());
    }
}

//! Publishing with publisher confirms, across a reconnect, and the per-topic
//! publishers that hold what a publish needs, built once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::Confirmation;
use lapin::{BasicProperties, ExchangeKind};
use pubsub_core::backend::{PublishOptions, Publisher, Publishing};
use pubsub_core::{Error, Message, Result, TopicName};

use crate::connection::{reconnect_backoff, Lease, Shared};
use crate::errors::lapin_error;
use crate::inbox;
use crate::properties::{short, to_properties};
use crate::route::Route;

/// An exchange to publish to, and on which publishing channel it was last declared,
/// so that a publish checks one number instead of looking the name up.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) name: ShortString,
    pub(crate) kind: ExchangeKind,
    /// The generation of the publishing channel it was declared on; 0 for none.
    declared_on: AtomicU64,
}

impl Exchange {
    pub(crate) fn new(name: ShortString, kind: ExchangeKind) -> Self {
        Exchange {
            name,
            kind,
            declared_on: AtomicU64::new(0),
        }
    }

    /// The broker's default exchange (routing key = queue name): never declared.
    pub(crate) fn default_exchange() -> Self {
        Self::new(ShortString::default(), ExchangeKind::Direct)
    }

    /// Whether it needs no declaring on the channel of `generation`.
    pub(crate) fn ready_on(&self, generation: u64) -> bool {
        self.name.as_str().is_empty() || self.declared_on.load(Ordering::Acquire) == generation
    }

    pub(crate) fn declared_on(&self, generation: u64) {
        self.declared_on.store(generation, Ordering::Release);
    }
}

/// One publish: where it goes and what it carries.
pub(crate) struct Outgoing<'a> {
    pub(crate) exchange: &'a Exchange,
    pub(crate) routing_key: &'a ShortString,
    pub(crate) payload: &'a [u8],
    pub(crate) properties: BasicProperties,
    /// Report an unroutable message as [`Error::NoResponders`].
    pub(crate) mandatory: bool,
    /// The topic, for errors.
    pub(crate) topic: &'a str,
}

/// The publisher of one topic: its exchange and routing key as AMQP strings.
#[derive(Debug)]
pub(crate) struct TopicPublisher {
    shared: Arc<Shared>,
    exchange: Exchange,
    routing_key: ShortString,
    topic: TopicName,
}

impl TopicPublisher {
    pub(crate) fn new(shared: Arc<Shared>, topic: &TopicName, route: Route) -> Result<Self> {
        Ok(TopicPublisher {
            exchange: Exchange::new(short("exchange name", &route.exchange)?, route.kind),
            routing_key: short("routing key", &route.routing_key)?,
            topic: topic.clone(),
            shared,
        })
    }
}

impl Publisher for TopicPublisher {
    fn publish(&self, message: Message, options: PublishOptions) -> Publishing<'_> {
        if self.shared.options.quorum && message.priority() > 0 {
            return Publishing::done(Err(Error::Unsupported(format!(
                "a priority on {:?}: group queues are quorum queues here \
                 (AmqpBuilder::quorum_queues), which RabbitMQ delivers in order, without \
                 priorities; publish without one, or use classic queues",
                self.topic.as_str()
            ))));
        }
        let properties = match to_properties(&message, self.shared.options.persistent) {
            Ok(properties) => properties,
            Err(error) => return Publishing::done(Err(error)),
        };
        let via = match inbox::is_request(&message) {
            true => Via::Inbox,
            false => Via::Publishing,
        };
        Publishing::pending(async move {
            let out = Outgoing {
                exchange: &self.exchange,
                routing_key: &self.routing_key,
                payload: message.payload(),
                properties,
                mandatory: options.mandatory,
                topic: &self.topic,
            };
            publish_via(&self.shared, out, via).await
        })
    }
}

/// The channel a publish is sent on.
#[derive(Clone, Copy)]
enum Via {
    /// The connection's publishing channels.
    Publishing,
    /// The channel consuming direct replies, as a request with direct reply-to needs
    /// (see [`crate::inbox`]).
    Inbox,
}

/// Publishes on the publishing channels: see [`publish_via`].
pub(crate) async fn publish(shared: &Shared, out: Outgoing<'_>) -> Result<()> {
    publish_via(shared, out, Via::Publishing).await
}

/// Publishes and, with confirms on (or when mandatory), waits for the broker's
/// confirm. When the connection fails, the publish waits for a new one (to any of the
/// broker addresses) and is sent again, up to the publish timeout: a message whose
/// confirm was lost with the connection may so arrive twice, never zero times.
async fn publish_via(shared: &Shared, out: Outgoing<'_>, via: Via) -> Result<()> {
    let timeout = shared.options.publish_timeout;
    let last_failure = std::sync::Mutex::new(None);
    match tokio::time::timeout(timeout, send(shared, &out, via, &last_failure)).await {
        Ok(result) => result,
        Err(_) => {
            let why = last_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_else(|| format!("the broker at {} is overloaded", shared.display));
            Err(Error::Connection {
                message: format!(
                    "publish to {:?} was not confirmed within {timeout:?}: {why}",
                    out.topic
                ),
                source: None,
            })
        }
    }
}

async fn send(
    shared: &Shared,
    out: &Outgoing<'_>,
    via: Via,
    last_failure: &std::sync::Mutex<Option<String>>,
) -> Result<()> {
    let options = BasicPublishOptions {
        mandatory: out.mandatory,
        ..BasicPublishOptions::default()
    };
    let wait_for_confirm = shared.options.confirms || out.mandatory;
    let mut backoff = reconnect_backoff();
    // Remembers why, for the timeout's message, and says how long to wait.
    let mut failed = |message: String| {
        *last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message);
        backoff.next_delay()
    };
    loop {
        let channel = match via {
            Via::Publishing => shared.publisher(out.exchange, wait_for_confirm).await,
            Via::Inbox => shared
                .inboxes
                .channel(shared, out.exchange)
                .await
                .map(Lease::unwindowed),
        };
        let channel = match channel {
            Ok(channel) => channel,
            // The broker cannot be reached now: try again until the timeout.
            Err(Error::Connection { message, .. }) if !shared.is_closed() => {
                tokio::time::sleep(failed(message)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let published = channel
            .basic_publish(
                out.exchange.name.clone(),
                out.routing_key.clone(),
                options,
                out.payload,
                out.properties.clone(),
            )
            .await;
        let error = match published {
            Ok(_) if !wait_for_confirm => return Ok(()),
            Ok(confirm) => match confirm.await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => return Ok(()),
                Ok(Confirmation::Ack(Some(_))) => {
                    return Err(Error::NoResponders {
                        topic: out.topic.to_owned(),
                    })
                }
                Ok(Confirmation::Nack(_)) => {
                    return Err(Error::Broker {
                        message: format!(
                            "the broker refused the message to {:?} (publisher nack)",
                            out.topic
                        ),
                        source: None,
                    })
                }
                Err(error) => error,
            },
            Err(error) => error,
        };
        // A soft error closed only the channel: the broker refused this publish.
        // Anything else lost the channel or the connection with the message: the
        // next round replaces them and publishes again.
        if error.is_amqp_soft_error() || shared.is_closed() {
            return Err(lapin_error(&format!("publish to {:?}", out.topic), error));
        }
        tracing::debug!(topic = out.topic, %error, "publish lost with its channel; sending again");
        tokio::time::sleep(failed(format!("{error}"))).await;
    }
}

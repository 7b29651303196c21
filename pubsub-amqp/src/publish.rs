//! Publishing with publisher confirms, across a reconnect.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::Confirmation;
use lapin::{BasicProperties, ExchangeKind};
use pubsub_core::{Error, Result};

use crate::connection::Shared;
use crate::errors::lapin_error;
use crate::properties::short;

/// One publish: where it goes and what it carries.
pub(crate) struct Outgoing<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) kind: ExchangeKind,
    pub(crate) routing_key: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) properties: BasicProperties,
    /// Report an unroutable message as [`Error::NoResponders`].
    pub(crate) mandatory: bool,
    /// The topic, for errors.
    pub(crate) topic: &'a str,
}

/// Publishes and, with confirms on (or when mandatory), waits for the broker's
/// confirm. While lapin recovers the connection the publish waits and is sent again
/// once it is back, up to the publish timeout: a message whose confirm was lost with
/// the connection may so arrive twice, never zero times.
pub(crate) async fn publish(shared: &Shared, out: Outgoing<'_>) -> Result<()> {
    let timeout = shared.options.publish_timeout;
    tokio::time::timeout(timeout, send(shared, &out))
        .await
        .map_err(|_| Error::Connection {
            message: format!(
                "publish to {:?} was not confirmed within {timeout:?}: the broker at {} is \
                 unreachable or overloaded",
                out.topic, shared.display
            ),
            source: None,
        })?
}

async fn send(shared: &Shared, out: &Outgoing<'_>) -> Result<()> {
    let exchange = short("exchange name", out.exchange)?;
    let routing_key = short("routing key", out.routing_key)?;
    let options = BasicPublishOptions {
        mandatory: out.mandatory,
        ..BasicPublishOptions::default()
    };
    let wait_for_confirm = shared.options.confirms || out.mandatory;
    loop {
        let channel = match shared.publisher(out.exchange, out.kind.clone()).await {
            Ok(channel) => channel,
            // Down, or between states while lapin recovers: look again shortly.
            Err(Error::Connection { .. }) if !shared.is_closed() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let published = channel
            .basic_publish(
                exchange.clone(),
                routing_key.clone(),
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
        // Anything else lapin recovers from: wait for it and publish again.
        if !error.is_amqp_soft_error() && error.can_be_recovered() && !shared.is_closed() {
            tracing::debug!(topic = out.topic, %error, "publish waits for the connection to recover");
            if channel.wait_for_recovery(error).await.is_err() {
                // Nothing to wait on from this error (the connection is between
                // states): look again shortly.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        }
        return Err(lapin_error(&format!("publish to {:?}", out.topic), error));
    }
}

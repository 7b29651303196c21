//! `amqp://`: RabbitMQ; several nodes of a cluster as `amqp://u:p@node1:5672,node2:5672/vhost`,
//! and `cluster=true` for quorum-queue groups.

use pubsub_amqp::AmqpBackend;
use pubsub_core::{Error, PubSub, Result};

use crate::options::Options;

/// The query keys of lapin's URLs (amq-protocol-uri).
const CLIENT_KEYS: &[&str] = &[
    "heartbeat",
    "connection_timeout",
    "channel_max",
    "frame_max",
    "auth_mechanism",
];

pub(crate) async fn connect(url: &str) -> Result<PubSub> {
    let options = Options::take(url, CLIENT_KEYS)?;
    if options.streams {
        return Err(Error::InvalidUrl(
            "`mode` is an option of redis:// URLs (Streams), not of amqp:// ones".into(),
        ));
    }
    let mut builder = AmqpBackend::builder(&options.url);
    if options.routing_fanout {
        builder = builder.fanout_per_topic();
    }
    if options.cluster {
        builder = builder.cluster();
    }
    if let Some(exchange) = options.exchange {
        builder = builder.exchange(exchange);
    }
    if let Some(timeout) = options.connect_timeout {
        let timeout = humantime::parse_duration(&timeout)
            .map_err(|e| Error::InvalidUrl(format!("connect_timeout={timeout}: {e}")))?;
        builder = builder.connect_timeout(timeout);
    }
    let backend = if options.lazy {
        builder.connect_lazy()?
    } else {
        builder.connect().await?
    };
    Ok(backend.into())
}

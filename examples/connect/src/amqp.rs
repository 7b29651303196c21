//! `amqp://`: RabbitMQ.

use pubsub_amqp::AmqpBackend;
use pubsub_core::{Error, PubSub, Result};

use crate::options::Options;

pub(crate) async fn connect(url: &str) -> Result<PubSub> {
    let options = Options::take(url)?;
    let mut builder = AmqpBackend::builder(&options.url);
    if options.routing_fanout {
        builder = builder.fanout_per_topic();
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

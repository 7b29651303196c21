//! `redis://`: Redis PubSub.

use pubsub_core::{Error, PubSub, Result};
use pubsub_redis::RedisBackend;

use crate::options::Options;

pub(crate) async fn connect(url: &str) -> Result<PubSub> {
    let options = Options::take(url)?;
    if let Some(option) = options.amqp_only() {
        return Err(Error::InvalidUrl(format!(
            "`{option}` is an option of amqp:// URLs, not of redis:// ones"
        )));
    }
    let backend = if options.lazy {
        RedisBackend::connect_lazy(&options.url)?
    } else {
        RedisBackend::connect(&options.url).await?
    };
    Ok(backend.into())
}

//! `redis://`: Redis PubSub, or Streams with `?mode=streams`; several comma-separated
//! hosts (`redis://h1:7000,h2:7001/`) are the seeds of a Redis Cluster.

use pubsub_core::{Error, PubSub, Result};
use pubsub_redis::RedisBackend;

use crate::options::Options;

/// The query keys of the `redis` crate's URLs.
const CLIENT_KEYS: &[&str] = &["protocol"];

pub(crate) async fn connect(url: &str) -> Result<PubSub> {
    let options = Options::take(url, CLIENT_KEYS)?;
    if let Some(option) = options.amqp_only() {
        return Err(Error::InvalidUrl(format!(
            "`{option}` is an option of amqp:// URLs, not of redis:// ones"
        )));
    }
    let builder = RedisBackend::builder(&options.url).streams(options.streams);
    let backend = if options.lazy {
        builder.connect_lazy()?
    } else {
        builder.connect().await?
    };
    Ok(backend.into())
}

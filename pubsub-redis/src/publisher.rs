//! The publishing connection: one multiplexed connection that pipelines concurrent
//! publishes and reconnects when it breaks.

use std::time::Duration;

use pubsub_core::backoff::Backoff;
use pubsub_core::{Bytes, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};

use crate::errors::{convert, retry};
use crate::options::Endpoint;

/// How long one attempt to open a connection may take.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(crate) struct Publisher {
    connection: ConnectionManager,
}

impl Publisher {
    /// Connects, trying until `budget` is spent.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        budget: Duration,
        backoff: Backoff,
        response_timeout: Duration,
    ) -> Result<Self> {
        let client = client(endpoint)?;
        let deadline = tokio::time::Instant::now() + budget;
        let connection = retry(deadline, backoff, || {
            ConnectionManager::new_with_config(client.clone(), config(response_timeout))
        })
        .await
        .map_err(|e| convert(&format!("cannot connect to {}", endpoint.shown), e))?;
        Ok(Publisher { connection })
    }

    /// A publisher that connects on its first publish.
    pub(crate) fn lazy(endpoint: &Endpoint, response_timeout: Duration) -> Result<Self> {
        let connection =
            ConnectionManager::new_lazy_with_config(client(endpoint)?, config(response_timeout))
                .map_err(|e| convert(&format!("cannot connect to {}", endpoint.shown), e))?;
        Ok(Publisher { connection })
    }

    /// `PUBLISH channel payload`: how many subscribers received it.
    pub(crate) async fn publish(&self, channel: &str, payload: &Bytes) -> RedisResult<u64> {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.as_ref())
            .query_async(&mut self.connection.clone())
            .await
    }
}

fn client(endpoint: &Endpoint) -> Result<Client> {
    Client::open(endpoint.publish.clone())
        .map_err(|e| convert(&format!("cannot use {}", endpoint.shown), e))
}

/// One attempt per reconnection: the publish loop does the waiting, with its own
/// deadline.
fn config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
}

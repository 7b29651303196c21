//! A reader's own connection for blocking reads, and the way to wake it early
//! (`CLIENT UNBLOCK` from the command connection).

use std::time::Duration;

use pubsub_core::backoff::Backoff;
use redis::{AsyncConnectionConfig, Cmd, RedisResult, Value};

use super::Streams;
use crate::commands::Reading;
use crate::errors::is_transient;
use crate::publisher::CONNECTION_TIMEOUT;

/// How long one blocking read waits for entries before it is issued again. It bounds
/// how long a connection of a subscription that went away stays blocked.
pub(super) const BLOCK: Duration = Duration::from_secs(5);

/// How long a blocking read may take to answer: a read stuck on a dead node fails
/// after this, and the reader reconnects.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(7);

/// A connection that blocks in reads of one key, and its client id (on the node that
/// serves the key).
pub(super) struct Blocking {
    connection: Reading,
    key: String,
    id: i64,
}

impl Blocking {
    /// Opens the connection of a reader (`who`, for the log) again after it broke,
    /// unless the reader is stopped first. `None` ends the reader: stopped, the bus
    /// closed, or a failure that waiting cannot mend (logged).
    ///
    /// It first waits as `failures` says (which the reader resets after a read that
    /// worked): during a failover a fresh connection opens at once but its reads fail
    /// (`MOVED` to the dead master) until a replica took over.
    pub(super) async fn reopen(
        streams: &Streams,
        key: &str,
        stopped: &mut tokio::sync::oneshot::Receiver<()>,
        who: &str,
        failures: &mut Backoff,
    ) -> Option<Self> {
        let reopened = tokio::select! {
            reopened = async {
                tokio::time::sleep(failures.next_delay()).await;
                Self::open(streams, key).await
            } => reopened,
            _ = stopped => return None,
        };
        match reopened? {
            Ok(fresh) => Some(fresh),
            Err(e) => {
                tracing::warn!(error = %e, "{who} cannot reconnect");
                None
            }
        }
    }

    /// Opens a connection, retrying broken attempts with backoff until it succeeds,
    /// another error happens (returned), or the bus closes (`None`).
    pub(super) async fn open(streams: &Streams, key: &str) -> Option<RedisResult<Self>> {
        let mut backoff = streams.backoff.clone();
        let mut closed = streams.closed.subscribe();
        loop {
            let attempt = tokio::select! {
                attempt = Self::try_open(streams, key) => attempt,
                _ = super::closing(&mut closed) => return None,
            };
            match attempt {
                Err(e) if is_transient(&e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "redis stream reader cannot connect; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = super::closing(&mut closed) => return None,
                    }
                }
                done => return Some(done),
            }
        }
    }

    async fn try_open(streams: &Streams, key: &str) -> RedisResult<Self> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(READ_TIMEOUT));
        let mut connection = streams.dialer.open(&config).await?;
        let mut id = redis::cmd("CLIENT");
        id.arg("ID");
        let id = redis::from_redis_value(connection.send_to(&id, key).await?)?;
        Ok(Blocking {
            connection,
            key: key.to_owned(),
            id,
        })
    }

    /// Runs `read` (a blocking read of the key) on this connection.
    pub(super) async fn read(&mut self, read: &Cmd) -> RedisResult<Value> {
        self.connection
            .send_to(read, &self.key)
            .await?
            .extract_error()
    }

    /// The key it reads.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The connection's client id, to [unblock](Streams::unblock) it.
    pub(super) fn id(&self) -> i64 {
        self.id
    }
}

impl Streams {
    /// Ends the blocked read of connection `id`, reading `key`, now (it returns what
    /// it has, or nothing). After a failover the id may be stale: the read then ends
    /// at its block timeout.
    pub(super) async fn unblock(&self, id: i64, key: &str) {
        let mut unblock = redis::cmd("CLIENT");
        unblock.arg("UNBLOCK").arg(id);
        let _ = self.commands.send_to(&unblock, key).await;
    }
}

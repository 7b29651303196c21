//! The command connection of a bus, to one server or to a cluster, and the dialer of
//! the connections that block in reads.

use redis::aio::ConnectionLike as _;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Client, Cmd, RedisResult, Value};

use std::sync::{Mutex, PoisonError};

use crate::errors::is_transient;

/// Pipelined commands to one server (reconnecting) or a cluster (following its
/// topology).
// One per bus: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Commands {
    Single(ConnectionManager),
    Cluster(Renewed),
}

/// A cluster connection that carries no subscriptions, so that it can be replaced by
/// a fresh one (a fresh view of the cluster from its seeds) when it stays broken.
pub(crate) struct Renewed {
    client: ClusterClient,
    connection: Mutex<ClusterConnection>,
}

impl Renewed {
    pub(crate) fn new(client: ClusterClient, connection: ClusterConnection) -> Self {
        Renewed {
            client,
            connection: Mutex::new(connection),
        }
    }

    fn get(&self) -> ClusterConnection {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn send(&self, command: &Cmd) -> RedisResult<Value> {
        let connection = self.get();
        match cluster_send(&connection, command).await {
            Err(e) if is_transient(&e) => {
                // A connection that stays broken after a failover is replaced: the
                // new one learns the topology from the seeds.
                if let Ok(fresh) = self.client.get_async_connection().await {
                    *self
                        .connection
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = fresh;
                }
                Err(e)
            }
            done => done,
        }
    }
}

impl Commands {
    /// Sends `command`, routed by its key on a cluster.
    pub(crate) async fn send(&self, command: &Cmd) -> RedisResult<Value> {
        match self {
            Commands::Single(connection) => connection.clone().send_packed_command(command).await,
            Commands::Cluster(cluster) => cluster.send(command).await,
        }
    }

    /// Sends `command` to the master that serves `key` (for commands without a key,
    /// such as `CLIENT UNBLOCK`, that must reach that node).
    pub(crate) async fn send_to(&self, command: &Cmd, key: &str) -> RedisResult<Value> {
        match self {
            Commands::Single(_) => self.send(command).await,
            Commands::Cluster(cluster) => {
                cluster
                    .get()
                    .route_command(command.clone(), master_of(key))
                    .await
            }
        }
    }
}

/// Sends `command` on a cluster, routed by its key. When that fails on a broken
/// connection, it is sent once more to a random node: `redis` 1.8 keeps reconnecting to
/// a dead master's address and does not learn of its failover from that
/// (redis-rs/redis-rs#1005), while another node answers `MOVED` to the slot's new
/// master, which the client follows and which rebuilds its slot map.
pub(crate) async fn cluster_send(
    connection: &ClusterConnection,
    command: &Cmd,
) -> RedisResult<Value> {
    match connection.clone().req_packed_command(command).await {
        Err(e) if is_transient(&e) => {
            let anywhere = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            connection
                .clone()
                .route_command(command.clone(), anywhere)
                .await
        }
        done => done,
    }
}

/// The routing to the master of `key`'s slot.
fn master_of(key: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        key,
        SlotAddr::Master,
    )))
}

/// Opens the connections that block in reads: one to the server, or one to the
/// cluster (which follows the key's slot through failovers).
// One per bus: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Dialer {
    Single(Client),
    Cluster(ClusterClient),
}

/// A connection of its own for blocking reads.
pub(crate) enum Reading {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Dialer {
    pub(crate) async fn open(&self, config: &AsyncConnectionConfig) -> RedisResult<Reading> {
        match self {
            Dialer::Single(client) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Reading::Single),
            Dialer::Cluster(client) => client.get_async_connection().await.map(Reading::Cluster),
        }
    }
}

impl Reading {
    /// Sends `command` to the master that serves `key`.
    pub(crate) async fn send_to(&mut self, command: &Cmd, key: &str) -> RedisResult<Value> {
        match self {
            Reading::Single(connection) => connection.send_packed_command(command).await,
            Reading::Cluster(connection) => {
                connection
                    .route_command(command.clone(), master_of(key))
                    .await
            }
        }
    }
}

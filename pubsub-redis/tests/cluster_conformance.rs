//! The whole conformance suite against one private Redis Cluster (three masters with a
//! replica each): PubSub mode (sharded channels for names, patterns across the
//! cluster) and Streams mode. Cases a mode cannot run are listed as ignored.

use std::sync::LazyLock;

use pubsub_brokers::RedisCluster;
use pubsub_core::PubSub;
use pubsub_redis::{RedisBackend, RedisBuilder};

static CLUSTER: LazyLock<RedisCluster> = LazyLock::new(RedisCluster::start);

async fn connect(builder: RedisBuilder) -> PubSub {
    builder
        .connect()
        .await
        .expect("connect to the private Redis Cluster")
        .into()
}

async fn pubsub() -> PubSub {
    connect(RedisBackend::builder(&CLUSTER.url())).await
}

async fn streams() -> PubSub {
    connect(RedisBackend::builder(&CLUSTER.url()).streams(true)).await
}

fn main() -> std::process::ExitCode {
    pubsub_core::testkit::Conformance::new()
        .backend("redis-cluster", pubsub)
        .backend("redis-cluster-streams", streams)
        .run()
}

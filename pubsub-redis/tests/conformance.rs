//! The whole conformance suite against one private `redis-server`: plainly, with a
//! channel prefix, and in raw mode (no headers, so request/reply is not offered).
//! Cases Redis PubSub cannot run (groups, acks, priorities) are listed as ignored.

use std::sync::LazyLock;

use pubsub_brokers::RedisServer;
use pubsub_core::PubSub;
use pubsub_redis::{RedisBackend, RedisBuilder};

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

async fn connect(builder: RedisBuilder) -> PubSub {
    builder
        .connect()
        .await
        .expect("connect to the private redis-server")
        .into()
}

async fn plain() -> PubSub {
    connect(RedisBackend::builder(&SERVER.url())).await
}

async fn prefixed() -> PubSub {
    connect(RedisBackend::builder(&SERVER.url()).prefix("tenant[a]:")).await
}

async fn raw() -> PubSub {
    connect(RedisBackend::builder(&SERVER.url()).raw(true)).await
}

fn main() -> std::process::ExitCode {
    pubsub_core::testkit::Conformance::new()
        .backend("redis", plain)
        .backend("redis-prefixed", prefixed)
        .backend("redis-raw", raw)
        .run()
}

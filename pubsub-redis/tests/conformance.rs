//! The whole conformance suite against one private `redis-server`: plainly, in raw
//! mode, with a channel prefix (glob characters in it, so that escaping is exercised too),
//! and in Streams mode. Cases a mode cannot run (PubSub: groups, acks, priorities;
//! Streams: patterns, priorities, no-responders) are listed as ignored.

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

/// Bare payloads, as redis-cli and redis-py read them: no headers, so request/reply
/// and the header cases are listed as ignored.
async fn raw() -> PubSub {
    connect(RedisBackend::builder(&SERVER.url()).raw(true)).await
}

async fn prefixed() -> PubSub {
    connect(RedisBackend::builder(&SERVER.url()).prefix("tenant[a]:")).await
}

/// Streams mode: groups, acks, nack, dead members and persistence; no patterns.
async fn streams() -> PubSub {
    connect(
        RedisBackend::builder(&SERVER.url())
            .streams(true)
            .prefix("streams:"),
    )
    .await
}

fn main() -> std::process::ExitCode {
    pubsub_core::testkit::Conformance::new()
        .backend("redis", plain)
        .backend("redis-prefixed", prefixed)
        .backend("redis-raw", raw)
        .backend("redis-streams", streams)
        .run()
}

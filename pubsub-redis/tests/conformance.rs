//! The whole conformance suite against a private `redis-server`, one per test binary.

use std::sync::LazyLock;

use pubsub_core::testkit::redis_server::RedisServer;
use pubsub_core::PubSub;
use pubsub_redis::RedisBackend;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

async fn bus() -> PubSub {
    RedisBackend::connect(&SERVER.url())
        .await
        .expect("connect to the private redis-server")
        .into()
}

pubsub_core::conformance_tests!(bus);

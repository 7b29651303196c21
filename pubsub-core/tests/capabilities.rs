//! The bus enforces what a backend says it cannot do, before calling it: a request on
//! a backend without headers fails at once instead of timing out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pubsub_core::backend::{Backend, Capabilities, Publisher};
use pubsub_core::{async_trait, Error, Message, Pattern, PubSub, Result};
use pubsub_core::{SubscribeOptions, Subscription, TopicName};

/// The in-process backend, claiming to carry no headers and to have no groups.
#[derive(Debug)]
struct Bare(pubsub_local::LocalBackend);

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Backend for Bare {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().patterns(true)
    }

    fn publisher(&self, topic: &TopicName) -> Result<Arc<dyn Publisher>> {
        self.0.publisher(topic)
    }

    async fn subscribe(
        &self,
        pattern: &Pattern,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        assert!(options.group.is_none(), "the bus let a group through");
        self.0.subscribe(pattern, options).await
    }

    fn reply_publisher(&self, address: &str) -> Result<Arc<dyn Publisher>> {
        self.0.reply_publisher(address)
    }

    async fn close(&self) -> Result<()> {
        self.0.close().await
    }
}

fn bare() -> PubSub {
    PubSub::new(Bare(pubsub_local::LocalBackend::new()))
}

#[tokio::test]
async fn a_request_without_headers_is_unsupported_at_once() {
    let bus = bare();
    let _listener = bus.topic("echo").subscribe().await.unwrap();
    let started = Instant::now();
    let err = bus
        .topic("echo")
        .request::<_, String>(&"hi", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn headers_on_a_backend_without_them_are_refused() {
    let err = bare()
        .topic("t")
        .publish_message(Message::new("x").with_header("k", "v"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn a_group_on_a_backend_without_groups_is_unsupported() {
    let err = bare().topic("t").subscribe_group("g").await.unwrap_err();
    match err {
        Error::Unsupported(why) => assert!(why.contains("groups"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_invalid_name_fails_on_use_with_the_rule_it_breaks() {
    let bus = bare();
    for (name, rule) in [("", "empty"), ("a b", "whitespace"), ("a.*", "pattern")] {
        let err = bus.topic(name).publish(&1).await.unwrap_err();
        match err {
            Error::InvalidTopic { reason, .. } => {
                assert!(reason.contains(rule), "{name:?}: {reason}")
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

//! The whole conformance suite on the in-process backend.

use pubsub_core::PubSub;

async fn bus() -> PubSub {
    pubsub_local::LocalBackend::new().into()
}

pubsub_core::conformance_tests!(bus);

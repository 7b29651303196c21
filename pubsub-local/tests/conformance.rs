//! The whole conformance suite on the in-process backend.

use pubsub_core::PubSub;

async fn bus() -> PubSub {
    pubsub_local::LocalBackend::new().into()
}

pubsub_core::conformance_tests!(bus);

/// The suite again through the `Prefixed` decorator: a decorator keeps every semantic.
mod prefixed {
    use pubsub_core::{Prefixed, PubSub};

    async fn bus() -> PubSub {
        let backend = pubsub_local::LocalBackend::new();
        PubSub::new(Prefixed::new(backend, "tenant.a").expect("a valid prefix"))
    }

    pubsub_core::conformance_tests!(bus);
}

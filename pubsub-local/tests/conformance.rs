//! The whole conformance suite on the in-process backend, directly and through the
//! `Prefixed` decorator (a decorator keeps every semantic).

use pubsub_core::{Prefixed, PubSub};

async fn local() -> PubSub {
    pubsub_local::LocalBackend::new().into()
}

async fn prefixed() -> PubSub {
    let backend = pubsub_local::LocalBackend::new();
    PubSub::new(Prefixed::new(backend, "tenant.a").expect("a valid prefix"))
}

fn main() -> std::process::ExitCode {
    pubsub_core::testkit::Conformance::new()
        .backend("local", local)
        .backend("prefixed", prefixed)
        .run()
}

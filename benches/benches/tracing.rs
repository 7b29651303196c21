//! What tracing costs per message on the in-process bus: `--messages N` round trips
//! (one 64-byte publish and its receive) on one topic with one subscriber, then the
//! time per message.
//!
//! Built with and without the `otel` feature, and run with `--exporter` to install a
//! `tracing` subscriber with an OpenTelemetry layer whose batch processor hands every
//! span to an exporter that discards it (so the figure is the library's and the SDK's
//! work, not a network's). Wall-clock time on a shared 2-core machine is noisy; the
//! instruction count under callgrind is not, and the difference of two runs with
//! different `--messages` is the count per message, setup excluded:
//!
//! ```text
//! cargo bench -p pubsub-benches --bench tracing [--features otel] -- --messages 100000 [--exporter]
//! valgrind --tool=callgrind target/release/deps/tracing-HASH --messages 110000
//! ```

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use pubsub_core::{Message, PubSub, Received};
use pubsub_local::LocalBackend;
use tracing_subscriber::layer::SubscriberExt;

/// Takes every span and keeps none.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(black_box(batch));
        Ok(())
    }
}

fn round_trips(messages: u64) -> std::time::Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(async {
        let payload = Bytes::from_static(&[0x5A; 64]);
        let bus: PubSub = LocalBackend::new().into();
        let topic = bus.topic("bench.trace");
        let mut sub = topic.subscribe().await.expect("local subscribe works");
        let started = Instant::now();
        for _ in 0..messages {
            let message = Message::new(black_box(payload.clone()));
            topic
                .publish_message(message)
                .await
                .expect("local publish works");
            match sub.next().await {
                Some(Received::Message(delivery)) => drop(black_box(delivery)),
                other => panic!("a message, got {other:?}"),
            }
        }
        started.elapsed()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages = args
        .iter()
        .position(|a| a == "--messages")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(100_000), |n| n.parse())
        .expect("--messages takes a number");
    let exporter = args.iter().any(|a| a == "--exporter");
    let compiled = if cfg!(feature = "otel") {
        "otel compiled in"
    } else {
        "otel off"
    };
    let took = if exporter {
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let took = tracing::subscriber::with_default(subscriber, || round_trips(messages));
        let _ = provider.shutdown();
        took
    } else {
        round_trips(messages)
    };
    let installed = if exporter {
        "OpenTelemetry layer and exporter"
    } else {
        "nothing installed"
    };
    println!(
        "{compiled}, {installed}: {messages} round trips in {took:?}, {:.0} ns each",
        took.as_nanos() as f64 / messages as f64
    );
}

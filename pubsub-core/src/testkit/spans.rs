//! Spans recorded in memory, for tests of tracing (features `testkit` and `otel`).
//!
//! [`Spans::install`] sets, once per process, a global subscriber with an
//! OpenTelemetry layer whose exporter keeps every finished span. Tests running at once
//! tell their spans apart by trace: each starts a root span of its own and reads
//! [`Spans::of_trace`] with its id.
//!
//! ```no_run
//! use pubsub_core::testkit::spans::{trace_id, Spans};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let spans = Spans::install();
//! let root = tracing::info_span!("test");
//! let trace = trace_id(&root);
//! root.in_scope(|| tracing::info_span!("work").in_scope(|| {}));
//! drop(root);
//! assert_eq!(spans.wait_for(trace, 2).await.len(), 2);
//! # }
//! ```

use std::sync::OnceLock;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

pub use opentelemetry::trace::{SpanId, SpanKind, TraceId};
pub use opentelemetry_sdk::trace::SpanData;

use super::support::within;

/// The finished spans of this process.
#[derive(Debug)]
pub struct Spans {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
}

impl Spans {
    /// Installs the recording subscriber the first time; the same recorder after.
    ///
    /// # Panics
    ///
    /// When another global subscriber was installed first: the test is then wrong.
    pub fn install() -> &'static Spans {
        static SPANS: OnceLock<Spans> = OnceLock::new();
        SPANS.get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("pubsub-test"));
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in a tracing test");
            Spans {
                exporter,
                _provider: provider,
            }
        })
    }

    /// The finished spans of `trace`, in the order they finished.
    pub fn of_trace(&self, trace: TraceId) -> Vec<SpanData> {
        self.exporter
            .get_finished_spans()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect()
    }

    /// Waits (a bounded time) until `trace` has at least `count` finished spans.
    ///
    /// # Panics
    ///
    /// When they do not come in time, listing those that did.
    pub async fn wait_for(&self, trace: TraceId, count: usize) -> Vec<SpanData> {
        let what = format!("{count} finished spans of trace {trace}");
        within(&what, async {
            loop {
                let spans = self.of_trace(trace);
                if spans.len() >= count {
                    return spans;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// The OpenTelemetry trace id of a span recorded by [`Spans`].
pub fn trace_id(span: &tracing::Span) -> TraceId {
    span.context().span().span_context().trace_id()
}

/// The OpenTelemetry span id of a span recorded by [`Spans`].
pub fn span_id(span: &tracing::Span) -> SpanId {
    span.context().span().span_context().span_id()
}

/// The one span of `spans` called `name`.
///
/// # Panics
///
/// When there is none or more than one, listing the names there are.
pub fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    match found.as_slice() {
        [one] => one,
        _ => {
            let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
            panic!("{} spans named {name:?} among {names:?}", found.len())
        }
    }
}

/// The string value of attribute `key` of `span`.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

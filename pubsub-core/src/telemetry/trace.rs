//! The spans of OpenTelemetry's messaging conventions, and W3C trace context in
//! message headers.
//!
//! Spans are `tracing` spans at `INFO` whose `otel.name` and `otel.kind` fields
//! `tracing-opentelemetry` turns into the OpenTelemetry span's name and kind; the
//! other fields become its attributes. The context is read from and written to a
//! span through `tracing-opentelemetry`, so it is the application's layer and tracer
//! that decide what is sampled and where spans go.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Consumer;
use crate::backend::system;
use crate::message::CORRELATION_ID;
use crate::{Delivery, Message, Result, Topic};

/// The W3C header naming the trace and the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// The W3C trace context headers of `span`, to put into a message of another protocol
/// (the gateway's frames): empty when the span is not recorded by an OpenTelemetry
/// layer.
///
/// ```
/// let span = tracing::info_span!("relay");
/// // No subscriber here: the span is not recorded, so there is no context to carry.
/// assert!(pubsub_core::telemetry::context_headers(&span).is_empty());
/// ```
pub fn context_headers(span: &Span) -> Vec<(String, String)> {
    let mut headers = Headers(Vec::new());
    if !span.is_disabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut headers);
        }
    }
    headers.0
}

struct Headers(Vec<(String, String)>);

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

/// A message's headers, as the propagator reads them.
struct Carrier<'a>(&'a Message);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.header(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.headers().map(|(k, _)| k).collect()
    }
}

/// Whether a span at `INFO` may be recorded at all: one load of `tracing`'s global
/// level, false with no subscriber or with one whose filter leaves `INFO` out.
#[inline]
pub(super) fn enabled() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}

/// The producer span of one publish, and the message with the span's context in its
/// headers (where the backend carries headers); no span where nobody records it.
#[inline]
pub(super) fn publish(topic: &Topic, message: Message) -> (Message, Option<Span>) {
    let system = topic.bus().capabilities().system;
    let destination = topic.name();
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {destination}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = destination,
        messaging.operation.name = "publish",
        messaging.operation.type = "send",
        messaging.message.id = message.id(),
        messaging.message.conversation_id = message.header(CORRELATION_ID),
        messaging.rabbitmq.destination.routing_key = Empty,
    );
    if span.is_disabled() {
        return (message, None);
    }
    if Span::current().is_none() {
        // A message that arrived with a trace (a relayed or forwarded one) and is
        // published outside any span continues that trace.
        parent_on_headers(&span, &message);
    }
    if system == system::RABBITMQ {
        span.record("messaging.rabbitmq.destination.routing_key", destination);
    }
    if !topic.bus().capabilities().headers {
        return (message, Some(span));
    }
    let message = context_headers(&span)
        .into_iter()
        .fold(message, |message, (key, value)| {
            message.with_header(key, value)
        });
    (message, Some(span))
}

/// Marks a failed publish's span as an error.
pub(super) fn finish(span: &Span, outcome: &Result<()>) {
    if let Err(error) = outcome {
        span.record("otel.status_code", "error");
        tracing::debug!(parent: span, %error, "publish failed");
    }
}

/// The receive span of one delivery: a child of the span its headers name, or of the
/// current span when they name none.
#[inline]
pub(super) fn receive(consumer: &Consumer, delivery: &Delivery) -> Span {
    let destination = delivery.topic();
    let span = tracing::info_span!(
        "receive",
        otel.name = %format_args!("receive {destination}"),
        otel.kind = "consumer",
        messaging.system = consumer.system,
        messaging.destination.name = destination,
        messaging.destination.subscription.name = consumer.pattern.as_str(),
        messaging.consumer.group.name = consumer.group.as_deref(),
        messaging.operation.name = "receive",
        messaging.operation.type = "receive",
        messaging.message.id = delivery.id(),
        messaging.message.conversation_id = delivery.header(CORRELATION_ID),
        messaging.rabbitmq.destination.routing_key = Empty,
    );
    if span.is_disabled() {
        // Not even the callsite's metadata: a delivery nobody traces carries nothing.
        return Span::none();
    }
    if consumer.system == system::RABBITMQ {
        span.record("messaging.rabbitmq.destination.routing_key", destination);
    }
    parent_on_headers(&span, delivery.message());
    span
}

/// Makes `span` a child of the span `message`'s trace context headers name, if any.
fn parent_on_headers(span: &Span, message: &Message) {
    if message.header(TRACEPARENT).is_some() {
        let remote = TraceContextPropagator::new().extract(&Carrier(message));
        if remote.span().span_context().is_valid() {
            // Only fails when no OpenTelemetry layer records the span; then there is
            // nothing to parent.
            let _ = span.set_parent(remote);
        }
    }
}

/// The delivery's receive span, or the current span for a delivery without one.
fn parent_id(parent: Option<&Span>) -> Option<tracing::Id> {
    match parent {
        Some(span) if !span.is_none() => span.id(),
        _ => Span::current().id(),
    }
}

/// The process span of one handler attempt, a child of the receive span.
pub(super) fn process(parent: Option<&Span>, destination: &str) -> Span {
    tracing::info_span!(
        parent: parent_id(parent),
        "process",
        otel.name = %format_args!("process {destination}"),
        otel.kind = "consumer",
        messaging.destination.name = destination,
        messaging.operation.name = "process",
        messaging.operation.type = "process",
    )
}

/// The settle span of an ack or a nack, a child of the receive span.
pub(super) fn settle(parent: Option<&Span>, destination: &str, operation: &'static str) -> Span {
    tracing::info_span!(
        parent: parent_id(parent),
        "settle",
        otel.name = %format_args!("{operation} {destination}"),
        otel.kind = "consumer",
        messaging.destination.name = destination,
        messaging.operation.name = operation,
        messaging.operation.type = "settle",
    )
}

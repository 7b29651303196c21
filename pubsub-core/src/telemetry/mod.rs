//! Spans, trace context and metrics, built once here for every backend.
//!
//! The bus calls the hooks of this module where a message is published, received,
//! processed by a handler and settled. What they do depends on two cargo features:
//!
//! - `otel`: a span for each of those steps, following OpenTelemetry's messaging
//!   conventions (`publish {topic}` as a producer span, `receive`/`process {topic}` as
//!   consumer spans, `ack`/`nack {topic}` for settlement), made with `tracing` so that a
//!   `tracing-opentelemetry` layer exports them; and the W3C `traceparent` and
//!   `tracestate` headers injected into each published message and read from each
//!   delivered one, so a consumer's spans are children of its producer's, across
//!   processes and across clients of other languages.
//! - `metrics`: counters, a gauge and a histogram through the `metrics` facade (their
//!   names are in `telemetry::names`, with the feature).
//!
//! With both off, every hook is an inline pass-through: nothing is added to messages.
//! With `otel` on and no subscriber that wants the spans, a hook costs a check of the
//! span's callsite and no header is added.
//!
//! Signals (a lag, a gap) are logged at `warn` whatever the features, once per signal,
//! by the subscription that yields them.

#[cfg(feature = "metrics")]
mod meters;
#[cfg(feature = "otel")]
mod trace;

use std::future::Future;
use std::sync::Arc;

use crate::backend::{PublishOptions, Publisher, Publishing};
use crate::{Message, Pattern, Result, Signal, Topic};

#[cfg(feature = "metrics")]
pub use meters::names;
#[cfg(feature = "otel")]
pub use trace::{context_headers, TRACEPARENT, TRACESTATE};

/// Publishes `message` through `publisher` under a producer span, counting it once
/// the backend accepted it.
#[cfg(not(any(feature = "otel", feature = "metrics")))]
#[inline]
pub(crate) fn publish<'a>(
    _topic: &'a Topic,
    publisher: &'a Arc<dyn Publisher>,
    message: Message,
    options: PublishOptions,
) -> Publishing<'a> {
    publisher.publish(message, options)
}

/// Publishes `message` through `publisher` under a producer span, counting it once
/// the backend accepted it.
#[cfg(any(feature = "otel", feature = "metrics"))]
#[inline]
pub(crate) fn publish<'a>(
    topic: &'a Topic,
    publisher: &'a Arc<dyn Publisher>,
    message: Message,
    options: PublishOptions,
) -> Publishing<'a> {
    // One load of tracing's global level decides: with no subscriber, or one that
    // leaves INFO out, the publish is as if the feature were off.
    #[cfg(feature = "otel")]
    if trace::enabled() {
        return traced_publish(topic, publisher, message, options);
    }
    #[cfg(feature = "metrics")]
    {
        let published = meters::published(topic);
        publisher.publish(message, options).inspect(move |outcome| {
            if outcome.is_ok() {
                published.increment(1);
            }
        })
    }
    #[cfg(not(feature = "metrics"))]
    publisher.publish(message, options)
}

/// [`publish`] when spans may be recorded: kept out of line, so that the path
/// without them stays small.
#[cfg(feature = "otel")]
#[inline(never)]
fn traced_publish<'a>(
    topic: &'a Topic,
    publisher: &'a Arc<dyn Publisher>,
    message: Message,
    options: PublishOptions,
) -> Publishing<'a> {
    let (message, span) = trace::publish(topic, message);
    let publishing = match &span {
        Some(span) => span.in_scope(|| publisher.publish(message, options)),
        None => publisher.publish(message, options),
    };
    #[cfg(feature = "metrics")]
    let published = meters::published(topic);
    publishing.inspect(move |outcome| {
        if let Some(span) = &span {
            trace::finish(span, outcome);
        }
        #[cfg(feature = "metrics")]
        if outcome.is_ok() {
            published.increment(1);
        }
    })
}

/// What a subscription made through a [`Topic`] knows for its deliveries' spans, its
/// metrics and its log lines.
pub(crate) struct Consumer {
    pattern: Pattern,
    group: Option<Arc<str>>,
    system: &'static str,
    #[cfg(feature = "metrics")]
    meters: Arc<meters::Consumer>,
}

impl Consumer {
    pub(crate) fn new(topic: &Topic, pattern: &Pattern, group: Option<&str>) -> Self {
        let system = topic.bus().capabilities().system;
        Consumer {
            pattern: pattern.clone(),
            group: group.map(Arc::from),
            system,
            #[cfg(feature = "metrics")]
            meters: Arc::new(meters::Consumer::new(system, pattern)),
        }
    }

    /// Logs a signal where people see it, and counts it.
    pub(crate) fn signal(&self, signal: &Signal) {
        let group = self.group.as_deref().unwrap_or("");
        match signal {
            Signal::Lagged { missed } => {
                tracing::warn!(system = self.system, subscription = %self.pattern, group, missed, "subscriber lagged behind: messages were dropped");
            }
            other => {
                tracing::warn!(system = self.system, subscription = %self.pattern, group, signal = %other, "messages may have been missed");
            }
        }
        #[cfg(feature = "metrics")]
        self.meters.signal(signal);
    }

    /// What a delivery of this subscription carries: its receive span (a child of the
    /// producer's span the headers name) and the subscription's meters; nothing when
    /// there is neither (no metrics, and no subscriber that records spans).
    #[inline]
    pub(crate) fn received(&self, _delivery: &crate::Delivery) -> Option<Observed> {
        #[cfg(not(feature = "metrics"))]
        {
            #[cfg(feature = "otel")]
            if trace::enabled() {
                let span = trace::receive(self, _delivery);
                return (!span.is_disabled()).then_some(Observed { span });
            }
            None
        }
        #[cfg(feature = "metrics")]
        {
            self.meters.delivered(_delivery.attempt());
            Some(Observed {
                #[cfg(feature = "otel")]
                span: match trace::enabled() {
                    true => trace::receive(self, _delivery),
                    false => tracing::Span::none(),
                },
                meters: Arc::clone(&self.meters),
            })
        }
    }
}

/// What one delivery carries for its spans and metrics.
#[derive(Clone)]
pub(crate) struct Observed {
    /// The receive span, parent of the process and settle spans.
    #[cfg(feature = "otel")]
    pub(crate) span: tracing::Span,
    #[cfg(feature = "metrics")]
    meters: Arc<meters::Consumer>,
}

/// Settles a delivery (`operation` is `ack` or `nack`) under a settle span, counting
/// it when the broker took it.
pub(crate) async fn settle(
    _observed: Option<&Observed>,
    _topic: &str,
    _operation: &'static str,
    settling: impl Future<Output = Result<()>>,
) -> Result<()> {
    #[cfg(feature = "otel")]
    let settling = {
        use tracing::Instrument;
        let parent = _observed.map(|o| &o.span);
        settling.instrument(trace::settle(parent, _topic, _operation))
    };
    let outcome = settling.await;
    #[cfg(feature = "metrics")]
    if let (Ok(()), Some(observed)) = (&outcome, _observed) {
        observed.meters.settled(_operation);
    }
    outcome
}

/// Runs one attempt of a handler under a process span, counted as in flight.
pub(crate) async fn process<T>(
    _observed: Option<&Observed>,
    _topic: &str,
    handling: impl Future<Output = T>,
) -> T {
    #[cfg(feature = "metrics")]
    let _in_flight = _observed.map(|o| o.meters.in_flight());
    #[cfg(feature = "otel")]
    let handling = {
        use tracing::Instrument;
        let parent = _observed.map(|o| &o.span);
        handling.instrument(trace::process(parent, _topic))
    };
    handling.await
}

/// Runs `f` (which starts a publish) in the delivery's span when the caller is in no
/// span of its own, so that a reply or a dead letter is part of the message's trace.
#[inline]
pub(crate) fn scoped<R>(_observed: Option<&Observed>, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "otel")]
    if let Some(observed) = _observed {
        if tracing::Span::current().is_none() {
            return observed.span.in_scope(f);
        }
    }
    f()
}

/// Counts a message a handler gave up and published to its dead-letter topic.
#[cfg_attr(not(feature = "metrics"), inline)]
pub(crate) fn dead_lettered(_observed: Option<&Observed>) {
    #[cfg(feature = "metrics")]
    if let Some(observed) = _observed {
        observed.meters.dead_lettered();
    }
}

/// Runs a request, recording how long it took and how it ended.
pub(crate) async fn request<T>(
    _topic: &Topic,
    exchange: impl Future<Output = Result<T>>,
) -> Result<T> {
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    let outcome = exchange.await;
    #[cfg(feature = "metrics")]
    meters::request(_topic, started.elapsed(), &outcome);
    outcome
}

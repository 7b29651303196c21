//! The library's metrics, through the `metrics` facade: whatever recorder the
//! application installs (Prometheus, OpenTelemetry, StatsD) receives them.
//!
//! Every metric has the labels `system` (the backend's
//! [`Capabilities::system`](crate::Capabilities::system)) and `destination`: the topic
//! for publishes and requests, the subscribed name or pattern for everything a
//! subscription counts. Topic names can be made of data (`sync.alice`), so the
//! number of distinct `destination` values is bounded: past
//! [`names::MAX_DESTINATIONS`] the rest share the value [`names::OTHER`].
//!
//! Handles are registered when a [`Topic`] first publishes and when a subscription
//! starts: install the recorder before.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, SharedString};

use crate::sync::lock;
use crate::{Error, Pattern, Result, Signal, Topic};

/// The metric names and the label rules.
pub mod names {
    /// Counter: messages the backend accepted.
    pub const PUBLISHED: &str = "pubsub_published_total";
    /// Counter: messages a subscription yielded, redeliveries included.
    pub const DELIVERED: &str = "pubsub_delivered_total";
    /// Counter: deliveries that were a redelivery (attempt 2 or more).
    pub const REDELIVERED: &str = "pubsub_redelivered_total";
    /// Counter: group deliveries acknowledged.
    pub const ACKED: &str = "pubsub_acked_total";
    /// Counter: group deliveries rejected (with or without requeue).
    pub const NACKED: &str = "pubsub_nacked_total";
    /// Counter: messages a handler gave up and published to its dead-letter topic.
    pub const DEAD_LETTERED: &str = "pubsub_dead_lettered_total";
    /// Counter: messages a subscriber missed because it fell behind (the sum of its
    /// `Lagged` signals).
    pub const LAGGED: &str = "pubsub_lagged_messages_total";
    /// Counter: gaps (a reconnect that may have lost messages).
    pub const GAPS: &str = "pubsub_gaps_total";
    /// Gauge: messages handlers are working on now.
    pub const IN_FLIGHT: &str = "pubsub_handler_in_flight";
    /// Histogram: seconds from a request's publish to its reply (or its failure),
    /// with an `outcome` label: `ok`, `timeout`, `no_responders` or `error`.
    pub const REQUEST_DURATION: &str = "pubsub_request_duration_seconds";
    /// How many distinct `destination` label values are kept, per process.
    pub const MAX_DESTINATIONS: usize = 1000;
    /// The `destination` of every topic past the first [`MAX_DESTINATIONS`].
    pub const OTHER: &str = "_other";
}

/// The bounded `destination` label of `name`.
fn destination(name: &str) -> SharedString {
    static SEEN: OnceLock<Mutex<HashSet<Box<str>>>> = OnceLock::new();
    let mut seen = lock(SEEN.get_or_init(Default::default));
    if seen.contains(name) {
        return SharedString::from(name.to_owned());
    }
    if seen.len() >= names::MAX_DESTINATIONS {
        return SharedString::const_str(names::OTHER);
    }
    seen.insert(name.into());
    SharedString::from(name.to_owned())
}

/// The published counter of `topic`, registered once per topic handle.
pub(super) fn published(topic: &Topic) -> Counter {
    topic
        .published_counter(|| {
            let system = topic.bus().capabilities().system;
            counter!(names::PUBLISHED, "system" => system, "destination" => destination(topic.name()))
        })
        .clone()
}

/// Records one request's duration and outcome.
pub(super) fn request<T>(topic: &Topic, took: Duration, outcome: &Result<T>) {
    let label = match outcome {
        Ok(_) => "ok",
        Err(Error::Timeout { .. }) => "timeout",
        Err(Error::NoResponders { .. }) => "no_responders",
        Err(_) => "error",
    };
    let system = topic.bus().capabilities().system;
    histogram!(
        names::REQUEST_DURATION,
        "system" => system,
        "destination" => destination(topic.name()),
        "outcome" => label,
    )
    .record(took.as_secs_f64());
}

/// One subscription's handles.
pub(super) struct Consumer {
    delivered: Counter,
    redelivered: Counter,
    acked: Counter,
    nacked: Counter,
    dead_lettered: Counter,
    lagged: Counter,
    gaps: Counter,
    in_flight: Gauge,
}

impl Consumer {
    pub(super) fn new(system: &'static str, pattern: &Pattern) -> Self {
        let labels = [
            ("system", SharedString::const_str(system)),
            ("destination", destination(pattern.as_str())),
        ];
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        Consumer {
            delivered: counter!(names::DELIVERED, labels.iter()),
            redelivered: counter!(names::REDELIVERED, labels.iter()),
            acked: counter!(names::ACKED, labels.iter()),
            nacked: counter!(names::NACKED, labels.iter()),
            dead_lettered: counter!(names::DEAD_LETTERED, labels.iter()),
            lagged: counter!(names::LAGGED, labels.iter()),
            gaps: counter!(names::GAPS, labels.iter()),
            in_flight: gauge!(names::IN_FLIGHT, labels.iter()),
        }
    }

    pub(super) fn delivered(&self, attempt: u32) {
        self.delivered.increment(1);
        if attempt > 1 {
            self.redelivered.increment(1);
        }
    }

    pub(super) fn signal(&self, signal: &Signal) {
        match signal {
            Signal::Lagged { missed } => self.lagged.increment(*missed),
            _ => self.gaps.increment(1),
        }
    }

    pub(super) fn settled(&self, operation: &str) {
        match operation {
            "ack" => self.acked.increment(1),
            _ => self.nacked.increment(1),
        }
    }

    pub(super) fn dead_lettered(&self) {
        self.dead_lettered.increment(1);
    }

    /// Counts one message in flight until the guard is dropped.
    pub(super) fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.increment(1.0);
        InFlight(&self.in_flight)
    }
}

/// One message a handler works on; counted down on drop, however the handler ends.
pub(super) struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

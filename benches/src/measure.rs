//! Figures and how they are taken: latency stamps, percentiles, the freed heap.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use serde::Serialize;

/// What one client achieved on one workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Messages published (requests, for request/reply).
    pub messages: u64,
    /// From the first publish to the last delivery.
    pub seconds: f64,
    /// Published messages per second, each delivered to every subscriber.
    pub msg_per_s: f64,
    /// Payload bytes delivered per second, over all subscribers, in MiB.
    pub mib_per_s: f64,
    /// Messages that subscribers were told they missed, or that never arrived.
    pub lost: u64,
    /// Latency percentiles (delivery, or round trip for request/reply).
    pub latency_us: Option<Percentiles>,
    /// Growth of resident memory during the run, in MiB.
    pub rss_growth_mib: Option<f64>,
    /// Resident memory per idle subscription, in KiB.
    pub kib_per_subscription: Option<f64>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples recorded.
    pub samples: u64,
}

impl Percentiles {
    /// Reads a histogram recorded in nanoseconds.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1_000.0;
        (!histogram.is_empty()).then(|| Percentiles {
            p50: us(0.5),
            p99: us(0.99),
            p999: us(0.999),
            max: histogram.max() as f64 / 1_000.0,
            samples: histogram.len(),
        })
    }
}

/// A histogram for nanosecond latencies up to a minute, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A payload of `size` bytes (at least 8) that starts with the time it was made.
pub fn stamped(size: usize) -> Bytes {
    let mut buffer = BytesMut::with_capacity(size.max(8));
    buffer.put_u64_le(now_ns());
    buffer.resize(size.max(8), 0xA5);
    buffer.freeze()
}

/// Nanoseconds since `payload` was [`stamped`].
pub fn age_ns(payload: &[u8]) -> Option<u64> {
    let stamp = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    Some(now_ns().saturating_sub(stamp))
}

/// Gives memory that earlier runs freed back to the system, so that what a run
/// allocates shows as growth of resident memory instead of reusing the free heap.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and may be called at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Throughput figures of `messages` messages of `payload` bytes, each delivered
/// `copies` times, in `elapsed`.
pub fn throughput(messages: u64, copies: u64, payload: usize, elapsed: Duration) -> Outcome {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Outcome {
        messages,
        seconds,
        msg_per_s: messages as f64 / seconds,
        mib_per_s: (messages * copies * payload as u64) as f64 / seconds / (1024.0 * 1024.0),
        ..Outcome::default()
    }
}

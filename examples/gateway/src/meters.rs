//! `GET /metrics`: the gateway's gauges and counters, and the library's, in the
//! Prometheus text format.
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `gateway_connections` | gauge | open TCP connections (sockets, requests, and ones whose request has not come yet) |
//! | `gateway_connections_refused_total` | counter | connections refused with 503, by `limit`: `total` or `address` |
//! | `gateway_connections_closed_total` | counter | connections the gateway closed, by `reason`: `handshake_timeout`, `writes_stalled`, `no_pong` |
//! | `gateway_sockets` | gauge | open WebSocket and SSE connections |
//! | `gateway_binds` | gauge | live binds (each a subscription on the broker) |
//! | `gateway_binds_pending` | gauge | binds whose access check or subscribe is under way |
//! | `gateway_frames_out_total` | counter | frames written to clients |
//! | `gateway_frames_dropped_total` | counter | messages dropped from slow clients' outboxes |
//! | `pubsub_*` | | the library's: published, delivered, lagged... per destination |

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::Counter;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// The recorder's handle and the counters the sockets share.
pub(crate) struct Meters {
    prometheus: PrometheusHandle,
    pub(crate) frames: FrameCounters,
}

/// What every outbox counts.
#[derive(Debug, Clone)]
pub(crate) struct FrameCounters {
    /// Frames handed to the socket's writer.
    pub(crate) out: Counter,
    /// Messages a full outbox dropped.
    pub(crate) dropped: Counter,
}

impl Meters {
    /// Installs the process's recorder. Call it before any bus is made: the library
    /// registers its handles when a subscription starts.
    pub(crate) fn install() -> Result<Meters, BuildError> {
        let prometheus = PrometheusBuilder::new().install_recorder()?;
        Ok(Meters {
            prometheus,
            frames: FrameCounters {
                out: metrics::counter!("gateway_frames_out_total"),
                dropped: metrics::counter!("gateway_frames_dropped_total"),
            },
        })
    }
}

#[cfg(test)]
impl Default for FrameCounters {
    /// Counters that count nothing, for the outbox's unit tests.
    fn default() -> Self {
        FrameCounters {
            out: Counter::noop(),
            dropped: Counter::noop(),
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let stats = state.stats();
    metrics::gauge!("gateway_connections").set(state.connections.open() as f64);
    metrics::gauge!("gateway_sockets").set(stats.sockets as f64);
    metrics::gauge!("gateway_binds").set(stats.subscriptions as f64);
    metrics::gauge!("gateway_binds_pending").set(stats.binds_pending as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.meters.prometheus.render(),
    )
}

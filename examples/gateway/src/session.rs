//! One client connection (a WebSocket or an SSE stream): its binds and its outbox.
//!
//! Each bind runs as a task that checks access, subscribes and pumps messages into the
//! outbox. The session's cancellation token ends them all when the connection goes.
//! The subscribe step is not cut short (a half-done subscribe could leave a queue on
//! the broker): a bind that completes after its socket closed releases its
//! subscription at once, which is the brainlife gateway's leak, fixed.

use std::collections::HashSet;
use std::sync::Arc;

use pubsub_core::{Pattern, Received, Signal};
use tokio_util::sync::CancellationToken;

use crate::frames::{self, BindRequest, Source};
use crate::outbox::{self, Bounds, Outbox, OutboxReader};
use crate::state::{Admitted, AppState};

/// A connected client.
pub(crate) struct Session {
    state: Arc<AppState>,
    client: Admitted,
    outbox: Outbox,
    binds: HashSet<BindRequest>,
    closed: CancellationToken,
}

impl Session {
    /// A session for an admitted client, and the reader of the frames to send it.
    pub(crate) fn new(state: Arc<AppState>, client: Admitted) -> (Self, OutboxReader) {
        let counters = state.meters.frames.clone();
        let bounds = Bounds::new(&state.limits, client.slot.open_sockets());
        let (outbox, reader) = outbox::channel(bounds, counters);
        let session = Session {
            state,
            client,
            outbox,
            binds: HashSet::new(),
            closed: CancellationToken::new(),
        };
        (session, reader)
    }

    /// Reports an error to the client.
    pub(crate) fn reject(&self, code: &str, message: &str, bind: Option<&BindRequest>) {
        self.outbox.control(frames::error(code, message, bind));
    }

    /// Starts a bind. A refusal arrives in the outbox as an `error` frame; with `ack`,
    /// success as a `bound` frame, and an unknown exchange as an error too (without,
    /// it is only logged: brainlife's gateway sends nothing then).
    pub(crate) fn bind(&mut self, request: BindRequest, ack: bool) {
        let Some(exchange) = self.state.exchanges.get(&request.ex).cloned() else {
            tracing::warn!(exchange = %request.ex, key = %request.key, "bind to an exchange that is not configured");
            if ack {
                let message = format!("unknown exchange {:?}", request.ex);
                self.reject("unknown_exchange", &message, Some(&request));
            }
            return;
        };
        let key = match Pattern::parse(request.key.as_str()) {
            Ok(key) => key,
            Err(e) => return self.reject("invalid_key", &e.to_string(), Some(&request)),
        };
        if self.binds.contains(&request) {
            return self.reject("duplicate", "already bound on this socket", Some(&request));
        }
        let limit = self.state.limits.max_binds_per_socket;
        if self.binds.len() >= limit {
            let message = format!("at most {limit} binds per socket");
            return self.reject("too_many_binds", &message, Some(&request));
        }
        self.binds.insert(request.clone());
        let bind = Bind {
            state: Arc::clone(&self.state),
            identity: Arc::clone(&self.client.identity),
            outbox: self.outbox.clone(),
            closed: self.closed.clone(),
            source: Arc::new(Source::new(&exchange.name)),
            exchange,
            key,
            request,
            ack,
        };
        tokio::spawn(bind.run());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

struct Bind {
    state: Arc<AppState>,
    identity: Arc<crate::auth::Identity>,
    outbox: Outbox,
    closed: CancellationToken,
    exchange: Arc<crate::exchanges::Exchange>,
    key: Pattern,
    request: BindRequest,
    ack: bool,
    source: Arc<Source>,
}

impl Bind {
    async fn run(self) {
        let state = &self.state;
        // Declared first so that it is dropped last: once no bind is pending, every
        // subscription of a closed socket is already gone.
        let pending = state.binds_pending.hold();
        let timeout = state.limits.check_timeout();
        let policy = &self.exchange.policy;
        let allowed = tokio::select! {
            _ = self.closed.cancelled() => return,
            allowed = policy.check(&state.http, timeout, &self.identity, &self.key) => allowed,
        };
        if let Err(denial) = allowed {
            let frame = frames::denied(denial.code, &denial.message, &self.request);
            return self.outbox.control(frame);
        }
        let topic = self.exchange.bus.topic(self.key.as_str());
        let mut subscription = match topic.subscribe().await {
            Ok(subscription) => subscription,
            Err(e) => {
                let message = format!("could not subscribe: {e}");
                let frame = frames::error("subscribe_failed", &message, Some(&self.request));
                return self.outbox.control(frame);
            }
        };
        let _live = state.subscriptions.hold();
        // An unsubscribe that fails has nobody left to tell: the client is gone, and
        // the broker drops what it held with the channel.
        if self.closed.is_cancelled() {
            let _ = subscription.unsubscribe().await;
            return;
        }
        if self.ack {
            self.outbox.control(frames::bound(&self.request));
        }
        drop(pending);
        loop {
            let item = tokio::select! {
                _ = self.closed.cancelled() => break,
                item = subscription.next() => item,
            };
            match item {
                Some(Received::Message(delivery)) => {
                    if self.outbox.relay(&self.source, delivery).is_err() {
                        break;
                    }
                }
                Some(Received::Signal(Signal::Lagged { missed })) => {
                    self.outbox.lost(frames::lagged(missed));
                }
                Some(Received::Signal(signal)) => {
                    let reason = match signal {
                        Signal::Gap { reason } => reason,
                        other => other.to_string(),
                    };
                    self.outbox.lost(frames::gap(Some(&self.request), &reason));
                }
                None => {
                    let frame = frames::error(
                        "ended",
                        "the broker ended this subscription",
                        Some(&self.request),
                    );
                    self.outbox.control(frame);
                    break;
                }
            }
        }
        let _ = subscription.unsubscribe().await;
    }
}

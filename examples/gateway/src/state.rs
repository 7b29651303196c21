//! What every request handler shares, and admission: token first, then the user's
//! socket limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Identity, UserSlot, Users, Verifier};
use crate::config::{ClaimValue, Limits};
use crate::connections::Connections;
use crate::exchanges::Exchanges;
use crate::meters::Meters;

/// The gateway's shared state.
pub(crate) struct AppState {
    pub(crate) verifier: Verifier,
    /// Every open connection, for the limits and `/metrics`.
    pub(crate) connections: Arc<Connections>,
    pub(crate) exchanges: Exchanges,
    pub(crate) limits: Limits,
    pub(crate) publishers: Option<ClaimValue>,
    pub(crate) users: Arc<Users>,
    pub(crate) http: reqwest::Client,
    pub(crate) subscriptions: Counter,
    pub(crate) binds_pending: Counter,
    pub(crate) meters: Meters,
    /// Cancelled on SIGINT or SIGTERM: every socket closes, so the server can stop.
    pub(crate) shutdown: CancellationToken,
    /// The WebSocket tasks: the server's graceful shutdown stops waiting for a
    /// connection once it is upgraded, so the gateway waits here for their close
    /// frames to be written before it exits.
    pub(crate) sockets: TaskTracker,
}

/// A client that passed admission.
pub(crate) struct Admitted {
    pub(crate) identity: Arc<Identity>,
    /// Held for the connection's lifetime: dropping it frees the user's place.
    pub(crate) slot: UserSlot,
}

/// Why a client was turned away, as an HTTP status and a WebSocket close code.
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) close_code: u16,
    pub(crate) reason: String,
}

/// Live counts, served at `GET /stats`.
#[derive(Debug, Serialize)]
pub(crate) struct Stats {
    pub(crate) sockets: usize,
    pub(crate) subscriptions: usize,
    pub(crate) binds_pending: usize,
}

impl AppState {
    /// Verifies the token before anything else, then takes one of the user's sockets.
    pub(crate) fn admit(&self, token: Option<&str>) -> Result<Admitted, Rejection> {
        let identity = self.verifier.verify(token).map_err(|reason| Rejection {
            status: StatusCode::UNAUTHORIZED,
            close_code: 4401,
            reason,
        })?;
        let limit = self.limits.max_sockets_per_user;
        let slot = self
            .users
            .admit(&identity.user, limit)
            .ok_or_else(|| Rejection {
                status: StatusCode::TOO_MANY_REQUESTS,
                close_code: 4429,
                reason: format!("too many sockets: {limit} are open for this user"),
            })?;
        Ok(Admitted {
            identity: Arc::new(identity),
            slot,
        })
    }

    /// The live counts.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            sockets: self.users.sockets(),
            subscriptions: self.subscriptions.get(),
            binds_pending: self.binds_pending.get(),
        }
    }
}

/// A gauge whose increments are guards, so that every exit path counts down.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicUsize);

/// One unit of a [`Counter`], given back on drop.
pub(crate) struct Counted<'a>(&'a Counter);

impl Counter {
    /// Counts one until the guard is dropped.
    pub(crate) fn hold(&self) -> Counted<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(self)
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

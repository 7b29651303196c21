//! Knowing when a connection is lost, for what waits on it: whatever waits for lapin
//! on a connection also waits for the connection's loss, and stops waiting then.
//!
//! lapin settles what waits on a connection when the socket fails, but not always
//! when the broker closes the connection itself (a `stop_app`, a restart): an ack or
//! a channel opened while the close is under way can wait forever for a frame that
//! is never written, and a member whose ack never returns, or a subscription that
//! never finishes subscribing again, stays silent with its connection replaced long
//! ago. lapin tells no one when a connection's state changes, so one small task per
//! connection looks at it a few times a second and tells every waiter at once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use lapin::{ConnectionStatus, Event};
use pubsub_core::{Error, Result};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How often the state is looked at: a lost connection is noticed this late at most.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Whether a connection was lost, shared by what waits on it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Liveness {
    lost: watch::Receiver<bool>,
    /// Set before `lost` when lapin ended the connection because it could not read
    /// what the broker sent (see [`crate::quarantine`]).
    unreadable: Arc<AtomicBool>,
}

impl Liveness {
    /// Watches `connection` (from a task on the current runtime) until it is lost or
    /// nobody holds its liveness any more.
    pub(crate) fn watch(connection: &lapin::Connection) -> Self {
        let (lost, receiver) = watch::channel(false);
        let unreadable = Arc::new(AtomicBool::new(false));
        // Fused: polled again after lapin drops its end, it stays ended.
        let events = connection.events_listener().fuse().boxed();
        let status = connection.status().clone();
        tokio::spawn(look_after(status, events, lost, Arc::clone(&unreadable)));
        Liveness {
            lost: receiver,
            unreadable,
        }
    }

    /// Whether the connection was lost because lapin could not read a frame, once
    /// [`lost`](Self::lost) has resolved.
    pub(crate) fn unreadable(&self) -> bool {
        self.unreadable.load(Ordering::Acquire)
    }

    /// Resolves once the connection is lost. Never, when that cannot be known (the
    /// watching task is gone with its runtime): lapin's own failures still end what
    /// waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            if lost.wait_for(|lost| *lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// `operation`, or an error saying that the connection was lost while it waited
    /// (in which case `operation` is dropped).
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `operation`.
    pub(crate) async fn unless_lost<T>(
        &self,
        what: &str,
        operation: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            result = operation => result,
            () = self.lost() => Err(Error::Connection {
                message: format!("could not {what}: the connection to the broker was lost"),
                source: None,
            }),
        }
    }
}

/// Tells `lost` once `status` is no longer connected, and `unreadable` first if an
/// error lapin told in `events` was a frame it could not read.
async fn look_after(
    status: ConnectionStatus,
    mut events: BoxStream<'static, Event>,
    lost: watch::Sender<bool>,
    unreadable: Arc<AtomicBool>,
) {
    let note = |event: Event| {
        if matches!(event, Event::Error(ref error) if crate::quarantine::is_unreadable(error)) {
            unreadable.store(true, Ordering::Release);
        }
    };
    let mut every = tokio::time::interval(LOOK_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if !status.connected() {
                    // lapin tells the error just after it changes the state.
                    while let Some(Some(event)) = events.next().now_or_never() {
                        note(event);
                    }
                    lost.send_replace(true);
                    return;
                }
            }
            Some(event) = events.next() => note(event),
            () = lost.closed() => return,
        }
    }
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("lost", &*self.lost.borrow())
            .finish()
    }
}

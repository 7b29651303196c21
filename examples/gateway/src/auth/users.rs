//! The sockets-per-user limit, and each user's count of open sockets, which divides
//! the user's outbox budget among them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Open sockets per user.
#[derive(Debug, Default)]
pub(crate) struct Users {
    open: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

/// One open socket of a user; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct UserSlot {
    users: Arc<Users>,
    user: String,
    open: Arc<AtomicUsize>,
}

impl Users {
    /// A place for one more socket of `user`, or `None` when `limit` are open.
    pub(crate) fn admit(self: &Arc<Self>, user: &str, limit: usize) -> Option<UserSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user.to_owned()).or_default();
        // Changed only under the map's lock; read without it by the outboxes.
        if count.load(Ordering::Relaxed) >= limit {
            return None;
        }
        count.fetch_add(1, Ordering::Relaxed);
        Some(UserSlot {
            users: Arc::clone(self),
            user: user.to_owned(),
            open: Arc::clone(count),
        })
    }

    /// Sockets open across all users.
    pub(crate) fn sockets(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

impl UserSlot {
    /// The live count of this user's open sockets.
    pub(crate) fn open_sockets(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.open)
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self
            .users
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            open.remove(&self.user);
        }
    }
}

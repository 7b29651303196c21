//! The sockets-per-user limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Open sockets per user.
#[derive(Debug, Default)]
pub(crate) struct Users {
    open: Mutex<HashMap<String, usize>>,
}

/// One open socket of a user; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct UserSlot {
    users: Arc<Users>,
    user: String,
}

impl Users {
    /// A place for one more socket of `user`, or `None` when `limit` are open.
    pub(crate) fn admit(self: &Arc<Self>, user: &str, limit: usize) -> Option<UserSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user.to_owned()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            users: Arc::clone(self),
            user: user.to_owned(),
        })
    }

    /// Sockets open across all users.
    pub(crate) fn sockets(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self
            .users
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

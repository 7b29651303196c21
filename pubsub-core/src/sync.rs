//! The one poison-tolerant lock helper: a panic elsewhere while a lock was held must not
//! turn every later publish, request or test harness call into a panic too.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

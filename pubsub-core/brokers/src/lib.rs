//! Private brokers for tests: real `redis-server` and `rabbitmq-server` processes on
//! free loopback ports, with stop, restart and kill for fault tests.
//!
//! A test-only crate: backends and programs list it among their dev-dependencies, and
//! no library depends on it. Tests never touch a broker someone else runs, and a
//! missing broker binary fails them: nothing passes by skipping.

mod rabbitmq;
mod redis;

pub use rabbitmq::RabbitServer;
pub use redis::RedisServer;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A panic in one test while a harness lock was held must not fail every later test.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `N` distinct free loopback ports for a private broker (held together so they differ).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

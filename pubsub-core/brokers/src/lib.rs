//! Private brokers for tests: real `redis-server` and `rabbitmq-server` processes on
//! free loopback ports, with stop, restart and kill for fault tests.
//!
//! A test-only crate: backends and programs list it among their dev-dependencies, and
//! no library depends on it. Tests never touch a broker someone else runs, and a
//! missing broker binary fails them: nothing passes by skipping.

mod rabbitmq;
mod rabbitmq_cluster;
mod redis;
mod redis_cluster;
mod test_ca;

pub use rabbitmq::RabbitServer;
pub use rabbitmq_cluster::RabbitCluster;
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
pub use test_ca::{ServerCertificate, TestCa};

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A panic in one test while a harness lock was held must not fail every later test.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A free loopback port no other broker or test of this process was given, for a
/// test that needs one more listener beside a broker's own (a TLS port, say).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free loopback ports for a private broker.
///
/// A broker binds its ports a moment after they are chosen here, so two things must not
/// take them in between. The kernel's ephemeral range, where port 0 binds and every
/// outgoing connection of every process on the machine get their ports, is avoided:
/// ports come from below it, checked free by binding them. And a port handed out once
/// is remembered for the life of the process, so two tests starting brokers at once are
/// never given the same one.
fn free_ports<const N: usize>() -> [u16; N] {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = lock(&GIVEN);
    let (low, high) = ports_outside_the_ephemeral_range();
    let span = u64::from(high - low);
    // Test binaries of other runs on the machine start elsewhere in the range.
    let start = RandomState::new().build_hasher().finish() % span;
    let mut chosen = Vec::with_capacity(N);
    for step in 0..span {
        let port = low + u16::try_from((start + step) % span).expect("within the range");
        if chosen.len() == N {
            break;
        }
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            chosen.push(port);
        }
    }
    assert_eq!(chosen.len(), N, "no free loopback ports in {low}..{high}");
    std::array::from_fn(|i| chosen[i])
}

/// Ports from 10,000 up to the start of the kernel's ephemeral range (32,768 unless the
/// machine set it otherwise), or every unprivileged port when the range leaves no room
/// below it.
fn ports_outside_the_ephemeral_range() -> (u16, u16) {
    const LOW: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_start >= LOW + 1_000 {
        (LOW, ephemeral_start)
    } else {
        (1_024, u16::MAX)
    }
}

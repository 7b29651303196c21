//! How much one gateway carries on this machine: how many sockets it holds (each
//! connected, admitted and bound) and what each costs in resident memory, and how many
//! messages per second it relays to many sockets at once. Loopback only, with bounded
//! counts and time.
//!
//! It measures more than it checks, so it is ignored by default. Run it with
//!
//! ```text
//! cargo test -p pubsub-gateway --release --test gateway_load -- --ignored --nocapture
//! ```

mod gateway_support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_support::{token, Gateway};
use serde_json::{json, Value};

/// Sockets opened and bound, each with a bind of its own.
const SOCKETS: usize = 5000;
/// Resident memory one idle, bound socket may cost the gateway.
const SOCKET_BUDGET: u64 = 32 * 1024;
/// How many sockets receive every message, in each throughput run.
const FANOUTS: [usize; 2] = [10, 100];
/// Messages published in the throughput run.
const MESSAGES: usize = 10_000;
/// Messages per `POST /publish`.
const BATCH: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn sockets_and_messages_per_second() {
    let gw = Gateway::start(&format!(
        "[limits]\nsocket_buffer = 4096\nmax_sockets_per_user = {SOCKETS}\n\
         max_connections_per_address = {}\n\n\
         [exchanges.public]\naccess = \"public\"\n",
        // Every socket comes from this one address, besides the test's own requests.
        SOCKETS + 16
    ));
    let jwt = token(json!({"sub": "load"}));
    let before = gw.resident_bytes().expect("the gateway's resident memory");

    let started = Instant::now();
    let mut clients: Vec<_> = futures::stream::iter(0..SOCKETS)
        .map(|i| {
            let (gw, jwt) = (&gw, &jwt);
            async move {
                let mut client = gw.connect(jwt).await;
                client.bound("public", &format!("idle.{i}")).await;
                client
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let opened = started.elapsed();
    let stats = gw.stats().await;
    assert_eq!(stats["sockets"], SOCKETS);
    assert_eq!(stats["subscriptions"], SOCKETS);
    println!(
        "gateway load: {SOCKETS} sockets connected, admitted and bound in {:.2} s ({:.0} sockets/s)",
        opened.as_secs_f64(),
        SOCKETS as f64 / opened.as_secs_f64()
    );
    let after = gw.resident_bytes().expect("the gateway's resident memory");
    let per_socket = after.saturating_sub(before) / SOCKETS as u64;
    println!(
        "gateway load: {} KiB resident per bound socket ({} MiB for {SOCKETS})",
        per_socket / 1024,
        after.saturating_sub(before) >> 20
    );
    // About 13 KiB measured; tungstenite's default read buffer alone would be 128 KiB.
    assert!(
        per_socket < SOCKET_BUDGET,
        "{per_socket} bytes per idle bound socket, over the budget of {SOCKET_BUDGET}"
    );

    for (run, fanout) in FANOUTS.into_iter().enumerate() {
        let readers = clients.drain(..fanout).collect();
        relay(&gw, readers, &format!("load{run}")).await;
    }
    drop(clients);
}

/// Publishes [`MESSAGES`] to `key.tick` while every one of `clients` reads them all.
async fn relay(gw: &Gateway, clients: Vec<gateway_support::Client>, key: &str) {
    let fanout = clients.len();
    let mut readers = Vec::new();
    for mut client in clients {
        client.bound("public", &format!("{key}.#")).await;
        readers.push(tokio::spawn(async move {
            let (mut got, mut missed) = (0u64, 0u64);
            while got + missed < MESSAGES as u64 {
                let frame = client.frame_within(Duration::from_secs(120)).await;
                match frame["lagged"]["missed"].as_u64() {
                    Some(n) => missed += n,
                    None => got += 1,
                }
            }
            (got, missed)
        }));
    }

    let started = Instant::now();
    for start in (0..MESSAGES).step_by(BATCH) {
        let batch: Vec<Value> = (start..start + BATCH)
            .map(|n| json!({"ex": "public", "key": format!("{key}.tick"), "msg": {"n": n}}))
            .collect();
        gw.publish_batch(Value::Array(batch)).await;
    }
    let published = started.elapsed();
    let (mut got, mut missed) = (0, 0);
    for reader in readers {
        let (g, m) = reader.await.expect("a reader");
        got += g;
        missed += m;
    }
    let relayed = started.elapsed();
    println!(
        "gateway load: {MESSAGES} messages published in {:.2} s ({:.0} msg/s in)",
        published.as_secs_f64(),
        MESSAGES as f64 / published.as_secs_f64()
    );
    println!(
        "gateway load: {got} frames delivered to {fanout} sockets in {:.2} s ({:.0} msg/s out), {missed} dropped as lag",
        relayed.as_secs_f64(),
        got as f64 / relayed.as_secs_f64()
    );
}

//! The gateway under hostile clients (issue 16 item 5): sockets that never read,
//! connections that never finish their request, one address that opens too many, and
//! a WebSocket peer that stops answering pings. Each test prints what it measured; run
//!
//! ```text
//! cargo test -p pubsub-gateway --test gateway_hostile -- --nocapture
//! ```

mod gateway_support;

use std::time::Duration;

use futures::StreamExt;
use gateway_support::{sample, token, within, Gateway, PATIENCE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The hostile clients' address, and two others: a new client's, and the test's own
/// for `/metrics` while the first is at its limit.
const HOSTILE: [u8; 4] = [127, 0, 0, 1];
const NEWCOMER: [u8; 4] = [127, 0, 0, 2];
const OBSERVER: [u8; 4] = [127, 0, 0, 3];

const PUBLIC: &str = "[exchanges.public]\naccess = \"public\"\n";

/// The messages of the never-reading test, and how many are published.
const BIG: usize = 256 * 1024;
const BIG_MESSAGES: usize = 300;
/// The growth of the gateway's resident memory allowed while 8 sockets never read.
const GROWTH_BUDGET: u64 = 64 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_read_hold_a_bounded_outbox_and_a_reader_still_gets_messages() {
    never_reading_sockets(Gateway::start(PUBLIC), "the in-process bus").await;
}

/// The same on RabbitMQ, where each bind is a queue of its own: each socket's outbox
/// holds copies of its own, not payloads shared with the other sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_read_hold_a_bounded_outbox_on_rabbitmq() {
    let node = tokio::task::spawn_blocking(pubsub_brokers::RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node");
    never_reading_sockets(Gateway::start_on(&node.url(), PUBLIC), "RabbitMQ").await;
}

/// 8 sockets of one user bound to messages of [`BIG`] bytes that they never read,
/// and a socket of another user that reads them all.
async fn never_reading_sockets(gw: Gateway, backend: &str) {
    let hog = token(json!({"sub": "hog"}));
    let mut hogs = Vec::new();
    for _ in 0..8 {
        let mut client = gw.connect(&hog).await;
        client.bound("public", "big.#").await;
        hogs.push(client);
    }
    let mut reader = gw.connect(&token(json!({"sub": "reader"}))).await;
    reader.bound("public", "big.#").await;
    let before = gw.resident_bytes().expect("the gateway's resident memory");

    // The reader reads everything as it comes, counting what was dropped for it.
    let reading = tokio::spawn(async move {
        let (mut got, mut missed, mut last) = (0u64, 0u64, 0u64);
        while got + missed < BIG_MESSAGES as u64 {
            let frame = reader.frame().await;
            match frame["lagged"]["missed"].as_u64() {
                Some(n) => missed += n,
                None => {
                    got += 1;
                    last = frame["msg"]["n"].as_u64().expect("a numbered message");
                }
            }
        }
        (got, missed, last)
    });
    let filler = "x".repeat(BIG);
    for n in 0..BIG_MESSAGES {
        gw.publish("public", "big.m", json!({"n": n, "filler": filler}))
            .await;
    }
    let (got, missed, last) = within("the reader's messages", reading)
        .await
        .expect("the reader");
    let after = gw.resident_bytes().expect("the gateway's resident memory");
    let growth = after.saturating_sub(before);
    println!(
        "gateway hostile on {backend}: 8 sockets that never read, {BIG_MESSAGES} messages of {} KiB: \
         resident {} -> {} MiB (+{:.1} MiB); the reading socket got {got}, {missed} dropped",
        BIG / 1024,
        before >> 20,
        after >> 20,
        growth as f64 / f64::from(1 << 20),
    );
    assert_eq!(
        last,
        BIG_MESSAGES as u64 - 1,
        "the reader got the last message"
    );
    assert!(
        growth < GROWTH_BUDGET,
        "the gateway grew by {growth} bytes, over {GROWTH_BUDGET}"
    );

    // A hog that reads at last finds a lag frame with the count of what it lost.
    let hog = &mut hogs[0];
    let lagged = within("a lag frame", async {
        loop {
            let frame: Value = hog.frame().await;
            if let Some(n) = frame["lagged"]["missed"].as_u64() {
                return n;
            }
        }
    })
    .await;
    assert!(lagged > 0, "a lag frame counts what was dropped");
}

/// What one slowloris connection saw: how long it was held open, and whether the
/// gateway answered 503 (refused) before it closed it.
struct Slowloris {
    open_for: Duration,
    answered: bool,
}

/// Connects from [`HOSTILE`] and, if `trickle`, sends a request line a byte every
/// 200 ms that never ends, else nothing; returns once the gateway closes it.
async fn slowloris(gw: &Gateway, trickle: bool) -> impl std::future::Future<Output = Slowloris> {
    let stream = gw.tcp_from(HOSTILE).await;
    let opened = Instant::now();
    async move {
        let (mut read, mut write) = stream.into_split();
        let request = b"GET /subscribe?jwt=slowly-slowly-slowly HTTP/1.1";
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let (mut sent, mut seen) = (0, Vec::new());
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                _ = tick.tick(), if trickle && sent < request.len() => {
                    if write.write_all(&request[sent..=sent]).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                n = read.read(&mut buf) => match n {
                    Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                    _ => break,
                },
            }
        }
        Slowloris {
            open_for: opened.elapsed(),
            answered: seen.starts_with(b"HTTP/1.1 503"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slowloris_connections_are_closed_and_a_new_client_still_connects() {
    const FILES: u64 = 1024;
    const SOCKETS: usize = 1000;
    let handshake = Duration::from_secs(3);
    let gw = Gateway::start_with_files(
        FILES,
        &format!(
            "[limits]\nhandshake_timeout_ms = {}\n\n{PUBLIC}",
            handshake.as_millis()
        ),
    );
    let before = gw.resident_bytes().expect("the gateway's resident memory");
    let mut held = Vec::new();
    for i in 0..SOCKETS {
        held.push(tokio::spawn(slowloris(&gw, i % 2 == 0).await));
    }
    // While they are held, a client from another address connects and binds.
    let mut newcomer = gw
        .connect_from(NEWCOMER, &token(json!({"sub": "newcomer"})))
        .await;
    newcomer.bound("public", "new.#").await;
    let metrics = gw.metrics_from(OBSERVER).await;
    let open = sample(&metrics, "gateway_connections", &[]).expect("the connections gauge");
    let during = gw.resident_bytes().expect("the gateway's resident memory");

    let mut seen = Vec::new();
    for task in held {
        seen.push(
            within("the gateway to close a slowloris", task)
                .await
                .expect("a slowloris"),
        );
    }
    let answered = seen.iter().filter(|s| s.answered).count();
    let longest = seen.iter().map(|s| s.open_for).max().unwrap_or_default();
    let metrics = gw.metrics_from(OBSERVER).await;
    let count = |name, label| sample(&metrics, name, &[label]).unwrap_or(0.0) as usize;
    let timed_out = count(
        "gateway_connections_closed_total",
        ("reason", "handshake_timeout"),
    );
    let refused = count("gateway_connections_refused_total", ("limit", "address"));
    println!(
        "gateway hostile: {SOCKETS} slowloris connections from one address, {FILES} files: \
         {timed_out} held and closed at the handshake timeout ({handshake:?}), {refused} \
         refused ({answered} of them answered 503 before the close), the longest held \
         {longest:?}; {open} connections open as a new client bound; resident {} -> {} MiB",
        before >> 20,
        during >> 20,
    );
    assert_eq!(timed_out + refused, SOCKETS, "{metrics}");
    assert!(
        answered <= refused,
        "{answered} answered 503, {refused} refused"
    );
    assert!(
        open >= 200.0,
        "the slowloris connections were held as the new client came: {open} open"
    );
    assert!(
        longest < handshake + Duration::from_secs(2),
        "a slowloris connection was held {longest:?}, with a handshake timeout of {handshake:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_limit_is_refused_at_once_and_another_still_connects() {
    const LIMIT: usize = 8;
    let gw = Gateway::start(&format!(
        "[limits]\nmax_connections_per_address = {LIMIT}\nmax_sockets_per_user = 100\n\n{PUBLIC}"
    ));
    let jwt = token(json!({"sub": "someone"}));
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(gw.connect_from(HOSTILE, &jwt).await);
    }
    let started = Instant::now();
    let mut over = gw.tcp_from(HOSTILE).await;
    let mut answer = String::new();
    within("the refusal", over.read_to_string(&mut answer))
        .await
        .expect("read the refusal");
    let answered = started.elapsed();
    println!(
        "gateway hostile: connection {} from one address refused in {answered:?}",
        LIMIT + 1
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.ends_with("too many connections from this address"),
        "{answer}"
    );
    assert!(
        answered < Duration::from_secs(1),
        "refused after {answered:?}"
    );

    let mut other = gw.connect_from(NEWCOMER, &jwt).await;
    other.bound("public", "other.#").await;
    let metrics = gw.metrics_from(OBSERVER).await;
    let refused = sample(
        &metrics,
        "gateway_connections_refused_total",
        &[("limit", "address")],
    );
    assert_eq!(refused, Some(1.0), "{metrics}");
    // A closed connection frees its place.
    held.pop().expect("a held socket").close().await;
    let mut again = within("a place freed", async {
        loop {
            let url = format!("ws://{}/subscribe?jwt={jwt}", gw.addr);
            let stream = gw.tcp_from(HOSTILE).await;
            let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
            if let Ok((ws, _)) = tokio_tungstenite::client_async(url, stream).await {
                return gateway_support::Client { ws };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    again.bound("public", "again.#").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_peer_that_stops_answering_pings_is_closed() {
    let idle = Duration::from_millis(1000);
    let gw = Gateway::start(&format!(
        "[limits]\nidle_timeout_ms = {}\n\n{PUBLIC}",
        idle.as_millis()
    ));
    let jwt = token(json!({"sub": "idle"}));
    // A peer that answers pings, as every WebSocket client does while it reads...
    let mut alive = gw.connect(&jwt).await;
    let answering = tokio::spawn(async move {
        let (mut pings, until) = (0, Instant::now() + 3 * idle);
        while let Ok(next) = tokio::time::timeout_at(until, alive.ws.next()).await {
            match next {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("the answering peer got {other:?}"),
            }
        }
        (alive, pings)
    });
    // ...and one that upgraded and then went silent: it never answers one.
    let mut silent = TcpStream::connect(&gw.addr).await.expect("connect");
    let upgrade = format!(
        "GET /subscribe?jwt={jwt} HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    silent
        .write_all(upgrade.as_bytes())
        .await
        .expect("send the upgrade");
    let started = Instant::now();
    let mut seen = Vec::new();
    within(
        "the silent peer to be closed",
        silent.read_to_end(&mut seen),
    )
    .await
    .expect("read until closed");
    let closed_after = started.elapsed();
    let seen = String::from_utf8_lossy(&seen);
    println!("gateway hostile: a silent WebSocket peer closed after {closed_after:?} (idle timeout {idle:?})");
    assert!(seen.starts_with("HTTP/1.1 101"), "{seen}");
    assert!(seen.contains("no answer to pings"), "{seen}");
    assert!(
        closed_after >= idle,
        "closed after {closed_after:?}, before {idle:?}"
    );

    // The one that answers was pinged and is still open, three timeouts later.
    let (mut alive, pings) = within("the answering peer", answering)
        .await
        .expect("the answering peer");
    assert!(pings >= 4, "{pings} pings");
    alive.bound("public", "still.#").await;
    let metrics = gw.metrics().await;
    let closed = sample(
        &metrics,
        "gateway_connections_closed_total",
        &[("reason", "no_pong")],
    );
    assert_eq!(closed, Some(1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_that_is_not_read_is_closed() {
    let gw = Gateway::start(&format!("[limits]\nidle_timeout_ms = 1000\n\n{PUBLIC}"));
    let jwt = token(json!({"sub": "stalled"}));
    let mut stream = TcpStream::connect(&gw.addr).await.expect("connect");
    let request =
        format!("GET /events?jwt={jwt}&bind=public:big.%23 HTTP/1.1\r\nHost: gateway\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    gw.wait_stats("the stream's bind", |s| s["subscriptions"] == 1)
        .await;
    // More than the socket buffers of both ends hold, so that writes wait; never read.
    let filler = "x".repeat(BIG);
    let deadline = Instant::now() + PATIENCE;
    while gw.stats().await["sockets"] == 1 {
        assert!(Instant::now() < deadline, "the stream was never closed");
        gw.publish("public", "big.m", json!({"filler": filler}))
            .await;
    }
    let metrics = gw.metrics().await;
    let stalled = sample(
        &metrics,
        "gateway_connections_closed_total",
        &[("reason", "writes_stalled")],
    );
    assert_eq!(stalled, Some(1.0), "{metrics}");
    drop(stream);
}

//! The gateway's rules over WebSocket, on the in-process bus: the gateway binary runs
//! with a configuration of each test's making, a tokio-tungstenite client talks to it,
//! and messages go in through `POST /publish`.

mod gateway_support;

use futures::SinkExt;
use gateway_support::{
    assert_relayed, publisher, rs256_token, sample, token, CheckServer, Gateway,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const EXCHANGES: &str = r#"
[exchanges.public]
access = "public"

[exchanges.instance]
access = "claim"
claim = "gids"
segment = 0

[exchanges.user]
access = "claim"
claim = "sub"
segment = 1
"#;

fn alice() -> String {
    token(json!({"sub": "alice", "gids": ["1", 7]}))
}

/// Publishes `denied` then `sentinel`, and checks that the next message is the
/// sentinel's: nothing of the denied key reached the socket. Together with the
/// subscription count this shows a refused bind subscribed to nothing.
async fn only_sentinel_arrives(
    gw: &Gateway,
    client: &mut gateway_support::Client,
    denied: (&str, &str),
    sentinel: (&str, &str),
) {
    gw.publish(denied.0, denied.1, json!("must not arrive"))
        .await;
    gw.publish(sentinel.0, sentinel.1, json!("sentinel")).await;
    assert_eq!(
        client.message().await,
        (sentinel.1.to_owned(), json!("sentinel"))
    );
}

#[tokio::test]
async fn hs256_and_rs256_tokens_are_accepted_and_messages_keep_brainlifes_frame() {
    let gw = Gateway::start(EXCHANGES);
    let mut hs = gw.connect(&alice()).await;
    let mut rs = gw
        .connect(&rs256_token(json!({"sub": "bob", "gids": ["2"]})))
        .await;
    hs.bound("public", "task.*.#").await;
    rs.bound("public", "task.#").await;

    let body = json!({"ex": "public", "key": "task.42.done", "msg": {"status": "finished"}, "headers": {"origin": "amaretti"}});
    gw.publish_batch(body).await;
    for client in [&mut hs, &mut rs] {
        let frame = client.frame().await;
        let headers = json!({"origin": "amaretti"});
        let msg = json!({"status": "finished"});
        assert_relayed(&frame, headers, "public", "task.42.done", msg);
    }
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_close_the_socket_with_a_reason() {
    let gw = Gateway::start(EXCHANGES);
    let past = gateway_support::unix_now() - 60;
    let future = gateway_support::unix_now() + 3600;
    let wrong_secret = gateway_support::sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not the secret"),
        json!({"sub": "alice"}),
    );
    // Algorithm confusion: HS256 "signed" with the RSA public key as the secret.
    let public_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/demo-rs256.pub.pem"
    ))
    .expect("the demo public key");
    let confused = gateway_support::sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        json!({"sub": "alice"}),
    );
    let cases = [
        ("", "missing token"),
        ("not.a.jwt", "invalid token: malformed"),
        (&*wrong_secret, "invalid token: bad signature"),
        (&*confused, "invalid token: bad signature"),
        (
            &*token(json!({"sub": "alice", "exp": past})),
            "invalid token: expired",
        ),
        (
            &*rs256_token(json!({"sub": "alice", "exp": past})),
            "invalid token: expired",
        ),
        (&*token(json!({"gids": ["1"]})), "no `sub` claim"),
        (
            &*token(json!({"sub": "alice", "nbf": future})),
            "invalid token: not valid yet",
        ),
        (
            &*token(json!({"sub": "alice", "iat": future})),
            "invalid token: issued in the future",
        ),
    ];
    for (bad, reason) in cases {
        let mut client = gw.connect(bad).await;
        let (code, why) = client.closed().await;
        assert_eq!(code, 4401, "{reason}");
        assert!(why.contains(reason), "expected {reason:?}, got {why:?}");
    }
    assert_eq!(gw.stats().await["sockets"], 0);
}

#[tokio::test]
async fn an_exchange_not_in_the_config_is_refused() {
    let gw = Gateway::start(EXCHANGES);
    let mut client = gw.connect(&alice()).await;
    client
        .refused("amaretti", "task.#", "unknown_exchange")
        .await;
    client.bound("public", "ok").await;
}

/// Amaretti's current `wf.task` and its 2016 `wf` side by side: joined, their keys
/// would read the same (`wf.task.1.2`).
const BRAINLIFE: &str = r#"
[exchanges."wf.task"]
access = "public"

[exchanges.wf]
access = "public"

[exchanges.instance]
access = "claim"
claim = "gids"
segment = 0
"#;

#[tokio::test]
async fn brainlifes_binds_get_no_answer_and_dotted_exchanges_stay_apart() {
    let gw = Gateway::start(BRAINLIFE);
    let mut client = gw.connect(&alice()).await;
    // As brainlife's browsers send them: no `ack`, so no `bound` frame, and nothing
    // at all for an exchange that is not configured.
    client.bind("amaretti", "#").await;
    client.bind("wf.task", "#").await;
    client.bind("wf", "task.#").await;
    client.bind("instance", "9.#").await;
    let denied = client.frame().await;
    assert_eq!(denied["error"], "Access denided instance", "{denied}");
    gw.wait_stats("both binds live", |s| s["subscriptions"] == 2)
        .await;
    let logged = gw.log();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("not configured") && l.contains("amaretti")),
        "the unconfigured exchange is logged: {logged:?}"
    );

    gw.publish("wf.task", "1.2", json!({"_id": "2", "layout": "current"}))
        .await;
    gw.publish("wf", "task.1.2", json!({"_id": "2", "layout": "2016"}))
        .await;
    let mut frames = [client.frame().await, client.frame().await];
    frames.sort_by_key(|f| f["dinfo"]["exchange"].as_str().map(str::to_owned));
    let current = json!({"_id": "2", "layout": "current"});
    assert_relayed(
        &frames[0],
        json!({}),
        "wf",
        "task.1.2",
        json!({"_id": "2", "layout": "2016"}),
    );
    assert_relayed(&frames[1], json!({}), "wf.task", "1.2", current);
    // Each went to its own bind only: the next frame is the sentinel, not a copy.
    gw.publish("wf.task", "sentinel", json!("sentinel")).await;
    assert_eq!(
        client.message().await,
        ("sentinel".to_owned(), json!("sentinel"))
    );
}

#[tokio::test]
async fn claim_policy_allows_only_the_tokens_groups_and_no_wildcard_in_their_place() {
    let gw = Gateway::start(EXCHANGES);
    let mut client = gw.connect(&alice()).await;
    client.bound("instance", "1.#").await;
    client.bound("instance", "7.task.*").await; // a number in the claim matches its text
    for key in ["9.#", "*.#", "#", "#.1", "#.1.#", "10"] {
        client.refused("instance", key, "denied").await;
    }
    // Inthe.AM's `<kind>.<username>`: only one's own channels.
    client.bound("user", "changed_task.alice").await;
    client.bound("user", "*.alice").await;
    client.refused("user", "changed_task.bob", "denied").await;
    client.refused("user", "changed_task.*", "denied").await;
    client.refused("user", "#", "denied").await;
    assert_eq!(gw.stats().await["subscriptions"], 4);

    only_sentinel_arrives(&gw, &mut client, ("instance", "9.x"), ("instance", "1.x")).await;
    only_sentinel_arrives(
        &gw,
        &mut client,
        ("user", "changed_task.bob"),
        ("user", "changed_task.alice"),
    )
    .await;
}

const HTTP_CHECKED: &str = r#"
[exchanges.wf]
access = "http"
url = "URL"
literal_segments = 2

[exchanges.public]
access = "public"
"#;

#[tokio::test]
async fn http_policy_asks_the_url_with_the_users_token_and_a_pattern_cannot_widen_access() {
    let alice = alice();
    let expected = format!("Bearer {alice}");
    let check = CheckServer::start(move |auth, key| {
        auth == expected && (key == "task.A.#" || key.starts_with("task.A."))
    })
    .await;
    let gw = Gateway::start(&HTTP_CHECKED.replace("URL", &check.url));
    let mut client = gw.connect(&alice).await;

    client.bound("wf", "task.A.#").await;
    // Allowed `task.A.#` gets nothing from `task.B.*`: the check refuses it...
    client.refused("wf", "task.B.*", "denied").await;
    // ...and wildcards where the checked id goes never reach the check.
    for key in ["task.*.#", "#", "task.#", "*.A.#"] {
        client.refused("wf", key, "denied").await;
    }
    // Nor do keys that a URL cannot carry, which would ask the check's bare URL.
    for key in [".", ".."] {
        client.refused("wf", key, "denied").await;
    }
    assert_eq!(check.keys(), ["task.A.#", "task.B.*"]);
    assert_eq!(
        check.asked.lock().unwrap()[0].0,
        format!("Bearer {alice}"),
        "the check receives the user's token"
    );
    assert_eq!(gw.stats().await["subscriptions"], 1);
    only_sentinel_arrives(&gw, &mut client, ("wf", "task.B.x"), ("wf", "task.A.x")).await;

    // Another user's token: the same key is refused.
    let mut mallory = gw.connect(&token(json!({"sub": "mallory"}))).await;
    mallory.refused("wf", "task.A.#", "denied").await;
}

#[tokio::test]
async fn an_unreachable_access_check_refuses_the_bind() {
    let gw = Gateway::start(&HTTP_CHECKED.replace("URL", "http://127.0.0.1:9/check"));
    let mut client = gw.connect(&alice()).await;
    let frame = client.refused("wf", "task.A.#", "check_failed").await;
    assert_eq!(frame["error"], "Access denided wf");
    assert!(frame["reason"]
        .as_str()
        .is_some_and(|m| m.contains("access check failed")));
    assert_eq!(gw.stats().await["subscriptions"], 0);
}

#[tokio::test]
async fn malformed_frames_get_an_error_frame_and_the_socket_goes_on() {
    let gw = Gateway::start(EXCHANGES);
    let mut client = gw.connect(&alice()).await;
    for bad in [
        "not json",
        "{}",
        r#"{"bind":{"ex":"public"}}"#,
        r#"{"bind":{"ex":"public","key":"a","extra":1}}"#,
        r#"{"subscribe":"everything"}"#,
        r#"{"bind":"public:#"}"#,
        "[1,2,3]",
    ] {
        client.send_text(bad).await;
        let frame = client.frame().await;
        assert_eq!(frame["code"], "malformed", "{bad}: {frame}");
    }
    client
        .ws
        .send(Message::binary(vec![0u8, 1, 2]))
        .await
        .expect("send binary");
    assert_eq!(client.frame().await["code"], "malformed");
    for bad_key in ["has space", "", "a\tb"] {
        client.refused("public", bad_key, "invalid_key").await;
    }
    client.bound("public", "still.alive").await;
}

#[tokio::test]
async fn frames_over_the_size_limit_are_refused() {
    let gw = Gateway::start(&format!("[limits]\nmax_frame_bytes = 200\n{EXCHANGES}"));
    let mut client = gw.connect(&alice()).await;
    let long_key = format!("a.{}", "b".repeat(300));
    client.bind("public", &long_key).await;
    let frame = client.frame().await;
    assert_eq!(frame["code"], "frame_too_large", "{frame}");
    client.bound("public", "after.the.big.one").await;

    // Far over the limit the frame is not even read: the socket is closed.
    client.send_text(&"x".repeat(200 * 16 + 1)).await;
    let (code, reason) = client.closed().await;
    assert_eq!(code, 1008);
    assert!(reason.contains("unreadable frame"), "{reason}");
    gw.wait_stats("socket released", |s| {
        s["sockets"] == 0 && s["subscriptions"] == 0
    })
    .await;
}

#[tokio::test]
async fn binds_per_socket_are_limited_and_duplicates_refused() {
    let gw = Gateway::start(&format!("[limits]\nmax_binds_per_socket = 2\n{EXCHANGES}"));
    let mut client = gw.connect(&alice()).await;
    client.bound("public", "a").await;
    client.refused("public", "a", "duplicate").await;
    client.bound("public", "b").await;
    client.refused("public", "c", "too_many_binds").await;
    // The limit is per socket.
    let mut other = gw.connect(&alice()).await;
    other.bound("public", "c").await;
}

#[tokio::test]
async fn sockets_per_user_are_limited_and_freed_on_close() {
    let gw = Gateway::start(&format!("[limits]\nmax_sockets_per_user = 2\n{EXCHANGES}"));
    let first = gw.connect(&alice()).await;
    let mut second = gw.connect(&alice()).await;
    second.bound("public", "x").await;
    let mut third = gw.connect(&alice()).await;
    let (code, reason) = third.closed().await;
    assert_eq!(code, 4429);
    assert!(reason.contains("too many sockets"), "{reason}");
    // Other users are not affected.
    let mut bob = gw.connect(&token(json!({"sub": "bob"}))).await;
    bob.bound("public", "x").await;

    first.close().await;
    gw.wait_stats("a place is freed", |s| s["sockets"] == 2)
        .await;
    let mut again = gw.connect(&alice()).await;
    again.bound("public", "y").await;
}

#[tokio::test]
async fn the_subscription_is_released_when_the_socket_closes() {
    let gw = Gateway::start(EXCHANGES);
    let mut client = gw.connect(&alice()).await;
    client.bound("public", "a.#").await;
    client.bound("instance", "1.#").await;
    assert_eq!(gw.stats().await["subscriptions"], 2);
    client.close().await;
    gw.wait_stats("released", |s| s["sockets"] == 0 && s["subscriptions"] == 0)
        .await;

    // A socket dropped without a close frame too.
    let mut client = gw.connect(&alice()).await;
    client.bound("public", "a.#").await;
    drop(client);
    gw.wait_stats("released after a drop", |s| {
        s["sockets"] == 0 && s["subscriptions"] == 0
    })
    .await;
}

#[tokio::test]
async fn a_socket_closed_while_its_bind_is_checked_leaves_no_subscription() {
    let alice = alice();
    let mut check = CheckServer::held(|_, _| true).await;
    let gw = Gateway::start(&HTTP_CHECKED.replace("URL", &check.url));
    let mut client = gw.connect(&alice).await;
    client.bind("wf", "task.A.#").await;
    let asked = gateway_support::within("the check is asked", check.arrivals.recv()).await;
    assert_eq!(asked.as_deref(), Some("task.A.#"));
    assert_eq!(gw.stats().await["binds_pending"], 1);

    client.close().await;
    gw.wait_stats("socket gone", |s| s["sockets"] == 0).await;
    check.gate.add_permits(1); // the check now answers "ok", too late
    let stats = gw
        .wait_stats("bind finished", |s| s["binds_pending"] == 0)
        .await;
    assert_eq!(stats["subscriptions"], 0, "{stats}");
    // And the bus holds no subscriber: a publish is delivered to nobody.
    let mut watcher = gw.connect(&token(json!({"sub": "watcher"}))).await;
    watcher.bound("public", "z").await;
    assert_eq!(gw.stats().await["subscriptions"], 1);
}

#[tokio::test]
async fn a_slow_socket_lags_with_a_count_and_does_not_slow_the_others() {
    const MESSAGES: usize = 400;
    const BATCH: usize = 10;
    let gw = Gateway::start(&format!("[limits]\nsocket_buffer = 64\n{EXCHANGES}"));

    // A client that reads nothing, with a small receive buffer so the kernel holds
    // little for it.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let stream = socket
        .connect(gw.addr.parse().expect("address"))
        .await
        .expect("connect");
    let url = format!("ws://{}/subscribe?jwt={}", gw.addr, alice());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake");
    let mut slow = gateway_support::Client { ws };
    slow.bound("public", "load.#").await;

    let mut fast = gw.connect(&token(json!({"sub": "bob"}))).await;
    fast.bound("public", "load.#").await;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < MESSAGES {
            let frame = fast.frame().await;
            assert!(
                frame.get("lagged").is_none(),
                "the fast socket lagged: {frame}"
            );
            seen.push(frame["msg"]["n"].as_u64().expect("n"));
        }
        // Kept open for the metrics at the end.
        (seen, fast)
    });

    let filler = "x".repeat(32 * 1024);
    for start in (0..MESSAGES).step_by(BATCH) {
        let batch: Vec<Value> = (start..start + BATCH)
            .map(|n| json!({"ex": "public", "key": "load.big", "msg": {"n": n, "fill": filler}}))
            .collect();
        gw.publish_batch(Value::Array(batch)).await;
    }
    let (seen, _fast) = gateway_support::within("the fast socket reads all", reader)
        .await
        .expect("reader");
    assert_eq!(seen, (0..MESSAGES as u64).collect::<Vec<_>>());

    // Now the slow one reads: what it got plus what it was told it missed is all,
    // in order, with at least one lag report.
    let mut got = Vec::new();
    let (mut missed, mut lag_frames) = (0, 0);
    while got.len() as u64 + missed < MESSAGES as u64 {
        let frame = slow.frame().await;
        if let Some(n) = frame["lagged"]["missed"].as_u64() {
            missed += n;
            lag_frames += 1;
        } else {
            got.push(frame["msg"]["n"].as_u64().expect("a message"));
        }
    }
    assert!(missed > 0, "the slow socket never lagged");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    assert!(got.len() >= 64, "the buffer's worth arrives: {}", got.len());

    // The Prometheus endpoint counted the same: every frame written (a `bound` frame
    // and the messages for each socket, and the slow one's lag reports), every
    // message dropped, the sockets and binds open, and the library's publishes.
    let metrics = gw.metrics().await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&metrics, name, labels).unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let frames = (1 + MESSAGES) + (1 + got.len() + lag_frames);
    assert_eq!(value("gateway_frames_out_total", &[]), frames as f64);
    assert_eq!(value("gateway_frames_dropped_total", &[]), missed as f64);
    assert_eq!(value("gateway_sockets", &[]), 2.0);
    assert_eq!(value("gateway_binds", &[]), 2.0);
    let published = [("destination", "load.big")];
    assert_eq!(value("pubsub_published_total", &published), MESSAGES as f64);
}

#[tokio::test]
async fn the_publish_endpoint_needs_the_publisher_claim() {
    let gw = Gateway::start(EXCHANGES);
    let http = reqwest::Client::new();
    let body = json!({"ex": "public", "key": "a", "msg": 1});
    for (jwt, status) in [(alice(), 403), ("bad".to_owned(), 401), (publisher(), 204)] {
        let response = http
            .post(gw.url(&format!("/publish?jwt={jwt}")))
            .json(&body)
            .send()
            .await
            .expect("POST /publish");
        assert_eq!(response.status().as_u16(), status);
    }
    let unknown = json!({"ex": "nope", "key": "a", "msg": 1});
    let response = http
        .post(gw.url(&format!("/publish?jwt={}", publisher())))
        .json(&unknown)
        .send()
        .await
        .expect("POST /publish");
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn the_demo_page_is_served() {
    let gw = Gateway::start(EXCHANGES);
    let page = reqwest::get(gw.url("/")).await.expect("GET /");
    assert!(page
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/html")));
    let text = page.text().await.expect("body");
    assert!(text.contains("<script src=\"app.js\">"));
    let script = reqwest::get(gw.url("/app.js"))
        .await
        .expect("GET /app.js")
        .text()
        .await
        .expect("body");
    assert!(script.contains("/subscribe?jwt="));
}

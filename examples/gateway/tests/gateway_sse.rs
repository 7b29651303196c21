//! The gateway's Server-Sent Events endpoint, on the in-process bus: the same frames
//! as the WebSocket, a heartbeat, and the same admission rules.

mod gateway_support;

use gateway_support::{assert_relayed, token, within, Gateway};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[limits]
heartbeat_seconds = 1
max_sockets_per_user = 1

[exchanges.public]
access = "public"

[exchanges.instance]
access = "claim"
claim = "gids"
segment = 0
"#;

fn alice() -> String {
    token(json!({"sub": "alice", "gids": ["1"]}))
}

/// Reads an SSE response line by line.
struct Events {
    response: reqwest::Response,
    pending: String,
}

enum Line {
    Data(Value),
    Comment(String),
}

impl Events {
    async fn open(gw: &Gateway, query: &str) -> Events {
        let response = within(
            "GET /events",
            reqwest::get(gw.url(&format!("/events?{query}"))),
        )
        .await
        .expect("GET /events");
        assert_eq!(response.status().as_u16(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default();
        assert_eq!(kind, "text/event-stream");
        Events {
            response,
            pending: String::new(),
        }
    }

    async fn line(&mut self) -> Line {
        loop {
            if let Some(end) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=end).collect();
                let line = line.trim_end();
                if let Some(data) = line.strip_prefix("data: ") {
                    return Line::Data(serde_json::from_str(data).expect("data is JSON"));
                }
                if let Some(comment) = line.strip_prefix(':') {
                    return Line::Comment(comment.trim().to_owned());
                }
                continue; // blank lines end events; `event:` lines are not used
            }
            let chunk = within("an SSE chunk", self.response.chunk())
                .await
                .expect("read the stream")
                .expect("the stream goes on");
            self.pending
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    async fn data(&mut self) -> Value {
        loop {
            if let Line::Data(frame) = self.line().await {
                return frame;
            }
        }
    }
}

#[tokio::test]
async fn sse_relays_the_websocket_frames_and_sends_heartbeats() {
    let gw = Gateway::start(CONFIG);
    let query = format!("jwt={}&bind=public:task.%23&bind=instance:9.%23", alice());
    let mut events = Events::open(&gw, &query).await;
    let mut first = [events.data().await, events.data().await];
    first.sort_by_key(|f| f.get("error").is_some());
    assert_eq!(
        first[0],
        json!({"bound": {"ex": "public", "key": "task.#"}})
    );
    assert_eq!(first[1]["code"], "denied");
    assert_eq!(first[1]["error"], "Access denided instance");
    assert_eq!(first[1]["bind"], json!({"ex": "instance", "key": "9.#"}));

    gw.publish("instance", "9.x", json!("must not arrive"))
        .await;
    gw.publish("public", "task.1.done", json!({"status": "finished"}))
        .await;
    let msg = json!({"status": "finished"});
    assert_relayed(
        &events.data().await,
        json!({}),
        "public",
        "task.1.done",
        msg,
    );
    // The heartbeat is a comment line, every second here.
    loop {
        if let Line::Comment(text) = events.line().await {
            assert_eq!(text, "heartbeat");
            break;
        }
    }
    assert_eq!(gw.stats().await["subscriptions"], 1);

    drop(events);
    gw.wait_stats("stream closed", |s| {
        s["sockets"] == 0 && s["subscriptions"] == 0
    })
    .await;
}

#[tokio::test]
async fn sse_refuses_bad_tokens_missing_binds_and_too_many_streams() {
    let gw = Gateway::start(CONFIG);
    let expired = token(json!({"sub": "alice", "exp": gateway_support::unix_now() - 60}));
    let early = token(json!({"sub": "alice", "nbf": gateway_support::unix_now() + 3600}));
    for (query, status, why) in [
        ("bind=public:a".to_owned(), 401, "missing token"),
        (format!("jwt={expired}&bind=public:a"), 401, "expired"),
        (format!("jwt={early}&bind=public:a"), 401, "not valid yet"),
        (format!("jwt={}", alice()), 400, "at least one bind"),
        (format!("jwt={}&bind=public", alice()), 400, "exchange:key"),
    ] {
        let response = reqwest::get(gw.url(&format!("/events?{query}")))
            .await
            .expect("GET /events");
        assert_eq!(response.status().as_u16(), status, "{query}");
        let body = response.text().await.expect("body");
        assert!(body.contains(why), "{query}: {body}");
    }
    let _open = Events::open(&gw, &format!("jwt={}&bind=public:a", alice())).await;
    let response = reqwest::get(gw.url(&format!("/events?jwt={}&bind=public:a", alice())))
        .await
        .expect("GET /events");
    assert_eq!(response.status().as_u16(), 429);
}

//! Running the gateway: Ctrl-C and SIGTERM close every socket and stop it cleanly, an
//! address in use is named, `--log-format json` writes one JSON object per line, and
//! the broker's password is never printed.

mod gateway_support;

use futures::StreamExt;
use gateway_support::{command, token, within, Gateway};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const PUBLIC: &str = "[exchanges.public]\naccess = \"public\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_closes_every_socket_and_the_gateway_exits_cleanly() {
    let mut gw = Gateway::start(PUBLIC);
    let alice = token(json!({"sub": "alice"}));
    let mut ws = gw.connect(&alice).await;
    ws.bound("public", "a.#").await;
    // An SSE stream that stays open: the server cannot stop until it ends too.
    let url = gw.url(&format!("/events?jwt={alice}&bind=public:b.%23"));
    let mut sse = within("the SSE stream", reqwest::get(url))
        .await
        .expect("GET /events");
    let first = within("the SSE bound frame", sse.chunk())
        .await
        .expect("bytes");
    assert!(first.is_some_and(|c| String::from_utf8_lossy(&c).contains("bound")));

    let status = tokio::task::block_in_place(|| gw.stop_with("INT"));
    assert!(status.success(), "exit status {status}");
    match within("the close frame", ws.ws.next()).await {
        Some(Ok(Message::Close(Some(close)))) => {
            assert_eq!(close.code, CloseCode::Away);
            assert_eq!(close.reason, "the gateway is shutting down");
        }
        other => panic!("a close frame, got {other:?}"),
    }
    let log = gw.log().join("\n");
    assert!(log.contains("gateway stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_it_too() {
    let mut gw = Gateway::start(PUBLIC);
    let status = tokio::task::block_in_place(|| gw.stop_with("TERM"));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn an_address_in_use_is_named_in_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("its address").to_string();
    let (_dir, mut gateway) = command("memory://", PUBLIC, &["--listen", &address]);
    let output = within("the gateway to give up", async {
        tokio::task::spawn_blocking(move || gateway.output()).await
    })
    .await
    .expect("the waiting thread")
    .expect("run the gateway");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "it says what to do: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let mut gw = Gateway::start_with("memory://", PUBLIC, &["--log-format", "json"]);
    let status = tokio::task::block_in_place(|| gw.stop_with("INT"));
    assert!(status.success());
    let lines: Vec<Value> = gw
        .log()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "gateway listening")
        .unwrap_or_else(|| panic!("a listening line among {lines:?}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["address"], gw.addr);
}

#[tokio::test]
async fn a_broker_password_is_never_printed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let backend = format!("amqp://app:s3cret-pw@127.0.0.1:{closed}/%2f");
    let (_dir, mut gateway) = command(&backend, PUBLIC, &[]);
    let output = within("the gateway to give up", async {
        tokio::task::spawn_blocking(move || gateway.output()).await
    })
    .await
    .expect("the waiting thread")
    .expect("run the gateway");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("127.0.0.1:{closed}")),
        "{printed}"
    );
    assert!(!printed.contains("s3cret-pw"), "{printed}");
}

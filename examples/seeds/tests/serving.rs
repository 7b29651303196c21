//! `intheam --serve` as a user runs it: it says where its stream is and how to feed
//! it, serves what another program publishes, says so when it gives up on a bad
//! message, keeps serving, and ends on Ctrl-C.

use std::process::Stdio;
use std::time::Duration;

use pubsub_brokers::RedisServer;
use pubsub_connect::connect;
use pubsub_core::testkit::support::within;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

#[tokio::test]
async fn intheam_serves_its_status_stream_until_interrupted() {
    let server = RedisServer::start();
    let url = server.url();
    let mut program = Command::new(env!("CARGO_BIN_EXE_intheam"))
        .args(["--serve", "127.0.0.1:0", "--url", &url, "--heartbeat", "1h"])
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(program.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    while said.last().map(String::as_str) != Some("serving until Ctrl-C") {
        let line = within("the program's banner", stdout.next_line())
            .await
            .unwrap();
        said.push(line.expect("a banner line before serving"));
    }
    let stream_line = &said[0];
    let address = stream_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("an address in {stream_line:?}"))
        .to_owned();
    assert!(stream_line.ends_with("/status/alice"), "{stream_line}");
    let hint = &said[1];
    assert!(
        hint.starts_with("feed it: `pubsub --url redis://127.0.0.1:")
            && hint.contains("pub personal.alice"),
        "{hint}"
    );

    let mut http = TcpStream::connect(&address).await.unwrap();
    http.write_all(b"GET /status/alice HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut events = BufReader::new(http).lines();
    let status = within("the stream's response", events.next_line())
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    // Another program publishes on the same Redis, again and again until the stream
    // (subscribed once its response began) shows it.
    let publisher = connect(&url).await.unwrap();
    let seen = within("the published event on the stream", async {
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    publisher
                        .topic("personal.alice")
                        .publish(&serde_json::json!({"title": "Hi", "message": "fed", "username": "alice"}))
                        .await
                        .unwrap();
                }
                line = events.next_line() => {
                    let line = line.unwrap().expect("the stream goes on");
                    if line.starts_with("data:") && line.contains("alice") {
                        break line;
                    }
                }
            }
        }
    })
    .await;
    assert!(seen.contains("alice"), "{seen}");

    // A sync message the listener cannot read is given up, in the log, not in silence.
    let mut logs = BufReader::new(program.stderr.take().unwrap()).lines();
    publisher
        .topic("sync.alice")
        .publish_message("not JSON".into())
        .await
        .unwrap();
    let given_up: serde_json::Value = within("the give-up in the log", async {
        loop {
            let line = logs.next_line().await.unwrap().expect("the log goes on");
            let entry: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("a JSON log line, not {line:?}: {e}"));
            if entry["fields"]["message"] == "handler failed, message given up" {
                break entry;
            }
        }
    })
    .await;
    assert_eq!(given_up["level"], "ERROR");
    assert_eq!(given_up["fields"]["topic"], "sync.alice");
    assert!(program.try_wait().unwrap().is_none(), "still serving");

    let pid = program.id().expect("a running program").to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = within("the program to end on Ctrl-C", program.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

//! The `pubsub` tool: in-process through its `run`, and as the binary a user runs.

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use pubsub_examples::cli::{run, Cli};
use pubsub_examples::{connect, demo};
use serde_json::Value;

async fn pubsub(args: &[&str]) -> pubsub_core::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("pubsub").chain(args.iter().copied()))
        .expect("valid arguments");
    let mut out = Vec::new();
    demo::within("the pubsub tool", run(cli, &mut out)).await??;
    Ok(String::from_utf8(out).expect("UTF-8 output"))
}

/// The tool prints pretty JSON documents one after another.
fn documents(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("JSON output")
}

fn memory_url() -> String {
    format!("memory://cli-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn pub_then_sub_in_a_group_prints_headers_priority_and_json() {
    let url = memory_url();
    // A group queue keeps messages for members to come, so publish first.
    let bus = connect(&url).await.unwrap();
    bus.topic("orders.*")
        .subscribe_group("billing")
        .await
        .unwrap()
        .unsubscribe()
        .await
        .unwrap();
    pubsub(&[
        "--url",
        &url,
        "pub",
        "orders.created",
        r#"{"id":1}"#,
        "-H",
        "source=cli",
        "--priority",
        "3",
    ])
    .await
    .unwrap();
    pubsub(&["--url", &url, "pub", "orders.paid", "plain text"])
        .await
        .unwrap();

    let out = pubsub(&[
        "--url", &url, "sub", "orders.*", "--group", "billing", "--count", "2",
    ])
    .await
    .unwrap();
    let docs = documents(&out);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["topic"], "orders.created");
    assert_eq!(docs[0]["payload"]["id"], 1);
    assert_eq!(docs[0]["headers"]["source"], "cli");
    assert_eq!(docs[0]["priority"], 3);
    assert_eq!(docs[1]["payload"], "plain text");
    assert!(out.contains("\n  \"topic\""), "pretty-printed: {out}");
}

#[tokio::test]
async fn request_prints_the_reply_and_times_out_without_one() {
    let url = memory_url();
    let bus = connect(&url).await.unwrap();
    let mut echo = bus.topic("send.echo.request").subscribe().await.unwrap();
    let responder = tokio::spawn(async move {
        let request = echo.next().await.unwrap().unwrap();
        let text: Value = request.json().unwrap();
        request
            .reply(&serde_json::json!({"response": text["message"]}))
            .await
            .unwrap();
        echo
    });
    let out = pubsub(&[
        "--url",
        &url,
        "request",
        "send.echo.request",
        r#"{"message":"ping"}"#,
        "--timeout",
        "5s",
    ])
    .await
    .unwrap();
    assert_eq!(documents(&out)[0]["payload"]["response"], "ping");

    // The responder still listens but answers no more.
    let _silent = responder.await.unwrap();
    let error = pubsub(&[
        "--url",
        &url,
        "request",
        "send.echo.request",
        "{}",
        "--timeout",
        "200ms",
    ])
    .await
    .unwrap_err();
    assert!(
        matches!(error, pubsub_core::Error::Timeout { after, .. } if after == Duration::from_millis(200))
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let invalid_url = pubsub(&["--url", "kafka://localhost", "pub", "a", "b"])
        .await
        .unwrap_err();
    assert!(
        matches!(invalid_url, pubsub_core::Error::InvalidUrl(_)),
        "{invalid_url}"
    );
    let pattern = pubsub(&["pub", "orders.*", "x"]).await.unwrap_err();
    assert!(
        matches!(pattern, pubsub_core::Error::InvalidTopic { .. }),
        "{pattern}"
    );
    let priority = pubsub(&["pub", "orders.x", "x", "--priority", "12"])
        .await
        .unwrap_err();
    assert!(
        matches!(priority, pubsub_core::Error::InvalidPriority(12)),
        "{priority}"
    );
    assert!(Cli::try_parse_from(["pubsub", "pub", "a", "b", "-H", "novalue"]).is_err());
    assert!(Cli::try_parse_from(["pubsub", "request", "a", "b", "--timeout", "soon"]).is_err());
}

#[test]
fn the_binary_reports_errors_on_stderr_with_a_failing_exit_code() {
    let output = Command::new(env!("CARGO_BIN_EXE_pubsub"))
        .args(["--url", "kafka://localhost", "pub", "a", "b"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: invalid URL"), "{stderr}");
}

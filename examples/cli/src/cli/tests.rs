//! The tool in-process, where one `memory://` bus is shared by the test and the tool.

use std::time::Duration;

use clap::Parser;
use pubsub_connect::connect;
use pubsub_core::testkit::support::{next, unique, within};
use pubsub_core::Error;
use serde_json::Value;

use super::{run, Cli};

async fn pubsub(args: &[&str]) -> pubsub_core::Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("pubsub").chain(args.iter().copied()))
        .expect("valid arguments");
    let mut out = Vec::new();
    within("the pubsub tool", run(cli, &mut out)).await?;
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
    format!("memory://{}", unique("cli"))
}

#[tokio::test]
async fn pub_then_sub_in_a_group_prints_headers_priority_and_json() {
    let url = memory_url();
    // A group queue keeps messages for members to come: make it, then publish.
    let bus = connect(&url).await.unwrap();
    bus.topic("orders.*")
        .subscribe_group("billing")
        .await
        .unwrap()
        .unsubscribe()
        .await
        .unwrap();
    let published = pubsub(&[
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
    assert_eq!(documents(&published)[0]["published"], "orders.created");
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
    assert_eq!(docs[0]["attempt"], 1);
    assert_eq!(docs[1]["payload"], "plain text");
    assert!(out.contains("\n  \"topic\""), "pretty-printed: {out}");
}

#[tokio::test]
async fn request_prints_the_reply_and_times_out_without_one() {
    let url = memory_url();
    let bus = connect(&url).await.unwrap();
    let mut echo = bus.topic("send.echo.request").subscribe().await.unwrap();
    let responder = tokio::spawn(async move {
        let request = next(&mut echo, "the tool's request").await;
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
        matches!(error, Error::Timeout { after, .. } if after == Duration::from_millis(200)),
        "{error}"
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let invalid_url = pubsub(&["--url", "kafka://localhost", "pub", "a", "b"])
        .await
        .unwrap_err();
    assert!(matches!(invalid_url, Error::InvalidUrl(_)), "{invalid_url}");
    let pattern = pubsub(&["pub", "orders.*", "x"]).await.unwrap_err();
    assert!(matches!(pattern, Error::InvalidTopic { .. }), "{pattern}");
    let priority = pubsub(&["pub", "orders.x", "x", "--priority", "12"])
        .await
        .unwrap_err();
    assert!(matches!(priority, Error::InvalidPriority(12)), "{priority}");
    assert!(Cli::try_parse_from(["pubsub", "pub", "a", "b", "-H", "novalue"]).is_err());
    assert!(Cli::try_parse_from(["pubsub", "request", "a", "b", "--timeout", "soon"]).is_err());
}

//! The tool in-process, where one `memory://` bus is shared by the test and the tool.

use std::time::Duration;

use clap::Parser;
use pubsub_connect::connect;
use pubsub_core::testkit::support::{next, unique, within};
use pubsub_core::Error;
use serde_json::Value;

use super::{run, Cli, CliError};

async fn pubsub(args: &[&str]) -> super::Result<String> {
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
        matches!(error, CliError::Bus(Error::Timeout { after, .. }) if after == Duration::from_millis(200)),
        "{error}"
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let invalid_url = pubsub(&["--url", "kafka://localhost", "pub", "a", "b"])
        .await
        .unwrap_err();
    assert!(
        matches!(invalid_url, CliError::Bus(Error::InvalidUrl(_))),
        "{invalid_url}"
    );
    let pattern = pubsub(&["--url", "memory://", "pub", "orders.*", "x"])
        .await
        .unwrap_err();
    assert!(
        matches!(pattern, CliError::Bus(Error::InvalidTopic { .. })),
        "{pattern}"
    );
    let missing = pubsub(&[
        "--url",
        "memory://",
        "pub",
        "orders.x",
        "@/nonexistent/payload.json",
    ])
    .await
    .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "reading the payload from /nonexistent/payload.json"
    );
    assert!(Cli::try_parse_from(["pubsub", "pub", "a", "b", "-H", "novalue"]).is_err());
    assert!(Cli::try_parse_from(["pubsub", "request", "a", "b", "--timeout", "soon"]).is_err());
}

/// The help and the error say the same words, and the bus's own.
#[test]
fn priorities_are_refused_in_the_words_of_the_help() {
    for bad in ["12", "256", "high"] {
        let error =
            Cli::try_parse_from(["pubsub", "pub", "a", "b", "--priority", bad]).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "invalid priority {bad}: priorities go from 0 to 9"
            )),
            "{text}"
        );
    }
    assert_eq!(
        Error::InvalidPriority(12).to_string(),
        "invalid priority 12: priorities go from 0 to 9"
    );
    let help = Cli::try_parse_from(["pubsub", "pub", "--help"])
        .unwrap_err()
        .to_string();
    assert!(help.contains("priorities go from 0 to 9"), "{help}");
}

#[test]
fn group_names_are_checked_and_named() {
    let error = Cli::try_parse_from(["pubsub", "sub", "a.b", "--group", "git agents"]).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("group git agents"), "{text}");
    assert!(Cli::try_parse_from(["pubsub", "sub", "a.b", "--group", "git-agents"]).is_ok());
}

#[tokio::test]
async fn payloads_come_from_a_file_and_binary_ones_print_losslessly() {
    let url = memory_url();
    let bus = connect(&url).await.unwrap();
    let mut group = bus
        .topic("blobs.*")
        .subscribe_group("keepers")
        .await
        .unwrap();
    let bytes: Vec<u8> = (0..=255).collect();
    let path = std::env::temp_dir().join(unique("cli-payload"));
    std::fs::write(&path, &bytes).unwrap();
    let file_arg = format!("@{}", path.display());
    let out = pubsub(&["--url", &url, "pub", "blobs.raw", &file_arg])
        .await
        .unwrap();
    assert_eq!(documents(&out)[0]["bytes"], 256);
    let received = next(&mut group, "the file's bytes").await;
    assert_eq!(received.payload().as_ref(), &bytes[..]);
    received.ack().await.unwrap();
    drop(group);

    pubsub(&["--url", &url, "pub", "blobs.raw", &file_arg])
        .await
        .unwrap();
    pubsub(&["--url", &url, "pub", "blobs.text", "caf\u{e9}"])
        .await
        .unwrap();
    let out = pubsub(&[
        "--url", &url, "sub", "blobs.*", "--group", "keepers", "--count", "2",
    ])
    .await
    .unwrap();
    let docs = documents(&out);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(
            docs[0]["payload_base64"]
                .as_str()
                .expect("binary as base64"),
        )
        .unwrap();
    assert_eq!(decoded, bytes);
    assert_eq!(docs[1]["payload"], "caf\u{e9}");

    pubsub(&["--url", &url, "pub", "blobs.text", "{\"a\":1}"])
        .await
        .unwrap();
    let out = pubsub(&[
        "--url",
        &url,
        "sub",
        "blobs.*",
        "--group",
        "keepers",
        "--count",
        "1",
        "--payload",
        "hex",
    ])
    .await
    .unwrap();
    assert_eq!(documents(&out)[0]["payload_hex"], hex::encode(b"{\"a\":1}"));
    std::fs::remove_file(path).unwrap();
}

/// Requests `body` on `send.echo.request` until a responder answers: the tool's
/// `reply` runs in a task of the test and says nothing when it listens.
async fn request_once_answered(bus: &pubsub_core::PubSub, body: &Value) -> Value {
    within("an answer from the tool", async {
        loop {
            match bus
                .topic("send.echo.request")
                .request(body, Duration::from_secs(5))
                .await
            {
                Err(Error::NoResponders { .. }) => tokio::task::yield_now().await,
                other => break other.unwrap(),
            }
        }
    })
    .await
}

#[tokio::test]
async fn reply_answers_requests_with_its_data_or_an_echo() {
    let url = memory_url();
    let bus = connect(&url).await.unwrap();
    let responder = tokio::spawn({
        let url = url.clone();
        async move {
            pubsub(&[
                "--url",
                &url,
                "reply",
                "send.echo.request",
                r#"{"response":"pong"}"#,
                "--count",
                "1",
            ])
            .await
        }
    });
    let reply = request_once_answered(&bus, &serde_json::json!("ping")).await;
    assert_eq!(reply["response"], "pong");
    let printed = responder.await.unwrap().unwrap();
    assert_eq!(documents(&printed)[0]["payload"], "ping");

    let echo = tokio::spawn({
        let url = url.clone();
        async move { pubsub(&["--url", &url, "reply", "send.*.request", "--count", "1"]).await }
    });
    let reply = request_once_answered(&bus, &serde_json::json!({"m": 1})).await;
    assert_eq!(reply["m"], 1);
    echo.await.unwrap().unwrap();
}

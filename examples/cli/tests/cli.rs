//! The `pubsub` binary as a user runs it: help, errors on stderr with a failing exit
//! code, and a subscriber and a publisher in two processes on a private Redis.

use std::process::Stdio;

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::within;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn pubsub(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pubsub"));
    command.args(args).kill_on_drop(true);
    command
}

#[tokio::test]
async fn help_names_every_subcommand() {
    let output = within("pubsub --help", pubsub(&["--help"]).output())
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["pub", "sub", "request", "--url"] {
        assert!(help.contains(word), "{word} in {help}");
    }
}

#[tokio::test]
async fn errors_go_to_stderr_with_a_failing_exit_code() {
    let output = within(
        "pubsub with a bad URL",
        pubsub(&["--url", "kafka://localhost", "pub", "a", "b"]).output(),
    )
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: invalid URL"), "{stderr}");
}

/// `pubsub sub` and `pubsub pub` as a user runs them against Redis.
#[tokio::test]
async fn sub_and_pub_in_two_processes_on_redis() {
    let server = RedisServer::start();
    let url = server.url();
    let mut subscriber = pubsub(&["--url", &url, "sub", "changed_task.*", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The tool says on stderr when it listens: what is published from then on is its.
    let mut stderr = BufReader::new(subscriber.stderr.take().unwrap()).lines();
    let listening = within("pubsub sub to subscribe", stderr.next_line())
        .await
        .unwrap();
    assert_eq!(listening.as_deref(), Some("listening on changed_task.*"));

    let published = within(
        "pubsub pub",
        pubsub(&[
            "--url",
            &url,
            "pub",
            "changed_task.alice",
            r#"{"username":"alice"}"#,
            "-H",
            "source=cli",
        ])
        .output(),
    )
    .await
    .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );

    let output = within(
        "pubsub sub to exit after one message",
        subscriber.wait_with_output(),
    )
    .await
    .unwrap();
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(printed["topic"], "changed_task.alice");
    assert_eq!(printed["payload"]["username"], "alice");
    assert_eq!(printed["headers"]["source"], "cli");
}

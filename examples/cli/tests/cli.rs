//! The `pubsub` binary as a user runs it: help, errors on stderr with a failing exit
//! code, and a subscriber and a publisher in two processes on a private Redis.

use std::process::Stdio;
use std::time::Duration;

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::within;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

fn pubsub(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pubsub"));
    command.args(args).kill_on_drop(true);
    command
}

/// Starts `pubsub ARGS` (a `sub`) and waits until it says it listens: what is
/// published from then on is its. Returns the process and the rest of its stderr.
async fn listening(args: &[&str]) -> (Child, Lines<BufReader<ChildStderr>>) {
    let mut subscriber = pubsub(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(subscriber.stderr.take().unwrap()).lines();
    let line = within("pubsub sub to subscribe", stderr.next_line())
        .await
        .unwrap();
    let pattern = args[args.iter().position(|a| *a == "sub").unwrap() + 1];
    assert_eq!(line, Some(format!("listening on {pattern}")));
    (subscriber, stderr)
}

#[tokio::test]
async fn help_is_the_tools_own_and_names_every_subcommand() {
    let output = within("pubsub --help", pubsub(&["--help"]).output())
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.starts_with("Publish, subscribe, request and reply on a message bus from the shell."),
        "{help}"
    );
    for word in [
        "pub",
        "sub",
        "request",
        "reply",
        "--url",
        "PUBSUB_URL",
        "@PATH",
        "Examples:",
    ] {
        assert!(help.contains(word), "{word} in {help}");
    }
}

#[tokio::test]
async fn without_a_url_it_says_memory_reaches_this_process_only() {
    let output = within(
        "pubsub pub without --url",
        pubsub(&["pub", "orders.created", "{}"])
            .env_remove("PUBSUB_URL")
            .output(),
    )
    .await
    .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("using memory://, an in-process bus that reaches this process only")
            && stderr.contains("--url redis://HOST/"),
        "{stderr}"
    );

    // PUBSUB_URL stands in for --url, and then there is nothing to warn about.
    let output = within(
        "pubsub pub with PUBSUB_URL",
        pubsub(&["pub", "orders.created", "{}"])
            .env("PUBSUB_URL", "memory://")
            .output(),
    )
    .await
    .unwrap();
    assert!(output.status.success());
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = within(
        "pubsub pub with a bad PUBSUB_URL",
        pubsub(&["pub", "orders.created", "{}"])
            .env("PUBSUB_URL", "kafka://x")
            .output(),
    )
    .await
    .unwrap();
    assert!(!output.status.success());
}

#[tokio::test]
async fn a_payload_from_stdin_and_a_closed_pipe_ends_quietly() {
    let server = RedisServer::start();
    let url = server.url();
    // `pubsub sub ... | head -c 1`: the reader leaves after one byte.
    let (mut subscriber, mut stderr) = listening(&["--url", &url, "sub", "lines.*"]).await;
    let mut stdout = subscriber.stdout.take().unwrap();

    let mut publisher = pubsub(&["--url", &url, "pub", "lines.one", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"{\"from\":\"stdin\"}").await.unwrap();
    drop(stdin);
    let published = within("pubsub pub -", publisher.wait_with_output())
        .await
        .unwrap();
    assert!(published.status.success());
    let printed: Value = serde_json::from_slice(&published.stdout).unwrap();
    assert_eq!(printed["bytes"], 16);

    let mut first = [0u8; 1];
    within("the first byte", stdout.read_exact(&mut first))
        .await
        .unwrap();
    assert_eq!(&first, b"{");
    drop(stdout);
    // The next message meets the closed pipe: the tool ends, quietly and successfully.
    // Redis pub/sub delivers at most once (a subscriber's connection renewed under load
    // misses what was published meanwhile), so another message goes until one lands.
    let status = within("pubsub sub to end on the closed pipe", async {
        loop {
            let again = pubsub(&["--url", &url, "pub", "lines.two", "{}"]).output();
            assert!(again.await.unwrap().status.success());
            let waited = Duration::from_secs(1);
            if let Ok(status) = tokio::time::timeout(waited, subscriber.wait()).await {
                break status.unwrap();
            }
        }
    })
    .await;
    assert!(status.success(), "{status}");
    let rest = within("stderr to end", async {
        let mut rest = Vec::new();
        while let Some(line) = stderr.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    })
    .await;
    // Quietly: no error about the pipe (a gap's warning may come, as said above).
    let errors: Vec<_> = rest
        .iter()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert!(
        errors.is_empty(),
        "nothing but warnings on stderr: {rest:?}"
    );
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
    let (subscriber, _stderr) =
        listening(&["--url", &url, "sub", "changed_task.*", "--count", "1"]).await;

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

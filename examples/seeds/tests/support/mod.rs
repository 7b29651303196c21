//! What the test binaries share: running a program with a time limit, reading typed
//! events, and the Python clients that stand in for the seed systems' own code.

#![allow(dead_code)] // Each test binary uses its own part.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pubsub_core::{Event, Events, Received};
use pubsub_seeds::demo::PATIENCE;

/// The next event of `events`: a signal, a message that does not decode, the end of
/// the stream or nothing within [`PATIENCE`] fails the test.
pub(crate) async fn next_event<E: Event + std::fmt::Debug>(
    events: &mut Events<E>,
    what: &str,
) -> E {
    match tokio::time::timeout(PATIENCE, events.next()).await {
        Ok(Some(Received::Message(Ok(event)))) => event,
        Ok(Some(Received::Message(Err(error)))) => panic!("{what}: {error}"),
        Ok(Some(Received::Signal(signal))) => panic!("{what}: expected an event, got {signal}"),
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing arrived within {PATIENCE:?}"),
    }
}

/// Runs `command` to its end, failing the test if it takes more than a minute or
/// exits unsuccessfully. Blocking: async tests call it through `spawn_blocking`.
pub(crate) fn run_bounded(command: Command) -> Output {
    let what = format!("{command:?}");
    let output = run_to_end(command);
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command` to its end, whatever its exit status, failing the test if it takes
/// more than a minute.
pub(crate) fn run_to_end(mut command: Command) -> Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let started = Instant::now();
    while child.try_wait().expect("child status").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{what} did not exit within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("child output")
}

/// Runs one of the Python clients in `tests/python/` with `args` and returns what it
/// printed. The clients need redis-py and pika (`scripts/test` installs them); a
/// missing one fails the test.
pub(crate) async fn python(script: &str, args: &[String]) -> String {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("python3");
    command.arg(path).args(args);
    let output = tokio::task::spawn_blocking(move || run_bounded(command))
        .await
        .expect("the Python client");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

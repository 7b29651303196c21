//! What the Redis test files share: bounded waits and `redis-cli`.

#![allow(dead_code)] // each test file uses its own part

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use pubsub_core::testkit::redis_server::RedisServer;
use pubsub_core::{Delivery, Result, Subscription};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not happen within {PATIENCE:?}"))
}

/// The next item of `sub`, failing the test if the stream ends or nothing comes.
pub async fn next_item(sub: &mut Subscription, what: &str) -> Result<Delivery> {
    within(what, sub.next())
        .await
        .unwrap_or_else(|| panic!("{what}: the subscription ended"))
}

/// Runs `redis-cli -p PORT ARGS...` with `stdin` as its input and returns its output.
/// A missing `redis-cli` fails the test.
pub async fn redis_cli(server: &RedisServer, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = cli(server, args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(missing);
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin).await.expect("write to redis-cli");
    drop(input);
    let out = within("redis-cli", child.wait_with_output())
        .await
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
    out.stdout
}

/// A running `redis-cli` that subscribes with `args` (`SUBSCRIBE ch`, `PSUBSCRIBE p`),
/// returned once Redis has confirmed, with the lines it prints.
pub async fn redis_cli_subscriber(
    server: &RedisServer,
    args: &[&str],
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = cli(server, args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(missing);
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    // The confirmation: kind, channel, count.
    for _ in 0..3 {
        within("redis-cli subscribes", lines.next_line())
            .await
            .expect("read redis-cli")
            .expect("redis-cli printed its confirmation");
    }
    (child, lines)
}

fn cli(server: &RedisServer, args: &[&str]) -> Command {
    let mut command = Command::new("redis-cli");
    command
        .args(["-p", &server.port().to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn missing<T>(e: std::io::Error) -> T {
    panic!("cannot run redis-cli ({e}): run `scripts/test`, which installs the redis-tools package")
}

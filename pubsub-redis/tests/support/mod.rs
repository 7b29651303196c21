//! `redis-cli` for the Redis test files, as a publisher and as a subscriber.

use std::process::Stdio;

use pubsub_brokers::RedisServer;
use pubsub_core::testkit::support::within;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Runs `redis-cli -p PORT ARGS...` with `stdin` as its input and returns its output.
/// A missing `redis-cli` fails the test.
pub(crate) async fn redis_cli(server: &RedisServer, args: &[&str], stdin: &[u8]) -> Vec<u8> {
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
pub(crate) async fn redis_cli_subscriber(
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

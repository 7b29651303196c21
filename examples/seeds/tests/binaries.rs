//! Each program as a user runs it: one command, in-process by default, and it ends
//! by itself with a summary.

use std::process::{Command, Output};

mod support;

fn run(program: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    support::run_bounded(command)
}

fn last_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn esn_runs_to_the_end() {
    let output = run(env!("CARGO_BIN_EXE_esn"), &[]);
    assert_eq!(last_line(&output), "done: 12 deliveries");
    assert!(String::from_utf8_lossy(&output.stdout).contains("[b] global message:activity"));
}

#[test]
fn intheam_runs_to_the_end() {
    let output = run(env!("CARGO_BIN_EXE_intheam"), &["--heartbeat", "100ms"]);
    assert!(
        last_line(&output).starts_with("done: 9 events"),
        "{}",
        last_line(&output)
    );
}

#[test]
fn infrahub_runs_to_the_end() {
    let output = run(env!("CARGO_BIN_EXE_infrahub"), &[]);
    assert_eq!(last_line(&output), "done: 13 outcomes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("git.repository.connectivity given up after 10 retries"),
        "{stdout}"
    );
}

#[test]
fn brainlife_notify_runs_to_the_end() {
    let outbox = tempfile::tempdir().unwrap();
    let output = run(
        env!("CARGO_BIN_EXE_brainlife_notify"),
        &["--outbox", outbox.path().to_str().unwrap()],
    );
    assert_eq!(last_line(&output), "done: 1 mails, 0 given up");
    assert!(outbox.path().join("t-2.eml").exists());
}

/// A mail the service gave up on fails the program, and the reason names the path.
#[test]
fn brainlife_notify_fails_naming_the_path_when_it_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the outbox's parent folder should be: no folder can be made there,
    // not even by root.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "").unwrap();
    let outbox = blocker.join("outbox");
    let mut command = Command::new(env!("CARGO_BIN_EXE_brainlife_notify"));
    command.args(["--outbox", outbox.to_str().unwrap()]);
    let output = support::run_to_end(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("failed: {}: ", outbox.display())),
        "the failing path in:\n{stdout}"
    );
    assert_eq!(last_line(&output), "done: 0 mails, 1 given up");
    assert!(
        stderr.contains("gave up on the mail of task t-2"),
        "{stderr}"
    );
}

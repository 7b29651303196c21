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
    assert_eq!(last_line(&output), "done: 8 deliveries");
    assert!(String::from_utf8_lossy(&output.stdout).contains("[b] global message:activity"));
}

#[test]
fn intheam_runs_to_the_end() {
    let output = run(env!("CARGO_BIN_EXE_intheam"), &["--heartbeat", "100ms"]);
    assert!(
        last_line(&output).starts_with("done: 11 events"),
        "{}",
        last_line(&output)
    );
}

#[test]
fn infrahub_runs_to_the_end() {
    let output = run(env!("CARGO_BIN_EXE_infrahub"), &[]);
    assert_eq!(
        last_line(&output),
        "done: backlog [5, 5, 3, 3, 3], 14 outcomes after it"
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

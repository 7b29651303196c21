//! The tour runs to its end, explains each step and shows what it promises: both
//! subscribers of a broadcast, a pattern's one segment, workers sharing a group's jobs,
//! a typed event, a reply, and a request nobody answers failing at once.

use std::process::Command;

fn tour() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .output()
        .expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    stdout
}

#[test]
fn the_tour_explains_every_step() {
    let stdout = tour();
    for expected in [
        "1. Broadcast: every subscriber of a topic gets every message",
        r#"the first subscriber of message:stored received {"_id":456,"content":"hello"}"#,
        r#"the second subscriber of message:stored received {"_id":456,"content":"hello"}"#,
        "2. Patterns:",
        r#"received {"stored_count":3,"username":"alice"} from sync.alice, since `*` matches one segment"#,
        r#"received {"stored_count":3,"username":"bob"} from sync.bob"#,
        "3. Groups:",
        "4. Typed events:",
        r#"sent EchoRequest { message: "typed" } to send.echo.request with priority 5"#,
        r#"the typed subscriber decoded EchoRequest { message: "typed" }"#,
        "5. Request/reply:",
        r#"the responder answered {"data":{"response":"ping"},"passed":true}"#,
        r#"asked nobody.home: no responders on topic "nobody.home""#,
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("from sync.alice.extra"), "{stdout}");
}

#[test]
fn the_workers_visibly_share_the_groups_jobs() {
    let stdout = tour();
    let handled: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" handled file-"))
        .collect();
    assert_eq!(handled.len(), 6, "{stdout}");
    for n in 1..=6 {
        let job = format!("handled file-{n}.rs");
        assert_eq!(
            handled.iter().filter(|l| l.ends_with(&job)).count(),
            1,
            "{job} once in:\n{stdout}"
        );
    }
    let by = |worker: &str| handled.iter().filter(|l| l.contains(worker)).count();
    assert!(by("worker-1") >= 1 && by("worker-2") >= 1, "{stdout}");
    let summary = format!(
        "worker-1 took {}, worker-2 took {}",
        by("worker-1"),
        by("worker-2")
    );
    assert!(stdout.contains(&summary), "{summary:?} in:\n{stdout}");
}

/// The quickstart is the in-process backend alone: no broker client is compiled.
#[test]
fn the_quickstart_compiles_no_broker_client() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "pubsub-quickstart",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.contains("pubsub-local"), "{tree}");
    for client in [
        "lapin ",
        "redis ",
        "axum ",
        "reqwest ",
        "rustls ",
        "native-tls ",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(client)),
            "{client}in the quickstart's tree:\n{tree}"
        );
    }
}

//! The tour runs to its end and prints each step's outcome.

use std::process::Command;

#[test]
fn the_tour_prints_every_step() {
    let output = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .output()
        .expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    for expected in [
        r#"broadcast  message:stored <- {"_id":456,"content":"hello"}"#,
        r#"pattern    sync.* <- sync.alice {"stored_count":3,"username":"alice"}"#,
        r#"request    send.echo.request -> {"data":{"response":"ping"},"passed":true}"#,
        r#"request    nobody.home -> no responders on topic "nobody.home""#,
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let jobs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("group")).collect();
    assert_eq!(jobs.len(), 3, "{stdout}");
    // Each job goes to one worker, and the two take turns.
    assert!(jobs.iter().any(|l| l.contains("worker-1")), "{stdout}");
    assert!(jobs.iter().any(|l| l.contains("worker-2")), "{stdout}");
}

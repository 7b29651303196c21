//! Each seed program's main flow, end to end on the in-process backend.

use std::time::Duration;

use pubsub_connect::connect;
use pubsub_core::PubSub;
use pubsub_seeds::catalog::inthe_am;
use pubsub_seeds::infrahub::Outcome;
use pubsub_seeds::{brainlife, demo, esn, infrahub, intheam};
use serde_json::json;

async fn memory() -> PubSub {
    connect("memory://").await.expect("the in-process bus")
}

#[tokio::test]
async fn esn_forwards_stored_and_activity_to_every_node() {
    let global = format!("memory://esn-{}", uuid::Uuid::new_v4().simple());
    let report = esn::run(&global).await.expect("the ESN demo");
    for topic in [
        "message:activity",
        "community:join",
        "login:success",
        "mongodb:connectionAvailable",
    ] {
        assert_eq!(
            report.count("a", "local", topic),
            1,
            "node a's local {topic}"
        );
    }
    for node in ["a", "b"] {
        assert_eq!(report.count(node, "global", "message:stored"), 1, "{node}");
        assert_eq!(
            report.count(node, "global", "message:activity"),
            1,
            "{node}"
        );
    }
    assert_eq!(
        report.count("a", "global", "login:success"),
        0,
        "local topics stay local"
    );
    assert_eq!(report.received.len(), 8);
}

#[tokio::test]
async fn intheam_streams_every_channel_of_the_user_and_acts_on_changed_syncs() {
    let bus = memory().await;
    let report = intheam::run(&bus, "alice", Duration::from_millis(100))
        .await
        .expect("the Inthe.AM demo");
    let count = |kind: &str| report.events.iter().filter(|e| e.event == kind).count();
    for kind in [
        "__general__",
        "personal",
        "log_message",
        "taskd.certificate",
    ] {
        assert_eq!(count(kind), 1, "{kind}");
    }
    assert_eq!(count("changed_task"), 2);
    assert_eq!(count("incoming_mail"), 2);
    assert_eq!(count("sync"), 2, "both syncs reach the browser");
    assert_eq!(
        count("local_sync"),
        1,
        "the listener acts only on the sync with changes"
    );
    assert!(report.heartbeats >= 2);
    // The stream carries the seed's JSON: it decodes into the typed message.
    let task: inthe_am::ChangedTask = report
        .events
        .iter()
        .find(|e| e.event == "changed_task")
        .map(|e| serde_json::from_str(&e.data).expect("a ChangedTask"))
        .unwrap();
    assert_eq!(task.username, "alice");
}

#[tokio::test]
async fn intheam_stream_carries_only_its_users_events() {
    let bus = memory().await;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let server = tokio::spawn(intheam::serve(http, bus.clone(), Duration::from_secs(60)));
    let mut stream = Box::pin(
        intheam::open_stream(addr, "alice")
            .await
            .expect("the stream"),
    );
    let first = demo::within("heartbeat", futures::StreamExt::next(&mut stream))
        .await
        .unwrap();
    assert_eq!(
        first.unwrap().unwrap().event,
        "heartbeat",
        "live once the first heartbeat comes"
    );

    let personal = |username: &str| inthe_am::PersonalMessage {
        username: username.into(),
        title: "t".into(),
        message: format!("for {username}"),
    };
    bus.send(&personal("bob")).await.unwrap();
    bus.send(&personal("alice")).await.unwrap();
    let next = demo::within("alice's event", futures::StreamExt::next(&mut stream))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.event, "personal");
    let message: inthe_am::PersonalMessage = serde_json::from_str(&next.data).unwrap();
    assert_eq!(
        message.message, "for alice",
        "bob's message is not in alice's stream"
    );
    server.abort();
}

#[tokio::test]
async fn infrahub_workers_prioritise_reply_retry_and_broadcast() {
    let bus = memory().await;
    let report = infrahub::run(&bus).await.expect("the Infrahub demo");

    assert_eq!(
        report.backlog,
        vec![5, 5, 3, 3, 3],
        "waiting work goes out highest priority first"
    );

    let echo = serde_json::to_value(&report.echo).unwrap();
    assert_eq!(echo["passed"], true);
    assert_eq!(echo["routing_key"], "send.echo.request");
    assert_eq!(echo["data"]["response"], "Reply to: ping");
    assert_eq!(
        report.file.data.content.as_deref(),
        Some("# infrahub-demo\n")
    );
    assert!(!report.missing.passed);
    assert_eq!(report.missing.data.http_code, Some(404));
    assert_eq!(
        report.missing.initial_message.as_ref().unwrap()["file"],
        "missing.md"
    );

    assert_eq!(
        report.dead_letter.original_topic,
        "git.repository.connectivity"
    );
    assert!(report.dead_letter.last_error.contains("cannot reach"));
    assert_eq!(
        report.dead_letter.payload["repository_location"],
        json!("https://git.example.invalid/lost.git")
    );
    let failed = |topic: &str| {
        report
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Failed { topic: t, .. } if t == topic))
            .count()
    };
    assert_eq!(
        failed("git.repository.connectivity"),
        infrahub::retry_policy().max_attempts as usize
    );
    assert_eq!(failed("refresh.git.fetch"), 1, "retried once, then it ran");
    assert!(report
        .outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Ran { topic, .. } if topic == "refresh.git.fetch")));

    let skipped: Vec<_> = report
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Skipped { worker, topic } => Some((worker.as_str(), topic.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, vec![("worker-1", "refresh.registry.branches")]);
    let refreshed = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Refreshed { .. }))
        .count();
    assert_eq!(
        refreshed, 3,
        "every worker gets each broadcast, but skips its own"
    );
}

#[tokio::test]
async fn infrahub_work_goes_to_one_worker_of_the_group() {
    let bus = memory().await;
    let (outcomes, mut events) = tokio::sync::mpsc::unbounded_channel();
    let one = infrahub::Worker::start(&bus, "w1", outcomes.clone())
        .await
        .unwrap();
    let two = infrahub::Worker::start(&bus, "w2", outcomes).await.unwrap();
    let merged = pubsub_seeds::catalog::infrahub::BranchMerged {
        meta: None,
        source_branch: "f".into(),
        target_branch: "main".into(),
        context: None,
    };
    for _ in 0..10 {
        infrahub::publish_from(&bus, &merged, "test").await.unwrap();
    }
    for _ in 0..10 {
        let outcome = demo::next(&mut events, "work").await.unwrap();
        assert!(
            matches!(outcome, Outcome::Ran { priority: 5, .. }),
            "{outcome:?}"
        );
    }
    // Ten messages, ten runs in all: no message ran on both workers.
    let extra = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(extra.is_err(), "a message ran twice: {extra:?}");
    one.stop();
    two.stop();
}

#[tokio::test]
async fn brainlife_mails_the_finished_task_into_the_outbox() {
    let bus = memory().await;
    let outbox = tempfile::tempdir().unwrap();
    let report = brainlife::run(&bus, outbox.path())
        .await
        .expect("the brainlife demo");
    let mail = outbox.path().join("t-2.eml");
    assert_eq!(report.mails(), vec![mail.as_path()]);
    let text = std::fs::read_to_string(&mail).unwrap();
    assert!(text.starts_with(
        "To: user1@brainlife.example\r\nSubject: Your task diff import has finished\r\n"
    ));
    assert!(text.contains("Hello! your workflow has completed!"));
    let ignored = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, brainlife::Outcome::Ignored { .. }))
        .count();
    assert_eq!(
        ignored, 4,
        "unfinished tasks and tasks nobody asked about send nothing"
    );
    assert!(report.dead_letters.is_empty());
    assert_eq!(
        std::fs::read_dir(outbox.path()).unwrap().count(),
        1,
        "no staging file left"
    );
}

#[tokio::test]
async fn brainlife_retries_an_unwritable_outbox_then_gives_up() {
    let bus = memory().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("not-a-folder");
    std::fs::write(&outbox, "a file where the outbox should be").unwrap();
    let report = brainlife::run(&bus, &outbox)
        .await
        .expect("the brainlife demo");
    assert!(report.mails().is_empty());
    let failures = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, brainlife::Outcome::Failed { task, .. } if task == "t-2"))
        .count();
    assert_eq!(failures, 3, "three attempts before giving up");
    assert_eq!(report.dead_letters, vec!["t-2".to_owned()]);
}

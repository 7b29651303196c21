//! Each seed program's main flow, end to end on the in-process backend.

use std::time::Duration;

use pubsub_connect::connect;
use pubsub_core::PubSub;
use pubsub_seeds::catalog::inthe_am;
use pubsub_seeds::infrahub::Outcome;
use pubsub_seeds::{brainlife, demo, esn, infrahub, intheam};
use serde_json::json;

mod support;

async fn memory() -> PubSub {
    connect("memory://").await.expect("the in-process bus")
}

#[tokio::test]
async fn esn_forwards_stored_and_activity_to_every_node() {
    let global = format!("memory://esn-{}", uuid::Uuid::new_v4().simple());
    let report = esn::run(&global).await.expect("the ESN demo");
    let point_to_point =
        ["a", "b"].map(|node| report.count(node, "point-to-point", esn::DEMO_CHANNEL));
    assert_eq!(
        point_to_point.iter().sum::<usize>(),
        esn::DEMO_SENDS,
        "each point-to-point message handled once: {point_to_point:?}"
    );
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
    assert_eq!(report.received.len(), 8 + esn::DEMO_SENDS);
}

#[tokio::test]
async fn intheam_streams_the_events_inthe_ams_ui_listens_for() {
    let bus = memory().await;
    let report = intheam::run(&bus, "alice", Duration::from_millis(100))
        .await
        .expect("the Inthe.AM demo");
    let count = |kind: &str| report.events.iter().filter(|e| e.event == kind).count();
    for kind in [
        "public_announcement",
        "personal_announcement",
        "error_logged",
        "local_sync",
        "head_changed",
    ] {
        assert_eq!(count(kind), 1, "{kind}");
    }
    assert_eq!(count("task_changed"), 2);
    assert_eq!(count("incoming_mail"), 2);
    for never in ["sync", "changed_task", "log_message", "personal", "taskd"] {
        assert_eq!(
            count(never),
            0,
            "no {never} event: the UI has no listener for it"
        );
    }
    assert!(report.heartbeats >= 2);
    let data = |kind: &str| {
        report
            .events
            .iter()
            .find(|e| e.event == kind)
            .map(|e| e.data.clone())
            .unwrap()
    };
    // Bare strings where Inthe.AM sends them, the message's JSON elsewhere.
    assert_eq!(data("task_changed"), "0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f");
    assert_eq!(data("error_logged"), "Taskd refused the certificate");
    let sync: inthe_am::LocalSync = serde_json::from_str(&data("local_sync")).unwrap();
    assert_eq!(data("head_changed"), sync.head);
    assert_eq!(sync.username, "alice");
    let debounce = sync.debounce_id.expect("a debounce id");
    assert!(
        debounce
            .split_once('.')
            .is_some_and(|(s, us)| s.parse::<u64>().is_ok() && us.len() == 6),
        "{debounce}"
    );
    let personal: inthe_am::PersonalMessage =
        serde_json::from_str(&data("personal_announcement")).unwrap();
    assert_eq!(personal.title, "Welcome");
}

/// A stream carries its user's exact channels: never another user's, whether that
/// name extends this one (`alice.smith`) or ends with it (`bob.alice`).
#[tokio::test]
async fn intheam_stream_carries_only_its_users_events() {
    let bus = memory().await;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let server = tokio::spawn(intheam::serve(http, bus.clone(), Duration::from_secs(60)));
    let mut streams = Vec::new();
    for user in ["alice", "alice.smith"] {
        let mut stream = Box::pin(intheam::open_stream(addr, user).await.expect("the stream"));
        let first = demo::within("heartbeat", futures::StreamExt::next(&mut stream))
            .await
            .unwrap();
        assert_eq!(
            first.unwrap().unwrap().event,
            "heartbeat",
            "live once the first heartbeat comes"
        );
        streams.push(stream);
    }
    let personal = |username: &str| inthe_am::PersonalMessage {
        username: username.into(),
        title: "t".into(),
        message: format!("for {username}"),
    };
    for user in ["bob.alice", "alice.smith.jr", "alice.smith", "alice"] {
        bus.send(&personal(user)).await.unwrap();
    }
    for (stream, user) in streams.iter_mut().zip(["alice", "alice.smith"]) {
        let next = demo::within("the user's event", futures::StreamExt::next(stream))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(next.event, "personal_announcement");
        let message: inthe_am::PersonalMessage = serde_json::from_str(&next.data).unwrap();
        assert_eq!(message.message, format!("for {user}"), "only {user}'s own");
    }
    server.abort();
}

/// The listener acts as Inthe.AM's: on `sync.<user>` for dotted usernames too, only
/// when something changed and the client is not this host, for the body's user.
#[tokio::test]
async fn intheam_sync_listener_decides_as_inthe_ams() {
    let bus = memory().await;
    let _listener = intheam::sync_listener(&bus).await.unwrap();
    let mut syncs = bus.subscribe_to::<inthe_am::LocalSync>().await.unwrap();
    let sync = |user: &str, ip: &str, stored: u64| {
        serde_json::json!({
            "action": "sync", "username": user, "org": "inthe_am", "client": "task 2.6",
            "ip": ip, "port": 53589, "client_key": "k", "record_count": 3,
            "branch_point": "k", "branch_record_count": 1, "delta_count": stored,
            "stored_count": stored, "service_duration": 0.01
        })
    };
    for (user, ip, stored) in [
        ("alice.smith", "127.0.0.1", 4),
        ("alice.smith", "203.0.113.9", 0),
        ("alice.smith", "203.0.113.9", 2),
    ] {
        bus.topic(format!("sync.{user}"))
            .publish(&sync(user, ip, stored))
            .await
            .unwrap();
    }
    let done = support::next_event(&mut syncs, "the one sync acted on").await;
    assert_eq!(done.username, "alice.smith");
    // The listener takes its messages in order: had it acted on either skipped sync,
    // that answer would come before this marker's.
    bus.topic("sync.zed")
        .publish(&sync("zed", "203.0.113.9", 1))
        .await
        .unwrap();
    let next = support::next_event(&mut syncs, "the marker's answer").await;
    assert_eq!(next.username, "zed");
    assert!(intheam::local_addresses().await.contains("127.0.0.1"));
}

#[tokio::test]
async fn infrahub_workers_reply_retry_and_broadcast() {
    let hub = infrahub::Infrahub::connect("memory://").await.unwrap();
    let report = infrahub::run(&hub).await.expect("the Infrahub demo");

    let echo = serde_json::to_value(&report.echo).unwrap();
    assert_eq!(echo["passed"], true);
    assert_eq!(echo["routing_key"], "send.echo.request");
    assert_eq!(echo["data"]["response"], "Reply to: ping");
    assert_eq!(
        report.file.data.content.as_deref(),
        Some("# infrahub-demo\n")
    );
    // Infrahub's agent reports a missing file as passed, with the error in data.
    assert!(report.missing.passed);
    assert_eq!(report.missing.data.http_code, Some(404));
    assert_eq!(report.missing.routing_key, "git.file.get");

    // Sent with retry_count 9: it fails, goes round the delay once as 10, fails
    // again and is given up, as Infrahub gives up at maximum_message_retries.
    let connectivity: Vec<&Outcome> = report
        .outcomes
        .iter()
        .filter(|o| match o {
            Outcome::Failed { topic, .. }
            | Outcome::Retried { topic, .. }
            | Outcome::GaveUp { topic, .. } => topic == "git.repository.connectivity",
            _ => false,
        })
        .collect();
    assert!(
        matches!(
            connectivity[..],
            [
                Outcome::Failed { .. },
                Outcome::Retried {
                    retry_count: infrahub::MAX_RETRIES,
                    ..
                },
                Outcome::Failed { .. },
                Outcome::GaveUp { .. }
            ]
        ),
        "{connectivity:?}"
    );

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
        refreshed, 5,
        "every worker gets each broadcast, but skips its own"
    );
}

/// A request that fails while asking for a reply is answered with `rpc_error` and
/// the request, and not retried, as Infrahub's handler does.
#[tokio::test]
async fn infrahub_failed_rpc_is_answered_with_rpc_error_once() {
    let hub = infrahub::Infrahub::connect("memory://").await.unwrap();
    let (outcomes, mut events) = tokio::sync::mpsc::unbounded_channel();
    let worker = infrahub::Worker::start(&hub, "w1", outcomes).await.unwrap();
    let mut requester = infrahub::Requester::start(&hub).await.unwrap();
    let lost = pubsub_seeds::catalog::infrahub::GitRepositoryConnectivity {
        meta: Default::default(),
        repository_name: "lost".into(),
        repository_location: "https://git.example.invalid/lost.git".into(),
    };
    let reply: serde_json::Value = requester.call(&lost).await.unwrap();
    assert_eq!(reply["passed"], false);
    assert_eq!(reply["routing_key"], "rpc_error");
    assert_eq!(reply["data"], json!({}));
    assert!(reply["errors"][0]
        .as_str()
        .unwrap()
        .contains("cannot reach"));
    assert_eq!(reply["initial_message"]["repository_name"], "lost");
    let failed = demo::next(&mut events, "the failure").await.unwrap();
    assert!(matches!(failed, Outcome::Failed { .. }), "{failed:?}");
    let again = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    assert!(again.is_err(), "retried: {again:?}");
    worker.stop();
}

#[tokio::test]
async fn infrahub_work_goes_to_one_worker_of_the_group() {
    let hub = infrahub::Infrahub::connect("memory://").await.unwrap();
    let (outcomes, mut events) = tokio::sync::mpsc::unbounded_channel();
    let one = infrahub::Worker::start(&hub, "w1", outcomes.clone())
        .await
        .unwrap();
    let two = infrahub::Worker::start(&hub, "w2", outcomes).await.unwrap();
    for _ in 0..10 {
        infrahub::publish(&hub, &infrahub::git_file("README.md"))
            .await
            .unwrap();
    }
    for _ in 0..10 {
        let outcome = demo::next(&mut events, "work").await.unwrap();
        assert!(
            matches!(outcome, Outcome::Ran { priority: 4, .. }),
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

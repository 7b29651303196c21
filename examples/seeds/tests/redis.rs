//! Inthe.AM on a private Redis, with redis-py as Inthe.AM's own code on the other
//! end. (The `pubsub` tool's Redis test is with the tool, in pubsub-cli.)

use std::time::Duration;

use pubsub_brokers::RedisServer;
use pubsub_connect::connect;
use pubsub_core::PubSub;
use pubsub_seeds::catalog::inthe_am::LocalSync;
use pubsub_seeds::intheam;

mod support;

async fn bus(server: &RedisServer) -> PubSub {
    connect(&server.url())
        .await
        .expect("a bus on the private Redis")
}

#[tokio::test]
async fn intheam_demo_runs_on_redis() {
    let server = RedisServer::start();
    let report = intheam::run(&bus(&server).await, "alice", Duration::from_millis(100))
        .await
        .expect("the Inthe.AM demo on Redis");
    let count = |kind: &str| report.events.iter().filter(|e| e.event == kind).count();
    assert_eq!(report.events.len(), 9);
    assert_eq!(count("task_changed"), 2);
    assert_eq!(
        (count("local_sync"), count("head_changed")),
        (1, 1),
        "the listener acts on the remote sync with changes only"
    );
}

/// Inthe.AM's own clients on both sides: redis-py publishes as Inthe.AM and Taskd do
/// (json.dumps, jsoncpp's indented JSON), an EventSource client reads the stream, and
/// redis-py reads the listener's `local_sync` as plain JSON. The user's name has a dot.
#[tokio::test]
async fn intheam_interoperates_with_redis_py_and_an_event_source() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let _listener = intheam::sync_listener(&bus).await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let server_task = tokio::spawn(intheam::serve(http, bus.clone(), Duration::from_secs(60)));

    let printed = support::python(
        "intheam_browser.py",
        &[
            server.port().to_string(),
            addr.to_string(),
            "alice.smith".to_owned(),
        ],
    )
    .await;
    let lines: Vec<serde_json::Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let data = |event: &str| {
        lines
            .iter()
            .find(|l| l["event"] == event)
            .and_then(|l| l["data"].as_str())
            .unwrap_or_else(|| panic!("no {event} in {printed}"))
            .to_owned()
    };
    assert_eq!(data("task_changed"), "0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f");
    assert_eq!(data("error_logged"), "Taskd refused the sync");
    let personal: serde_json::Value = serde_json::from_str(&data("personal_announcement")).unwrap();
    assert_eq!(
        personal["username"], "alice.smith",
        "never bob.alice.smith's nor alice.smith.jr's"
    );
    let sync: LocalSync = serde_json::from_str(&data("local_sync")).unwrap();
    assert_eq!(data("head_changed"), sync.head);
    let events = lines.iter().filter(|l| l.get("event").is_some()).count();
    assert_eq!(events, 5, "only the user's own: {printed}");
    let read: LocalSync = serde_json::from_value(lines.last().unwrap()["redis_py_read"].clone())
        .expect("redis-py read our JSON");
    assert_eq!(
        (read.username.as_str(), read.start.as_str()),
        ("alice.smith", "6a8e0a61")
    );
    server_task.abort();
}

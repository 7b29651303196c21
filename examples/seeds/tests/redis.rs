//! Inthe.AM on a private Redis, with redis-py as Inthe.AM's own code on the other
//! end. (The `pubsub` tool's Redis test is with the tool, in pubsub-cli.)

use std::time::Duration;

use futures::StreamExt;
use pubsub_brokers::RedisServer;
use pubsub_connect::connect;
use pubsub_core::PubSub;
use pubsub_seeds::catalog::inthe_am::{ChangedTask, LocalSync};
use pubsub_seeds::{demo, intheam};

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
    assert_eq!(report.events.len(), 11);
    assert_eq!(count("changed_task"), 2);
    assert_eq!(
        count("local_sync"),
        1,
        "the listener acts on the sync with changes only"
    );
    assert_eq!(count("taskd.certificate"), 1);
}

/// redis-py publishes `json.dumps(...)` to `changed_task.alice` and `sync.alice` as
/// Inthe.AM does; the typed subscriber, the status stream and the sync listener get
/// them, and redis-py reads the listener's `local_sync.alice` as plain JSON.
#[tokio::test]
async fn intheam_interoperates_with_redis_py() {
    let server = RedisServer::start();
    let bus = bus(&server).await;
    let _listener = intheam::sync_listener(&bus).await.unwrap();
    let mut tasks = bus.subscribe_to::<ChangedTask>().await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let server_task = tokio::spawn(intheam::serve(http, bus.clone(), Duration::from_secs(60)));
    let mut stream = Box::pin(intheam::open_stream(addr, "alice").await.unwrap());
    let first = demo::within("the first heartbeat", stream.next())
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap().event, "heartbeat");

    let printed = support::python(
        "intheam_client.py",
        &[server.port().to_string(), "alice".to_owned()],
    )
    .await;

    let task = support::next_event(&mut tasks, "the changed task").await;
    assert_eq!(task.username, "alice");
    assert_eq!(task.task_data["description"], "Buy milk");

    let answer: LocalSync = serde_json::from_str(printed.trim()).expect("redis-py read our JSON");
    assert_eq!(
        (answer.username.as_str(), answer.start.as_str()),
        ("alice", "2d4f9c1")
    );

    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = demo::within("the stream", stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if event.event != "heartbeat" {
            kinds.push(event.event);
        }
    }
    assert_eq!(kinds, ["changed_task", "sync", "local_sync"]);
    server_task.abort();
}

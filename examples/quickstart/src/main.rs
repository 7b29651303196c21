//! A tour of the API on the in-process backend: broadcast, a pattern, a group of
//! workers, request/reply and a typed event. Run it with
//! `cargo run -p pubsub-examples --bin quickstart`.

use std::time::Duration;

use pubsub_core::{Delivery, Event, Message, PubSub};
use serde::{Deserialize, Serialize};

/// Infrahub's echo request: its type carries its routing key and priority.
#[derive(Debug, Serialize, Deserialize)]
struct EchoRequest {
    message: String,
}

impl Event for EchoRequest {
    const TOPIC: &'static str = "send.echo.request";
    const PRIORITY: u8 = 5;
}

#[tokio::main]
async fn main() -> pubsub_core::Result<()> {
    let bus: PubSub = pubsub_local::LocalBackend::new().into();

    // Broadcast, and a pattern: `sync.*` sees every user's sync event.
    let mut stored = bus.topic("message:stored").subscribe().await?;
    let mut syncs = bus.topic("sync.*").subscribe().await?;
    bus.topic("message:stored")
        .publish(&serde_json::json!({"_id": 456, "content": "hello"}))
        .await?;
    bus.topic("sync.alice")
        .publish(&serde_json::json!({"username": "alice", "stored_count": 3}))
        .await?;
    let d = stored.next().await.expect("open")?;
    println!(
        "broadcast  {} <- {}",
        d.topic(),
        String::from_utf8_lossy(d.payload())
    );
    let d = syncs.next().await.expect("open")?;
    println!(
        "pattern    sync.* <- {} {}",
        d.topic(),
        String::from_utf8_lossy(d.payload())
    );

    // A group: two workers share the jobs, each job goes to one of them.
    let (done, mut handled) = tokio::sync::mpsc::unbounded_channel();
    for worker in ["worker-1", "worker-2"] {
        let done = done.clone();
        let options = pubsub_core::HandlerOptions::new().group("git-agents");
        let mut handler = bus
            .topic("git.file.get")
            .on_with(options, move |job: Delivery| {
                let done = done.clone();
                async move {
                    done.send((worker, job.json::<String>()?, job.priority()))?;
                    Ok(())
                }
            });
        handler.ready().await?;
    }
    for (file, priority) in [("README.md", 4), ("Cargo.toml", 4), ("src/lib.rs", 9)] {
        bus.topic("git.file.get")
            .publish_message(Message::json(&file)?.with_priority(priority))
            .await?;
    }
    for _ in 0..3 {
        let (worker, file, priority) = handled.recv().await.expect("workers run");
        println!("group      {worker} handled {file} (priority {priority})");
    }

    // Request/reply: a responder answers on the requester's private reply topic.
    let mut echo = bus.subscribe_to::<EchoRequest>().await?.into_inner();
    tokio::spawn(async move {
        while let Some(Ok(request)) = echo.next().await {
            let asked: EchoRequest = request.json().expect("an echo request");
            let _ = request
                .reply(&serde_json::json!({"passed": true, "data": {"response": asked.message}}))
                .await;
        }
    });
    let reply: serde_json::Value = bus
        .topic(EchoRequest::TOPIC)
        .request(
            &EchoRequest {
                message: "ping".into(),
            },
            Duration::from_secs(5),
        )
        .await?;
    println!("request    send.echo.request -> {reply}");

    // Asking nobody is an error at once, not a hang.
    let nobody = bus
        .topic("nobody.home")
        .request::<_, serde_json::Value>(&"hello?", Duration::from_secs(5))
        .await;
    println!("request    nobody.home -> {}", nobody.unwrap_err());

    bus.close().await
}

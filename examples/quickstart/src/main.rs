//! A tour of the API on the in-process backend: broadcast, a pattern, a group of
//! workers, request/reply and a typed event. Run it with
//! `cargo run -p pubsub-quickstart`.

use std::time::Duration;

use pubsub_core::{
    Delivery, Error, Event, HandlerOptions, Message, PubSub, Received, Subscription,
};
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
    let d = next_message(&mut stored).await?;
    println!("broadcast  {} <- {}", d.topic(), text(&d));
    let d = next_message(&mut syncs).await?;
    println!("pattern    sync.* <- {} {}", d.topic(), text(&d));

    // A group: two workers share the jobs, each job goes to one of them.
    let (done, mut handled) = tokio::sync::mpsc::unbounded_channel();
    for worker in ["worker-1", "worker-2"] {
        let done = done.clone();
        let options = HandlerOptions::new().group("git-agents");
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
        let (worker, file, priority) = handled.recv().await.ok_or(Error::Closed)?;
        println!("group      {worker} handled {file} (priority {priority})");
    }

    // Request/reply: a responder answers on the requester's private reply topic.
    let mut echo = bus.subscribe_to::<EchoRequest>().await?.into_inner();
    tokio::spawn(async move {
        while let Some(received) = echo.next().await {
            let request = match received {
                Received::Message(request) => request,
                // A missed request times out on its requester's side; the responder
                // goes on serving the others.
                Received::Signal(signal) => {
                    eprintln!("responder  {signal}");
                    continue;
                }
            };
            let asked: EchoRequest = match request.json() {
                Ok(asked) => asked,
                Err(error) => {
                    eprintln!("responder  skipped a request: {error}");
                    continue;
                }
            };
            let answer = serde_json::json!({"passed": true, "data": {"response": asked.message}});
            if let Err(error) = request.reply(&answer).await {
                eprintln!("responder  could not reply: {error}");
            }
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
    match bus
        .topic("nobody.home")
        .request::<_, serde_json::Value>(&"hello?", Duration::from_secs(5))
        .await
    {
        Err(error) => println!("request    nobody.home -> {error}"),
        Ok(reply) => println!("request    nobody.home -> unexpectedly answered {reply}"),
    }

    bus.close().await
}

/// The next message of `sub`. A signal (messages were missed) is worth a line, not
/// the end of the tour, so it is printed and reading goes on.
async fn next_message(sub: &mut Subscription) -> pubsub_core::Result<Delivery> {
    while let Some(received) = sub.next().await {
        match received {
            Received::Message(delivery) => return Ok(delivery),
            Received::Signal(signal) => eprintln!("signal     {signal}"),
        }
    }
    Err(Error::Closed)
}

/// The payload as text, for printing.
fn text(delivery: &Delivery) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(delivery.payload())
}

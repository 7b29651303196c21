//! A tour of the API on the in-process backend: broadcast, a pattern, a group of
//! workers, typed events and request/reply, each step saying what it shows. Run it
//! with `cargo run -p pubsub-quickstart`; it compiles no broker client.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
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

/// How many jobs the two workers of the group share.
const JOBS: usize = 6;

#[tokio::main]
async fn main() -> pubsub_core::Result<()> {
    // What the library warns of (a subscriber that lags, a message given up) on stderr,
    // filtered by RUST_LOG; the only error is a subscriber installed before.
    let _ = pubsub_connect::logging::init(pubsub_connect::logging::LogFormat::Text);
    println!("The pubsub tour, on the in-process backend: no broker needed, nothing leaves this process.");
    let bus: PubSub = pubsub_local::LocalBackend::new().into();
    broadcast(&bus).await?;
    pattern(&bus).await?;
    group(&bus).await?;
    typed_events(&bus).await?;
    request_reply(&bus).await?;
    bus.close().await
}

async fn broadcast(bus: &PubSub) -> pubsub_core::Result<()> {
    step(
        1,
        "Broadcast: every subscriber of a topic gets every message published after it subscribed.",
    );
    let mut first = bus.topic("message:stored").subscribe().await?;
    let mut second = bus.topic("message:stored").subscribe().await?;
    let event = serde_json::json!({"_id": 456, "content": "hello"});
    bus.topic("message:stored").publish(&event).await?;
    say(format!("published {event} to message:stored"));
    for (name, subscription) in [("first", &mut first), ("second", &mut second)] {
        let delivery = next_message(subscription).await?;
        say(format!(
            "the {name} subscriber of message:stored received {}",
            text(&delivery)
        ));
    }
    Ok(())
}

async fn pattern(bus: &PubSub) -> pubsub_core::Result<()> {
    step(
        2,
        "Patterns: `*` stands for one segment of a name, `#` for any number of them.",
    );
    let mut syncs = bus.topic("sync.*").subscribe().await?;
    for user in ["alice", "bob"] {
        let topic = format!("sync.{user}");
        bus.topic(&topic)
            .publish(&serde_json::json!({"username": user, "stored_count": 3}))
            .await?;
        say(format!("published a sync event to {topic}"));
    }
    bus.topic("sync.alice.extra").publish(&"ignored").await?;
    say("published to sync.alice.extra, which has one segment too many for sync.*");
    for _ in 0..2 {
        let delivery = next_message(&mut syncs).await?;
        say(format!(
            "the subscriber of sync.* received {} from {}, since `*` matches one segment",
            text(&delivery),
            delivery.topic()
        ));
    }
    Ok(())
}

async fn group(bus: &PubSub) -> pubsub_core::Result<()> {
    step(
        3,
        "Groups: the members of a group share its jobs; each job goes to one member only.",
    );
    let (done, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let mut handlers = Vec::new();
    for worker in ["worker-1", "worker-2"] {
        let done = done.clone();
        let options = HandlerOptions::new().group("git-agents");
        let mut handler = bus
            .topic("git.file.get")
            .on_with(options, move |job: Delivery| {
                let done = done.clone();
                async move {
                    done.send((worker, job.json::<String>()?))?;
                    Ok(())
                }
            });
        handler.ready().await?;
        handlers.push(handler);
    }
    say("worker-1 and worker-2 joined the group git-agents on git.file.get");
    for n in 1..=JOBS {
        bus.topic("git.file.get")
            .publish_message(Message::json(&format!("file-{n}.rs"))?)
            .await?;
    }
    say(format!("published {JOBS} jobs to git.file.get"));
    let mut taken = BTreeMap::<&str, usize>::new();
    for _ in 0..JOBS {
        let (worker, file) = handled.recv().await.ok_or(Error::Closed)?;
        *taken.entry(worker).or_default() += 1;
        say(format!("{worker} handled {file}"));
    }
    let shares: Vec<String> = taken
        .iter()
        .map(|(worker, jobs)| format!("{worker} took {jobs}"))
        .collect();
    say(format!(
        "{}: every job was handled once, and the workers took turns",
        shares.join(", ")
    ));
    Ok(())
}

async fn typed_events(bus: &PubSub) -> pubsub_core::Result<()> {
    step(4, "Typed events: a Rust type names its topic and priority, and subscribers get decoded values.");
    let mut events = bus.subscribe_to::<EchoRequest>().await?;
    let event = EchoRequest {
        message: "typed".into(),
    };
    bus.send(&event).await?;
    say(format!(
        "sent {event:?} to {} with priority {}",
        EchoRequest::TOPIC,
        EchoRequest::PRIORITY
    ));
    while let Some(received) = events.next().await {
        match received {
            Received::Message(decoded) => {
                say(format!("the typed subscriber decoded {:?}", decoded?));
                return Ok(());
            }
            Received::Signal(signal) => eprintln!("signal: {signal}"),
        }
    }
    Err(Error::Closed)
}

async fn request_reply(bus: &PubSub) -> pubsub_core::Result<()> {
    step(
        5,
        "Request/reply: a responder answers on the requester's private reply topic.",
    );
    let mut echo = bus.subscribe_to::<EchoRequest>().await?.into_inner();
    tokio::spawn(async move {
        while let Some(received) = echo.next().await {
            let Received::Message(request) = received else {
                // A missed request times out on its requester's side; the responder
                // goes on serving the others.
                continue;
            };
            let Ok(asked) = request.json::<EchoRequest>() else {
                continue;
            };
            let answer = serde_json::json!({"passed": true, "data": {"response": asked.message}});
            if let Err(error) = request.reply(&answer).await {
                eprintln!("the responder could not reply: {error}");
            }
        }
    });
    let request = EchoRequest {
        message: "ping".into(),
    };
    let reply: serde_json::Value = bus
        .topic(EchoRequest::TOPIC)
        .request(&request, Duration::from_secs(5))
        .await?;
    say(format!(
        "asked {} {request:?}; the responder answered {reply}",
        EchoRequest::TOPIC
    ));

    step(
        6,
        "Nobody listening: a request that nobody can answer fails at once, not after its timeout.",
    );
    let started = Instant::now();
    let outcome = bus
        .topic("nobody.home")
        .request::<_, serde_json::Value>(&"hello?", Duration::from_secs(5))
        .await;
    match outcome {
        Err(error) => say(format!(
            "asked nobody.home: {error}, after {} ms of a 5 s timeout",
            started.elapsed().as_millis()
        )),
        Ok(reply) => say(format!("asked nobody.home: unexpectedly answered {reply}")),
    }
    Ok(())
}

fn step(n: usize, what: &str) {
    println!("\n{n}. {what}");
}

fn say(line: impl AsRef<str>) {
    println!("   {}", line.as_ref());
}

/// The next message of `sub`. A signal (messages were missed) is worth a line, not
/// the end of the tour, so it is printed and reading goes on.
async fn next_message(sub: &mut Subscription) -> pubsub_core::Result<Delivery> {
    while let Some(received) = sub.next().await {
        match received {
            Received::Message(delivery) => return Ok(delivery),
            Received::Signal(signal) => eprintln!("signal: {signal}"),
        }
    }
    Err(Error::Closed)
}

/// The payload as text, for printing.
fn text(delivery: &Delivery) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(delivery.payload())
}

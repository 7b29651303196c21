//! Infrahub's message bus: git agents compete for work in groups bound to routing key
//! patterns, waiting work goes out highest priority first, RPCs are answered with
//! typed responses, failing work is retried after a delay and then dead-lettered,
//! and registry refreshes are broadcast to every worker, who skips its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pubsub_core::{
    Delivery, Event, Handler, HandlerOptions, HandlerResult, Message, PubSub, Result, RetryPolicy,
    LAST_ERROR, ORIGINAL_TOPIC,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::catalog::infrahub::*;
use crate::demo;

/// The header that names who sent a message; a worker skips broadcasts it sent.
pub const INITIATOR: &str = "initiator_id";
/// The initiator id of the demo's API server.
const API: &str = "api-server";
/// Where work goes after its last failed attempt.
pub const DEAD_LETTER: &str = "infrahub.dead_letter";
/// How often a worker tries a message, and how long it waits in between.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(3)
        .delay(Duration::from_millis(100))
        .dead_letter(DEAD_LETTER)
}

/// The group (durable queue) of a work pattern: `check.*.*` is `infrahub.check`.
pub fn group_of(pattern: &str) -> String {
    format!("infrahub.{}", pattern.replace(".*", ""))
}

/// What a worker did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Work done (and acked).
    Ran {
        /// The worker.
        worker: String,
        /// The message's topic.
        topic: String,
        /// The message's priority.
        priority: u8,
    },
    /// One failed attempt.
    Failed {
        /// The worker.
        worker: String,
        /// The message's topic.
        topic: String,
    },
    /// A broadcast refresh applied.
    Refreshed {
        /// The worker.
        worker: String,
        /// The refresh topic.
        topic: String,
    },
    /// A broadcast the worker sent itself, skipped.
    Skipped {
        /// The worker.
        worker: String,
        /// The refresh topic.
        topic: String,
    },
}

/// The message `event` is sent as: JSON with its own priority, from `initiator`.
pub fn message_from<E: Event>(event: &E, initiator: &str) -> Result<Message> {
    Ok(Message::json(event)?
        .with_priority(E::PRIORITY)
        .with_header(INITIATOR, initiator))
}

/// Publishes `event` to its routing key as `initiator`.
pub async fn publish_from<E: Event>(bus: &PubSub, event: &E, initiator: &str) -> Result<()> {
    bus.topic(event.topic())
        .publish_message(message_from(event, initiator)?)
        .await
}

/// Sends `event` as an RPC and decodes the typed response.
pub async fn call<E: Event, R: DeserializeOwned>(
    bus: &PubSub,
    event: &E,
    initiator: &str,
) -> Result<R> {
    bus.topic(event.topic())
        .request_message(message_from(event, initiator)?, demo::PATIENCE)
        .await?
        .json()
}

/// A git agent: a member of every work group, and a broadcast subscriber of the
/// registry refreshes.
#[derive(Debug)]
pub struct Worker {
    handlers: Vec<Handler>,
}

struct Context {
    id: String,
    outcomes: UnboundedSender<Outcome>,
    /// Failed attempts per repository, to fail `refresh.git.fetch` only once.
    failures: Mutex<HashMap<String, u32>>,
}

impl Worker {
    /// Joins the work groups and the broadcast as worker `id`, reporting to `outcomes`.
    /// Returns once every subscription is confirmed.
    pub async fn start(bus: &PubSub, id: &str, outcomes: UnboundedSender<Outcome>) -> Result<Self> {
        let context = Arc::new(Context {
            id: id.to_owned(),
            outcomes,
            failures: Mutex::default(),
        });
        let mut handlers = Vec::new();
        for pattern in WORK_PATTERNS {
            let mut options = HandlerOptions::new()
                .group(group_of(pattern))
                .retry(retry_policy());
            // Infrahub's prefetch: a worker holds two messages, the rest wait in
            // priority order.
            options.subscribe = options.subscribe.prefetch(2);
            let context = Arc::clone(&context);
            handlers.push(bus.topic(pattern).on_with(options, move |d: Delivery| {
                let context = Arc::clone(&context);
                async move { work(&context, d).await }
            }));
        }
        let broadcast = Arc::clone(&context);
        handlers.push(bus.topic(BROADCAST_PATTERN).on(move |d: Delivery| {
            let context = Arc::clone(&broadcast);
            async move { refresh(&context, &d) }
        }));
        for handler in &mut handlers {
            handler.ready().await?;
        }
        Ok(Worker { handlers })
    }

    /// Leaves every group and the broadcast.
    pub fn stop(self) {
        self.handlers.into_iter().for_each(Handler::stop);
    }
}

/// The files of the one repository the demo's agents can read.
const README: &str = "# infrahub-demo\n";

async fn work(context: &Context, d: Delivery) -> HandlerResult {
    let topic = d.topic();
    if topic == SendEchoRequest::TOPIC {
        let request: SendEchoRequest = d.json()?;
        let response = SendEchoResponse::passed(
            topic,
            EchoData {
                response: format!("Reply to: {}", request.message),
            },
        );
        d.reply(&response).await?;
    } else if topic == GitFileGet::TOPIC {
        let request: GitFileGet = d.json()?;
        d.reply(&read_file(&request, &d)).await?;
    } else if topic == GitRepositoryConnectivity::TOPIC {
        let request: GitRepositoryConnectivity = d.json()?;
        if request.repository_location.contains(".invalid") {
            return fail(
                context,
                topic,
                format!("cannot reach {}", request.repository_location),
            );
        }
    } else if topic == RefreshGitFetch::TOPIC {
        let request: RefreshGitFetch = d.json()?;
        let failed_before = lock(&context.failures)
            .get(&request.repository_id)
            .copied()
            .unwrap_or(0);
        if failed_before == 0 {
            lock(&context.failures).insert(request.repository_id, 1);
            return fail(context, topic, "remote timed out".to_owned());
        }
    }
    println!("[{}] ran {topic} (priority {})", context.id, d.priority());
    context.outcomes.send(Outcome::Ran {
        worker: context.id.clone(),
        topic: topic.to_owned(),
        priority: d.priority(),
    })?;
    Ok(())
}

fn read_file(request: &GitFileGet, d: &Delivery) -> GitFileGetResponse {
    if request.file == "README.md" {
        return GitFileGetResponse::passed(
            GitFileGet::TOPIC,
            GitFileData {
                content: Some(README.to_owned()),
                ..GitFileData::default()
            },
        );
    }
    let error = format!("{} not found in {}", request.file, request.repository_name);
    GitFileGetResponse {
        passed: false,
        data: GitFileData {
            error_message: Some(error.clone()),
            http_code: Some(404),
            ..GitFileData::default()
        },
        errors: vec![error],
        initial_message: d.json::<Value>().ok(),
        ..GitFileGetResponse::passed(GitFileGet::TOPIC, GitFileData::default())
    }
}

fn fail(context: &Context, topic: &str, error: String) -> HandlerResult {
    println!("[{}] {topic} failed: {error}", context.id);
    context.outcomes.send(Outcome::Failed {
        worker: context.id.clone(),
        topic: topic.to_owned(),
    })?;
    Err(error.into())
}

fn refresh(context: &Context, d: &Delivery) -> HandlerResult {
    let worker = context.id.clone();
    let topic = d.topic().to_owned();
    let outcome = if d.header(INITIATOR) == Some(&context.id) {
        println!("[{worker}] skipped {topic}: sent it myself");
        Outcome::Skipped { worker, topic }
    } else {
        println!("[{worker}] refreshed the registry for {topic}");
        Outcome::Refreshed { worker, topic }
    };
    context.outcomes.send(outcome)?;
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A message given up after its last attempt.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The topic it was first published to.
    pub original_topic: String,
    /// The handler's last error.
    pub last_error: String,
    /// The message body.
    pub payload: Value,
}

/// What the demo saw.
#[derive(Debug)]
pub struct Report {
    /// The priorities of the backlog, in the order the first worker ran it.
    pub backlog: Vec<u8>,
    /// The answer to `send.echo.request`.
    pub echo: SendEchoResponse,
    /// The answer to `git.file.get` for a file that exists.
    pub file: GitFileGetResponse,
    /// The answer to `git.file.get` for a file that does not.
    pub missing: GitFileGetResponse,
    /// The message that failed every attempt.
    pub dead_letter: DeadLetter,
    /// Everything the workers did after the backlog.
    pub outcomes: Vec<Outcome>,
}

/// Runs the demo on `bus` (which needs groups: in-process or AMQP).
pub async fn run(bus: &PubSub) -> Result<Report> {
    let (outcomes, mut events) = unbounded_channel();
    let mut dead_letters = bus.topic(DEAD_LETTER).subscribe().await?;

    // The queues are durable: work published while no agent runs waits in them.
    for pattern in WORK_PATTERNS {
        bus.topic(pattern)
            .subscribe_group(&group_of(pattern))
            .await?
            .unsubscribe()
            .await?;
    }
    let backlog = publish_backlog(bus).await?;
    let first = Worker::start(bus, "worker-1", outcomes.clone()).await?;
    let mut order = Vec::new();
    for _ in 0..backlog {
        if let Outcome::Ran { priority, .. } = demo::next(&mut events, "the backlog").await? {
            order.push(priority);
        }
    }
    println!("backlog ran in priority order: {order:?}");
    let second = Worker::start(bus, "worker-2", outcomes).await?;

    publish_from(bus, &branch_merged(), API).await?;
    publish_from(
        bus,
        &NewPrimaryApi {
            meta: None,
            worker_id: "worker-2".into(),
        },
        API,
    )
    .await?;
    let echo: SendEchoResponse = call(
        bus,
        &SendEchoRequest {
            meta: None,
            message: "ping".into(),
        },
        API,
    )
    .await?;
    println!("echo: {}", echo.data.response);
    let file: GitFileGetResponse = call(bus, &git_file("README.md"), API).await?;
    let missing: GitFileGetResponse = call(bus, &git_file("missing.md"), API).await?;
    println!(
        "git.file.get: passed {} then {}",
        file.passed, missing.passed
    );
    publish_from(bus, &unreachable_repository(), API).await?;
    publish_from(bus, &fetch(), API).await?;
    publish_from(
        bus,
        &RefreshRegistryBranches {
            meta: Some(Meta {
                initiator_id: Some("worker-1".into()),
                ..Meta::default()
            }),
        },
        "worker-1",
    )
    .await?;
    publish_from(
        bus,
        &RefreshRegistryRebasedBranch {
            meta: None,
            branch: "feature".into(),
        },
        API,
    )
    .await?;

    let delivery = demo::next_message(&mut dead_letters, "the dead letter").await?;
    let dead_letter = DeadLetter {
        original_topic: delivery
            .header(ORIGINAL_TOPIC)
            .unwrap_or_default()
            .to_owned(),
        last_error: delivery.header(LAST_ERROR).unwrap_or_default().to_owned(),
        payload: delivery.json()?,
    };
    println!(
        "dead letter from {}: {}",
        dead_letter.original_topic, dead_letter.last_error
    );

    // Ran: branch merge, new primary, echo, two file reads, the fetch. Failed: the
    // fetch once, the unreachable repository three times. Four broadcast receipts.
    let outcomes = collect(&mut events, 6 + 4 + 4).await?;
    first.stop();
    second.stop();
    Ok(Report {
        backlog: order,
        echo,
        file,
        missing,
        dead_letter,
        outcomes,
    })
}

async fn collect(events: &mut UnboundedReceiver<Outcome>, count: usize) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(count);
    while outcomes.len() < count {
        outcomes.push(demo::next(events, "the workers' outcomes").await?);
    }
    Ok(outcomes)
}

/// Publishes requests of mixed priorities while no worker runs; returns how many.
async fn publish_backlog(bus: &PubSub) -> Result<usize> {
    let refresh = RequestProposedChangeRefreshArtifacts {
        meta: None,
        proposed_change: "pc-1".into(),
        source_branch: "feature".into(),
        source_branch_sync_with_git: false,
        destination_branch: "main".into(),
        branch_diff: json!({}),
        context: None,
    };
    let pipeline = RequestProposedChangePipeline {
        meta: None,
        proposed_change: "pc-1".into(),
        source_branch: "feature".into(),
        source_branch_sync_with_git: false,
        destination_branch: "main".into(),
        check_type: "all".into(),
        context: None,
    };
    let backlog = [
        (refresh.topic(), message_from(&refresh, API)?),
        (refresh.topic(), message_from(&refresh, API)?),
        (pipeline.topic(), message_from(&pipeline, API)?),
        (refresh.topic(), message_from(&refresh, API)?),
        (pipeline.topic(), message_from(&pipeline, API)?),
    ];
    let count = backlog.len();
    for (topic, message) in backlog {
        bus.topic(&topic).publish_message(message).await?;
    }
    Ok(count)
}

fn branch_merged() -> BranchMerged {
    BranchMerged {
        meta: None,
        source_branch: "feature".into(),
        target_branch: "main".into(),
        context: None,
    }
}

fn git_file(file: &str) -> GitFileGet {
    GitFileGet {
        meta: None,
        commit: "3f2a9c1".into(),
        file: file.into(),
        repository_id: "repo-1".into(),
        repository_name: "infrahub-demo".into(),
        repository_kind: "CoreRepository".into(),
    }
}

fn unreachable_repository() -> GitRepositoryConnectivity {
    GitRepositoryConnectivity {
        meta: None,
        repository_name: "lost".into(),
        repository_location: "https://git.example.invalid/lost.git".into(),
    }
}

fn fetch() -> RefreshGitFetch {
    RefreshGitFetch {
        meta: None,
        location: "https://git.example.org/infrahub-demo.git".into(),
        repository_id: "repo-1".into(),
        repository_name: "infrahub-demo".into(),
        repository_kind: "CoreRepository".into(),
        infrahub_branch_name: "main".into(),
        infrahub_branch_id: "branch-1".into(),
    }
}

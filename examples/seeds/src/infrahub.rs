//! Infrahub 1.4.13's message bus on RabbitMQ, as the contract sheet `infrahub.md`
//! describes it: the topic exchanges `infrahub.events` and `infrahub.dlx`, the shared
//! work queue `infrahub.rpcs` (`x-max-priority` 5) that git agents compete for with
//! manual acks and prefetch 2, broadcasts (`refresh.registry.*`, `refresh.git.*`) on
//! each process's own queue where a worker skips what it sent itself, and RPCs whose
//! `reply_to` and `correlation_id` travel in the body's `meta`, answered on the
//! default exchange.
//!
//! Our worker joins Infrahub's git agents on `infrahub.rpcs`; our requester asks
//! Infrahub's agents (or ours) from an exclusive callback queue of its own. Failed
//! work is retried as Infrahub retries it: `meta.retry_count` counted up, the body
//! published to the headers exchange `infrahub.delayed` with the header `delay` =
//! 5000 (a short int, as pamqp sends it), held by `infrahub.delay.five_seconds` for
//! its TTL, and dead-lettered through `infrahub.dlx` back into `infrahub.rpcs`;
//! given up once `retry_count` reaches [`MAX_RETRIES`].
//! On `memory://` the same program runs in-process, one group per work pattern, and
//! a retry waits [`RETRY_DELAY`] in the process.

use std::sync::Arc;
use std::time::Duration;

use pubsub_amqp::{AmqpBackend, QueueSpec};
use pubsub_core::backend::PublishOptions;
use pubsub_core::{
    Delivery, Event, Handler, HandlerOptions, HandlerResult, HeaderValue, Message, PubSub, Result,
    Subscription, CORRELATION_ID, REPLY_TO,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::catalog::infrahub::*;
use crate::demo;

/// The topic exchange of requests and events.
pub const EVENTS: &str = "infrahub.events";
/// The topic exchange retried messages come back through.
pub const DLX: &str = "infrahub.dlx";
/// The shared work queue.
pub const RPCS: &str = "infrahub.rpcs";
/// The `x-max-priority` of [`RPCS`].
pub const MAX_PRIORITY: u8 = 5;
/// Unacked messages a member of [`RPCS`] holds (Infrahub's
/// `maximum_concurrent_messages`).
pub const PREFETCH: u16 = 2;
/// The priority of replies: Infrahub's default, as its `reply()` sets none.
pub const REPLY_PRIORITY: u8 = 3;
/// The headers exchange retries go through.
pub const DELAYED: &str = "infrahub.delayed";
/// Infrahub's delay queues and their TTLs in milliseconds: each bound to [`DELAYED`]
/// by its `delay` header, each dead-lettering to [`DLX`] when the TTL ends.
pub const DELAY_QUEUES: [(&str, i16); 3] = [
    ("infrahub.delay.five_seconds", 5000),
    ("infrahub.delay.ten_seconds", 10_000),
    ("infrahub.delay.twenty_seconds", 20_000),
];
/// The `delay` of every retry, in milliseconds: Infrahub always takes the five
/// second queue.
pub const RETRY_DELAY_MS: i16 = DELAY_QUEUES[0].1;
/// [`RETRY_DELAY_MS`] as a duration, for the in-process bus.
pub const RETRY_DELAY: Duration = Duration::from_millis(RETRY_DELAY_MS as u64);
/// The `retry_count` at which a failing message is given up (Infrahub's
/// `maximum_message_retries`): a message runs at most 11 times.
pub const MAX_RETRIES: u32 = 10;

/// Infrahub's delay queue that holds messages whose `delay` header is `ttl_ms`.
fn delay_queue(name: &str, ttl_ms: i16) -> QueueSpec {
    QueueSpec::declare(name)
        .argument("x-dead-letter-exchange", DLX)
        .argument("x-message-ttl", i32::from(ttl_ms))
        .argument("x-max-priority", MAX_PRIORITY)
        .bind_headers(
            DELAYED,
            [
                ("x-match", "all".into()),
                ("delay", HeaderValue::from(ttl_ms)),
            ],
        )
}

/// A connection to Infrahub's bus: its two topic exchanges and a callback queue of
/// this process (`api-callback-<uuid>`, as Infrahub's API server names its own).
#[derive(Debug, Clone)]
pub struct Infrahub {
    /// `infrahub.events`, where requests and events are published.
    pub events: PubSub,
    /// On RabbitMQ: the backend, `infrahub.dlx` and `infrahub.delayed`.
    amqp: Option<Amqp>,
    callback: String,
}

#[derive(Debug, Clone)]
struct Amqp {
    backend: AmqpBackend,
    dlx: PubSub,
    delayed: PubSub,
}

impl Infrahub {
    /// Connects to `url`: on `amqp://` or `amqps://`, Infrahub's exchanges and
    /// queues as the contract declares them; otherwise the bus `url` names.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let hub = pubsub_seeds::infrahub::Infrahub::connect("memory://").await?;
    /// assert!(hub.callback().starts_with("api-callback-"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        let callback = format!("api-callback-{}", uuid::Uuid::new_v4());
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            let events = pubsub_connect::connect(url).await?;
            return Ok(Infrahub {
                events,
                amqp: None,
                callback,
            });
        }
        let backend = AmqpBackend::builder(url)
            .exchange(EVENTS)
            .queue(QueueSpec::declare(RPCS).argument("x-max-priority", MAX_PRIORITY))
            // Gone with our connection, as Infrahub's callback queues are.
            .queue(QueueSpec::declare(&callback).exclusive())
            .prefetch(PREFETCH)
            .connect()
            .await?;
        let amqp = Amqp {
            dlx: PubSub::new(backend.exchange(DLX)),
            delayed: PubSub::new(backend.headers_exchange(DELAYED)),
            backend: backend.clone(),
        };
        Ok(Infrahub {
            events: PubSub::new(backend),
            amqp: Some(amqp),
            callback,
        })
    }

    /// The name of this process's callback queue: the `reply_to` of its requests.
    pub fn callback(&self) -> &str {
        &self.callback
    }

    /// Declares the shared topology as Infrahub's API server does, or checks that
    /// it is there: both topic exchanges, [`RPCS`] bound to each with every one of
    /// [`WORK_PATTERNS`], and [`DELAYED`] with the [`DELAY_QUEUES`].
    pub async fn declare(&self) -> Result<()> {
        let dlx = self.amqp.as_ref().map(|amqp| &amqp.dlx);
        for bus in std::iter::once(&self.events).chain(dlx) {
            for pattern in WORK_PATTERNS {
                // Joining binds; the binding stays when the member leaves.
                bus.topic(pattern)
                    .subscribe_group(RPCS)
                    .await?
                    .unsubscribe()
                    .await?;
            }
        }
        if let Some(amqp) = &self.amqp {
            for (name, ttl_ms) in DELAY_QUEUES {
                amqp.backend
                    .declare_queue(&delay_queue(name, ttl_ms))
                    .await?;
            }
        }
        Ok(())
    }

    /// Publishes `message` for `topic` again after [`RETRY_DELAY`]: on RabbitMQ
    /// through [`DELAYED`] (its `delay` header picks the queue), in-process after a
    /// timer.
    async fn delay(&self, topic: &str, message: Message) -> Result<()> {
        let Some(amqp) = &self.amqp else {
            let topic = self.events.topic(topic);
            tokio::spawn(async move {
                tokio::time::sleep(RETRY_DELAY).await;
                if let Err(error) = topic.publish_message(message).await {
                    tracing::error!(topic = topic.name(), %error, "a delayed retry was lost");
                }
            });
            return Ok(());
        };
        amqp.delayed.topic(topic).publish_message(message).await
    }

    /// The patterns a worker consumes [`RPCS`] with. On RabbitMQ one consumer of the
    /// queue receives whatever any binding routed to it, so one pattern takes all
    /// and the worker holds at most [`PREFETCH`] messages, as an Infrahub agent
    /// does; in-process, each pattern is a group of its own.
    fn consumed(&self) -> &'static [&'static str] {
        match self.amqp {
            Some(_) => &WORK_PATTERNS[..1],
            None => WORK_PATTERNS,
        }
    }
}

/// The message `event` is published as: JSON with the AMQP priority of its routing
/// key, and its meta's `reply_to` and `correlation_id` as properties too.
pub fn message_of<E: Event + HasMeta>(event: &E) -> Result<Message> {
    let meta = event.meta();
    let mut message = Message::json(event)?.with_priority(E::PRIORITY);
    if let Some(reply_to) = &meta.reply_to {
        message = message.with_header(REPLY_TO, reply_to.as_str());
    }
    if let Some(id) = &meta.correlation_id {
        message = message.with_header(CORRELATION_ID, id.as_str());
    }
    Ok(message)
}

/// Publishes `event` to `infrahub.events` with its routing key.
pub async fn publish<E: Event + HasMeta>(hub: &Infrahub, event: &E) -> Result<()> {
    hub.events
        .topic(event.topic())
        .publish_message(message_of(event)?)
        .await
}

/// Sends RPCs from this process's callback queue, as Infrahub's `rpc()` does, and
/// waits for their replies at most [`demo::PATIENCE`] (Infrahub waits forever).
#[derive(Debug)]
pub struct Requester {
    hub: Infrahub,
    replies: Subscription,
}

impl Requester {
    /// Starts consuming the callback queue of `hub`.
    pub async fn start(hub: &Infrahub) -> Result<Self> {
        let replies = hub
            .events
            .topic(hub.callback())
            .subscribe_group(hub.callback())
            .await?;
        Ok(Requester {
            hub: hub.clone(),
            replies,
        })
    }

    /// Sends `request` with a fresh meta holding only its `correlation_id` and
    /// `reply_to` (as `rpc()` replaces it), and decodes the reply whose AMQP
    /// `correlation_id` is the request's; other replies are dropped.
    pub async fn call<E, R>(&mut self, request: &E) -> Result<R>
    where
        E: Event + HasMeta + Clone,
        R: DeserializeOwned,
    {
        let id = uuid::Uuid::new_v4().to_string();
        let mut request = request.clone();
        *request.meta_mut() = Meta::rpc(&id, self.hub.callback());
        publish(&self.hub, &request).await?;
        let replies = &mut self.replies;
        let wait = async {
            loop {
                let reply = demo::next_message(replies, "an Infrahub reply").await?;
                let ours = reply.header(CORRELATION_ID) == Some(id.as_str());
                let decoded = ours.then(|| reply.json());
                if !ours {
                    tracing::debug!(
                        correlation_id = reply.header(CORRELATION_ID),
                        "a reply to no request of ours; dropped"
                    );
                }
                reply.ack().await?;
                if let Some(decoded) = decoded {
                    return decoded;
                }
            }
        };
        demo::within("an Infrahub reply", wait).await?
    }
}

/// What a worker did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Work done (and acked).
    Ran {
        /// The worker.
        worker: String,
        /// The message's routing key.
        topic: String,
        /// The message's AMQP priority.
        priority: u8,
    },
    /// One failed attempt.
    Failed {
        /// The worker.
        worker: String,
        /// The message's routing key.
        topic: String,
    },
    /// A failed message sent through the delay topology to run again.
    Retried {
        /// The worker.
        worker: String,
        /// The message's routing key.
        topic: String,
        /// The `meta.retry_count` it was sent again with.
        retry_count: u32,
    },
    /// A failed message given up at [`MAX_RETRIES`].
    GaveUp {
        /// The worker.
        worker: String,
        /// The message's routing key.
        topic: String,
    },
    /// A broadcast applied.
    Refreshed {
        /// The worker.
        worker: String,
        /// The broadcast's routing key.
        topic: String,
    },
    /// A broadcast the worker sent itself, skipped.
    Skipped {
        /// The worker.
        worker: String,
        /// The broadcast's routing key.
        topic: String,
    },
}

/// A git agent: a member of [`RPCS`] beside Infrahub's agents, and a subscriber of
/// the broadcasts on a queue of its own.
#[derive(Debug)]
pub struct Worker {
    id: String,
    hub: Infrahub,
    handlers: Vec<Handler>,
}

struct Context {
    id: String,
    hub: Infrahub,
    outcomes: UnboundedSender<Outcome>,
}

impl Worker {
    /// Joins [`RPCS`] and the broadcasts as worker `id`, reporting to `outcomes`.
    /// Returns once every subscription is confirmed.
    pub async fn start(
        hub: &Infrahub,
        id: &str,
        outcomes: UnboundedSender<Outcome>,
    ) -> Result<Self> {
        let context = Arc::new(Context {
            id: id.to_owned(),
            hub: hub.clone(),
            outcomes,
        });
        let mut handlers = Vec::new();
        for pattern in hub.consumed() {
            // No retry policy: a failure is retried the way Infrahub retries (see
            // `retry`), and the delivery acked.
            let mut options = HandlerOptions::new().group(RPCS);
            options.subscribe = options.subscribe.prefetch(PREFETCH);
            let context = Arc::clone(&context);
            handlers.push(
                hub.events
                    .topic(pattern)
                    .on_with(options, move |d: Delivery| {
                        let context = Arc::clone(&context);
                        async move { work(&context, d).await }
                    }),
            );
        }
        for pattern in BROADCAST_PATTERNS {
            let context = Arc::clone(&context);
            handlers.push(hub.events.topic(pattern).on(move |d: Delivery| {
                let context = Arc::clone(&context);
                async move { refresh(&context, &d) }
            }));
        }
        for handler in &mut handlers {
            handler.ready().await?;
        }
        Ok(Worker {
            id: id.to_owned(),
            hub: hub.clone(),
            handlers,
        })
    }

    /// Publishes a broadcast `event` with this worker as its `initiator_id`.
    pub async fn broadcast<E: Event + HasMeta>(&self, mut event: E) -> Result<()> {
        event.meta_mut().initiator_id = Some(self.id.clone());
        publish(&self.hub, &event).await
    }

    /// Leaves [`RPCS`] and the broadcasts.
    pub fn stop(self) {
        self.handlers.into_iter().for_each(Handler::stop);
    }
}

/// The files of the one repository the demo's agents can read.
const README: &str = "# infrahub-demo\n";

/// Any message, as far as a worker reads it before its routing key says more.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    meta: Meta,
}

/// Runs the handler of `d`'s routing key. A failed request that asked for a reply
/// is answered with an `rpc_error` response and not retried, as Infrahub does;
/// other failures are retried as Infrahub retries them ([`retry`]).
async fn work(context: &Context, d: Delivery) -> HandlerResult {
    let topic = d.topic();
    let meta = d.json::<Envelope>()?.meta;
    if let Err(error) = handle(context, &d, &meta).await {
        println!("[{}] {topic} failed: {error}", context.id);
        context.outcomes.send(Outcome::Failed {
            worker: context.id.clone(),
            topic: topic.to_owned(),
        })?;
        let failed = rpc_error(&meta, error.to_string(), d.json()?);
        if !reply(&context.hub.events, &meta, &failed).await? {
            retry(context, &d, &meta).await?;
        }
        return Ok(());
    }
    println!("[{}] ran {topic} (priority {})", context.id, d.priority());
    context.outcomes.send(Outcome::Ran {
        worker: context.id.clone(),
        topic: topic.to_owned(),
        priority: d.priority(),
    })?;
    Ok(())
}

/// Retries failed work `d` as Infrahub does: gives it up once its `retry_count` is
/// [`MAX_RETRIES`]; otherwise publishes the body with `retry_count` one more to
/// [`DELAYED`] under its own routing key and priority, with the header `delay` =
/// [`RETRY_DELAY_MS`], from where it comes back to [`RPCS`] after the delay. The
/// failed delivery is acked either way.
async fn retry(context: &Context, d: &Delivery, meta: &Meta) -> HandlerResult {
    let (worker, topic) = (context.id.clone(), d.topic().to_owned());
    let retry_count = meta.retry_count.unwrap_or(0);
    if retry_count >= MAX_RETRIES {
        tracing::error!(
            topic,
            retry_count,
            "Message failed after maximum number of retries"
        );
        println!("[{worker}] {topic} given up after {retry_count} retries");
        context.outcomes.send(Outcome::GaveUp { worker, topic })?;
        return Ok(());
    }
    // The body as it came, unknown keys included, with the counter raised.
    let Value::Object(mut body) = d.json::<Value>()? else {
        return Err(format!("{topic}: the body is no JSON object").into());
    };
    let meta = body
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(meta) = meta else {
        return Err(format!("{topic}: meta is no JSON object").into());
    };
    meta.insert("retry_count".into(), (retry_count + 1).into());
    let message = Message::json(&body)?
        .with_priority(d.priority())
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_header("delay", RETRY_DELAY_MS);
    context.hub.delay(&topic, message).await?;
    println!(
        "[{worker}] {topic} retried ({} of {MAX_RETRIES})",
        retry_count + 1
    );
    context.outcomes.send(Outcome::Retried {
        worker,
        topic,
        retry_count: retry_count + 1,
    })?;
    Ok(())
}

async fn handle(context: &Context, d: &Delivery, meta: &Meta) -> HandlerResult {
    let topic = d.topic();
    if topic == SendEchoRequest::TOPIC {
        let request: SendEchoRequest = d.json()?;
        let response = format!("Reply to: {}", request.message);
        let data = EchoData { response };
        reply(
            &context.hub.events,
            meta,
            &Response::passed(topic, meta, data),
        )
        .await?;
    } else if topic == GitFileGet::TOPIC {
        let request: GitFileGet = d.json()?;
        let response = Response::passed(topic, meta, read_file(&request));
        reply(&context.hub.events, meta, &response).await?;
    } else if topic == GitRepositoryConnectivity::TOPIC {
        let request: GitRepositoryConnectivity = d.json()?;
        let location = request.repository_location;
        if location.contains(".invalid") {
            return Err(format!("cannot reach {location}").into());
        }
        let data = ConnectivityData {
            message: format!("reached {location}"),
            success: true,
        };
        reply(
            &context.hub.events,
            meta,
            &Response::passed(topic, meta, data),
        )
        .await?;
    } else {
        // Infrahub 1.4.13 has no model for the key: it logs and settles the message.
        tracing::warn!(topic, "Infrahub message of no known kind; acked");
    }
    Ok(())
}

/// `git.file.get`: a missing file is a passed response with the error in `data`,
/// as Infrahub's agent answers it.
fn read_file(request: &GitFileGet) -> GitFileData {
    if request.file == "README.md" {
        return GitFileData {
            content: Some(README.to_owned()),
            ..GitFileData::default()
        };
    }
    GitFileData {
        error_message: Some(format!(
            "{} not found in {}",
            request.file, request.repository_name
        )),
        http_code: Some(404),
        ..GitFileData::default()
    }
}

/// Answers a request of meta `request` with `response`, as Infrahub's responder
/// does: to the default exchange with the body's `reply_to` as routing key and its
/// `correlation_id` as the AMQP property (whatever properties the request had).
/// Returns whether the request asked for a reply.
async fn reply<R: Serialize>(bus: &PubSub, request: &Meta, response: &R) -> Result<bool> {
    let Some(reply_to) = request.reply_to.as_deref().filter(|r| !r.is_empty()) else {
        return Ok(false);
    };
    let mut message = Message::json(response)?.with_priority(REPLY_PRIORITY);
    if let Some(id) = &request.correlation_id {
        message = message.with_header(CORRELATION_ID, id.as_str());
    }
    bus.backend()
        .reply_publisher(reply_to)?
        .publish(message, PublishOptions::default())
        .await?;
    Ok(true)
}

fn refresh(context: &Context, d: &Delivery) -> HandlerResult {
    let worker = context.id.clone();
    let topic = d.topic().to_owned();
    let meta = d.json::<Envelope>()?.meta;
    let outcome = if meta.initiator_id.as_deref() == Some(context.id.as_str()) {
        println!("[{worker}] skipped {topic}: sent it myself");
        Outcome::Skipped { worker, topic }
    } else {
        println!("[{worker}] refreshed for {topic}");
        Outcome::Refreshed { worker, topic }
    };
    context.outcomes.send(outcome)?;
    Ok(())
}

/// What the demo saw.
#[derive(Debug)]
pub struct Report {
    /// The answer to `send.echo.request`.
    pub echo: SendEchoResponse,
    /// The answer to `git.file.get` for a file that exists.
    pub file: GitFileGetResponse,
    /// The answer to `git.file.get` for a file that does not.
    pub missing: GitFileGetResponse,
    /// Everything the workers did.
    pub outcomes: Vec<Outcome>,
}

/// How many outcomes [`run`] waits for: the echo and two file reads ran; the
/// unreachable repository, sent with `retry_count` 9, failed, was retried once (as
/// 10), failed again and was given up; the branches refresh was skipped by its
/// sender and applied by the other worker, the rebased branch and the fetch
/// applied by both.
pub const DEMO_OUTCOMES: usize = 3 + 4 + 6;

/// The `retry_count` the demo's failing message starts with, so that it reaches
/// [`MAX_RETRIES`] after one retry rather than ten.
pub const DEMO_RETRY_COUNT: u32 = MAX_RETRIES - 1;

/// Runs the demo on `hub`: two workers, RPCs from our requester, a failing message
/// retried through the delay topology and given up, and broadcasts.
pub async fn run(hub: &Infrahub) -> Result<Report> {
    let (outcomes, mut events) = unbounded_channel();
    hub.declare().await?;
    let first = Worker::start(hub, "worker-1", outcomes.clone()).await?;
    let second = Worker::start(hub, "worker-2", outcomes).await?;
    let mut requester = Requester::start(hub).await?;

    let ping = SendEchoRequest {
        meta: Meta::default(),
        message: "ping".into(),
    };
    let echo: SendEchoResponse = requester.call(&ping).await?;
    println!("echo: {}", echo.data.response);
    let file: GitFileGetResponse = requester.call(&git_file("README.md")).await?;
    let missing: GitFileGetResponse = requester.call(&git_file("missing.md")).await?;
    println!(
        "git.file.get: {:?}, then {:?}",
        file.data.content, missing.data.error_message
    );
    publish(hub, &unreachable_repository()).await?;
    first.broadcast(RefreshRegistryBranches::default()).await?;
    let rebased = RefreshRegistryRebasedBranch {
        meta: Meta::default(),
        branch: "feature".into(),
    };
    publish(hub, &rebased).await?;
    publish(hub, &fetch()).await?;

    let outcomes = collect(&mut events, DEMO_OUTCOMES).await?;
    first.stop();
    second.stop();
    Ok(Report {
        echo,
        file,
        missing,
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

/// A `git.file.get` of `file` in the demo's repository.
pub fn git_file(file: &str) -> GitFileGet {
    GitFileGet {
        meta: Meta::default(),
        commit: "3f2a9c1".into(),
        file: file.into(),
        repository_id: "repo-1".into(),
        repository_name: "infrahub-demo".into(),
        repository_kind: "CoreRepository".into(),
    }
}

fn unreachable_repository() -> GitRepositoryConnectivity {
    GitRepositoryConnectivity {
        meta: Meta {
            retry_count: Some(DEMO_RETRY_COUNT),
            ..Meta::default()
        },
        repository_name: "lost".into(),
        repository_location: "https://git.example.invalid/lost.git".into(),
    }
}

fn fetch() -> RefreshGitFetch {
    RefreshGitFetch {
        meta: Meta::default(),
        location: "https://git.example.org/infrahub-demo.git".into(),
        repository_id: "repo-1".into(),
        repository_name: "infrahub-demo".into(),
        repository_kind: "CoreRepository".into(),
        infrahub_branch_name: "main".into(),
        infrahub_branch_id: "branch-1".into(),
    }
}

//! Infrahub on a private RabbitMQ node, against aio-pika playing Infrahub 1.4.13's
//! API server and git agent as the contract sheet `infrahub.md` describes them
//! (`tests/python/infrahub_aio.py`). Each test has a vhost of its own.

use std::process::Stdio;

use pubsub_brokers::RabbitServer;
use pubsub_seeds::catalog::infrahub::{
    GitRepositoryConnectivity, Meta, RefreshRegistryBranches, SendEchoRequest, SendEchoResponse,
};
use pubsub_seeds::demo::{self, PATIENCE};
use pubsub_seeds::infrahub::{self, Infrahub, Outcome, Requester, Worker};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

mod support;

/// The URL of a fresh vhost on the shared node.
fn vhost() -> String {
    let server = RabbitServer::shared();
    let name = format!("infrahub-{}", uuid::Uuid::new_v4().simple());
    server.rabbitmqctl(&["add_vhost", &name]);
    server.rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
    format!("amqp://guest:guest@127.0.0.1:{}/{name}", server.port())
}

fn rabbitmqctl(url: &str, args: &[&str]) -> String {
    let vhost = url.rsplit('/').next().unwrap();
    let mut all = args.to_vec();
    all.extend(["-p", vhost, "-q", "--no-table-headers"]);
    RabbitServer::shared().rabbitmqctl(&all)
}

async fn aio(url: &str, args: &[&str]) -> String {
    let mut all = vec![url.to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    support::python("infrahub_aio.py", &all).await
}

/// Our side: the topology declared, a worker of id `id` reporting its outcomes.
async fn worker(url: &str, id: &str) -> (Infrahub, Worker, UnboundedReceiver<Outcome>) {
    let hub = Infrahub::connect(url).await.expect("connect");
    hub.declare().await.expect("declare Infrahub's topology");
    let (outcomes, events) = unbounded_channel();
    let worker = Worker::start(&hub, id, outcomes).await.expect("worker");
    (hub, worker, events)
}

/// An aio-pika process that runs until its stdin is closed: a git agent, or a spy
/// on the retries.
struct Agent {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Agent {
    async fn start(url: &str) -> Agent {
        Agent::run(url, "agent").await
    }

    async fn run(url: &str, mode: &str) -> Agent {
        let path = format!(
            "{}/tests/python/infrahub_aio.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut child = tokio::process::Command::new("python3")
            .args([path.as_str(), url, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the aio-pika agent starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut agent = Agent { child, lines };
        assert_eq!(agent.line().await, "ready");
        agent
    }

    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(PATIENCE, self.lines.next_line()).await;
        line.expect("the agent said nothing in time")
            .expect("the agent's output")
            .expect("the agent ended")
    }

    async fn handled(&mut self) -> Value {
        serde_json::from_str(&self.line().await).expect("a JSON line")
    }

    async fn stop(self) {
        assert_eq!(
            self.rest().await,
            Vec::<String>::new(),
            "more lines than read"
        );
    }

    /// Ends it, and returns the lines it printed that were not read.
    async fn rest(mut self) -> Vec<String> {
        drop(self.child.stdin.take().unwrap().shutdown().await);
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await;
        assert!(status.expect("the agent ends").unwrap().success());
        let mut rest = Vec::new();
        while let Some(line) = self.lines.next_line().await.expect("the agent's output") {
            rest.push(line);
        }
        rest
    }
}

/// (a) An API server's `send.echo.request`, meta in the body, is answered by our
/// worker on the default exchange to its callback queue, with the correlation id
/// property it matches by and the envelope it parses. The worker declared first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_answers_an_api_server_rpc() {
    let url = vhost();
    let (_hub, worker, mut outcomes) = worker(&url, "worker-1").await;
    let printed = aio(&url, &["rpc", "ping"]).await;
    let reply: Value = serde_json::from_str(&printed).expect("the reply as JSON");
    assert_eq!(reply["exchange"], "", "the default exchange");
    assert_eq!(reply["routing_key"], reply["callback"]);
    let body = &reply["body"];
    assert_eq!(
        body,
        &json!({"meta": {"request_id": "", "correlation_id": body["meta"]["correlation_id"]},
            "passed": true, "routing_key": "send.echo.request",
            "data": {"response": "Reply to: ping"}, "errors": []})
    );
    assert!(body["meta"]["correlation_id"].is_string());
    let ran = demo::next(&mut outcomes, "the echo").await.unwrap();
    assert!(
        matches!(&ran, Outcome::Ran { topic, priority: 5, .. } if topic == "send.echo.request"),
        "{ran:?}"
    );
    worker.stop();
}

/// (b) The API server declares first, then our worker: the same topology, no
/// PRECONDITION_FAILED; and the work queue is as the sheet says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_is_the_same_whoever_declares_first() {
    let url = vhost();
    assert_eq!(aio(&url, &["declare"]).await.trim(), "declared");
    let (_hub, worker, _outcomes) = worker(&url, "worker-1").await;
    assert_eq!(aio(&url, &["declare"]).await.trim(), "declared");
    let queues = rabbitmqctl(
        &url,
        &["list_queues", "name", "durable", "auto_delete", "arguments"],
    );
    let rpcs = queues
        .lines()
        .find(|l| l.starts_with("infrahub.rpcs\t"))
        .unwrap();
    assert!(rpcs.contains("true\tfalse"), "{rpcs}");
    assert!(rpcs.contains("x-max-priority"), "{rpcs}");
    let exchanges = rabbitmqctl(&url, &["list_exchanges", "name", "type", "durable"]);
    let expected_exchanges = [
        "infrahub.events\ttopic\ttrue",
        "infrahub.dlx\ttopic\ttrue",
        "infrahub.delayed\theaders\ttrue",
    ];
    for expected in expected_exchanges {
        assert!(exchanges.lines().any(|l| l == expected), "{exchanges}");
    }
    let bindings = rabbitmqctl(
        &url,
        &[
            "list_bindings",
            "source_name",
            "destination_name",
            "routing_key",
        ],
    );
    for exchange in [infrahub::EVENTS, infrahub::DLX] {
        let mut keys: Vec<_> = bindings
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{exchange}\t{}\t", infrahub::RPCS)))
            .collect();
        keys.sort_unstable();
        let mut expected = pubsub_seeds::catalog::infrahub::WORK_PATTERNS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{exchange}");
    }
    // The delay queues: their TTL, dead-lettered to infrahub.dlx, each bound to
    // infrahub.delayed by its `delay` header.
    for (name, ttl) in infrahub::DELAY_QUEUES {
        let queue = queues
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name} in {queues}"));
        assert!(queue.contains("true\tfalse"), "{queue}");
        for argument in [
            format!("{{\"x-message-ttl\",{ttl}}}"),
            "{\"x-dead-letter-exchange\",\"infrahub.dlx\"}".to_owned(),
        ] {
            assert!(queue.contains(&argument), "{argument} in {queue}");
        }
    }
    let header_bindings = rabbitmqctl(
        &url,
        &[
            "list_bindings",
            "source_name",
            "destination_name",
            "arguments",
        ],
    );
    for (name, ttl) in infrahub::DELAY_QUEUES {
        let binding = header_bindings
            .lines()
            .find(|l| l.starts_with(&format!("{}\t{name}\t", infrahub::DELAYED)))
            .unwrap_or_else(|| panic!("{name} bound to infrahub.delayed: {header_bindings}"));
        assert!(
            binding.contains(&format!("{{\"delay\",{ttl}}}")),
            "{binding}"
        );
    }
    // One consumer of the work queue per worker, with manual acks and prefetch 2.
    let consumers = rabbitmqctl(
        &url,
        &[
            "list_consumers",
            "queue_name",
            "ack_required",
            "prefetch_count",
        ],
    );
    let rpcs: Vec<_> = consumers
        .lines()
        .filter(|l| l.starts_with("infrahub.rpcs\t"))
        .collect();
    assert_eq!(rpcs, vec!["infrahub.rpcs\ttrue\t2"], "{consumers}");
    worker.stop();
}

/// (c) An aio-pika git agent (passive queue, prefetch 2, manual acks) and our worker
/// share `git.file.get` work: each message is handled once, by one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aio_pika_agent_and_our_worker_share_the_work_queue() {
    let url = vhost();
    assert_eq!(aio(&url, &["declare"]).await.trim(), "declared");
    let (hub, worker, mut outcomes) = worker(&url, "worker-1").await;
    let mut agent = Agent::start(&url).await;
    const JOBS: usize = 20;
    for n in 0..JOBS {
        infrahub::publish(&hub, &infrahub::git_file(&format!("f{n}.md")))
            .await
            .unwrap();
    }
    let mut files = Vec::new();
    let mut ours = 0;
    while files.len() < JOBS {
        tokio::select! {
            outcome = demo::next(&mut outcomes, "our worker's work") => {
                assert!(matches!(outcome.unwrap(), Outcome::Ran { priority: 4, .. }));
                ours += 1;
                files.push(None);
            }
            handled = agent.handled() => {
                assert_eq!(handled["handled"], "git.file.get");
                assert_eq!(handled["priority"], 4);
                assert_eq!(handled["body"]["meta"], json!({"request_id": ""}));
                files.push(Some(handled["body"]["file"].as_str().unwrap().to_owned()));
            }
        }
    }
    let mut theirs: Vec<_> = files.iter().flatten().collect();
    let count = theirs.len();
    theirs.dedup();
    assert_eq!(theirs.len(), count, "the agent handled a file twice");
    assert!(ours > 0 && count > 0, "ours {ours}, the agent's {count}");
    agent.stop().await;
    // Every message was acked: nothing waits or is unacked in the queue.
    let depth = rabbitmqctl(&url, &["list_queues", "name", "messages"]);
    assert!(depth.lines().any(|l| l == "infrahub.rpcs\t0"), "{depth}");
    worker.stop();
}

/// (d) Our requester's `send.echo.request` is answered by an aio-pika agent that,
/// like Infrahub's, reads only the body's meta.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aio_pika_agent_answers_our_requester() {
    let url = vhost();
    assert_eq!(aio(&url, &["declare"]).await.trim(), "declared");
    let hub = Infrahub::connect(&url).await.unwrap();
    hub.declare().await.unwrap();
    let mut agent = Agent::start(&url).await;
    let mut requester = Requester::start(&hub).await.unwrap();
    let ping = SendEchoRequest {
        meta: Meta::from_initiator("dropped by rpc()"),
        message: "ping".into(),
    };
    let reply: SendEchoResponse = requester.call(&ping).await.expect("the agent's reply");
    assert!(reply.passed);
    assert_eq!(reply.data.response, "Reply to: ping");
    let request = agent.handled().await;
    assert_eq!(request["priority"], 5);
    let meta = &request["body"]["meta"];
    assert_eq!(meta["reply_to"], hub.callback());
    assert_eq!(
        reply.meta.correlation_id.as_deref(),
        meta["correlation_id"].as_str()
    );
    assert_eq!(
        meta.as_object().unwrap().len(),
        3,
        "only rpc()'s meta: {meta}"
    );
    agent.stop().await;
}

/// (e) A `refresh.registry.branches` our worker sent itself is skipped; one from
/// another initiator, with a trace-context header, is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_skips_its_own_broadcast_only() {
    let url = vhost();
    let (_hub, worker, mut outcomes) = worker(&url, "worker-1").await;
    worker
        .broadcast(RefreshRegistryBranches::default())
        .await
        .unwrap();
    let own = demo::next(&mut outcomes, "our own broadcast")
        .await
        .unwrap();
    assert!(matches!(own, Outcome::Skipped { .. }), "{own:?}");
    let body = r#"{"meta":{"request_id":"","initiator_id":"another-worker"}}"#;
    let printed = aio(&url, &["publish", "refresh.registry.branches", body]).await;
    assert_eq!(printed.trim(), "published");
    let other = demo::next(&mut outcomes, "the other's broadcast")
        .await
        .unwrap();
    assert!(matches!(other, Outcome::Refreshed { .. }), "{other:?}");
    worker.stop();
}

/// The whole demo on RabbitMQ under Infrahub's own names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_rabbitmq() {
    let hub = Infrahub::connect(&vhost()).await.unwrap();
    let report = infrahub::run(&hub).await.expect("the Infrahub demo");
    assert_eq!(report.echo.data.response, "Reply to: ping");
    assert_eq!(report.missing.data.http_code, Some(404));
    assert_eq!(report.outcomes.len(), infrahub::DEMO_OUTCOMES);
    let skipped = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Skipped { .. }))
        .count();
    assert_eq!(skipped, 1);
}

/// A `git.repository.connectivity` whose repository cannot be reached, so every
/// attempt fails.
fn unreachable(retry_count: Option<u32>) -> GitRepositoryConnectivity {
    GitRepositoryConnectivity {
        meta: Meta {
            retry_count,
            ..Meta::default()
        },
        repository_name: "lost".into(),
        repository_location: "https://git.example.invalid/lost.git".into(),
    }
}

/// (f) Our worker retries failed work as Infrahub's does, on topology Infrahub's API
/// server declared: the body with `retry_count` one more to `infrahub.delayed` with
/// the integer header `delay` = 5000 (which Infrahub's binding matches), back in
/// `infrahub.rpcs` through `infrahub.dlx` after the five-second TTL, and given up,
/// acked and not sent again, once `retry_count` is 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_retry_goes_round_infrahubs_delay_queue_and_is_given_up_at_ten() {
    let url = vhost();
    assert_eq!(aio(&url, &["declare"]).await.trim(), "declared");
    let mut spy = Agent::run(&url, "spy").await;
    let (hub, worker, mut outcomes) = worker(&url, "worker-1").await;
    infrahub::publish(&hub, &unreachable(Some(infrahub::MAX_RETRIES - 1)))
        .await
        .expect("publish");
    let topic = "git.repository.connectivity";
    let failed = demo::next(&mut outcomes, "the first attempt")
        .await
        .unwrap();
    assert!(
        matches!(&failed, Outcome::Failed { topic: t, .. } if t == topic),
        "{failed:?}"
    );
    let retried = demo::next(&mut outcomes, "the retry").await.unwrap();
    assert!(
        matches!(
            retried,
            Outcome::Retried {
                retry_count: 10,
                ..
            }
        ),
        "{retried:?}"
    );
    let sent_again = std::time::Instant::now();
    let seen = spy.handled().await;
    assert_eq!(seen["routing_key"], topic);
    assert_eq!(seen["headers"], json!({"delay": 5000}));
    assert_eq!(seen["priority"], 3);
    assert_eq!(seen["body"]["meta"]["retry_count"], 10);
    assert_eq!(
        seen["body"]["repository_location"],
        "https://git.example.invalid/lost.git"
    );
    // Back from the delay queue when its TTL ends: a second attempt, the last.
    let again = demo::next(&mut outcomes, "the attempt after the delay")
        .await
        .unwrap();
    assert!(
        matches!(&again, Outcome::Failed { topic: t, .. } if t == topic),
        "{again:?}"
    );
    assert!(
        sent_again.elapsed() >= std::time::Duration::from_secs(4),
        "the TTL held it"
    );
    let gave_up = demo::next(&mut outcomes, "giving up").await.unwrap();
    assert!(matches!(gave_up, Outcome::GaveUp { .. }), "{gave_up:?}");
    // Given up is acked: the work queue empties (the ack follows the handler's
    // return, so it is waited for), and nothing was sent round again.
    let drained = demo::within("the work queue to empty", async {
        loop {
            let queues = rabbitmqctl(&url, &["list_queues", "name", "messages"]);
            if queues.lines().any(|l| l == "infrahub.rpcs\t0") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    drained.await.expect("the given-up message acked");
    worker.stop();
    assert_eq!(spy.rest().await, Vec::<String>::new());
}

/// (g) A retry as Infrahub's worker publishes it (aio-pika, `delay` 5000 on
/// `infrahub.delayed`) comes back to our worker through the delay topology our
/// side declared, and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infrahubs_retry_comes_back_to_our_worker_through_our_topology() {
    let url = vhost();
    let (_hub, worker, mut outcomes) = worker(&url, "worker-1").await;
    let body = json!({"meta": {"request_id": "", "retry_count": 1},
        "repository_name": "demo", "repository_location": "https://git.example.org/demo.git"});
    let published = aio(
        &url,
        &["retry", "git.repository.connectivity", &body.to_string()],
    )
    .await;
    assert_eq!(published.trim(), "published");
    let sent = std::time::Instant::now();
    let ran = demo::next(&mut outcomes, "the retry after its delay")
        .await
        .unwrap();
    assert!(
        matches!(&ran, Outcome::Ran { topic, .. } if topic == "git.repository.connectivity"),
        "{ran:?}"
    );
    assert!(
        sent.elapsed() >= std::time::Duration::from_secs(4),
        "the TTL held it"
    );
    worker.stop();
}

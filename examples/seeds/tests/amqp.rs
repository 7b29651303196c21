//! ESN, Infrahub and brainlife on a private RabbitMQ node, with pika as the seed
//! systems' own clients on the other end. Each test has a vhost of its own, so the
//! durable queues of one never meet another's.

use std::time::Duration;

use pubsub_brokers::RabbitServer;
use pubsub_connect::connect;
use pubsub_core::{Event, PubSub};
use pubsub_seeds::catalog::brainlife::{
    EmailConfig, NotificationHandler, NotificationRequest, Task, TASK_FINISHED,
};
use pubsub_seeds::catalog::esn::MessageStored;
use pubsub_seeds::infrahub::Outcome;
use pubsub_seeds::{brainlife, demo, esn, infrahub};
use serde_json::Value;

mod support;

/// The URL of a fresh vhost on the shared node (with `query` appended).
fn vhost(query: &str) -> String {
    let server = RabbitServer::shared();
    let name = format!("examples-{}", uuid::Uuid::new_v4().simple());
    server.rabbitmqctl(&["add_vhost", &name]);
    server.rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
    format!(
        "amqp://guest:guest@127.0.0.1:{}/{name}{query}",
        server.port()
    )
}

async fn bus(url: &str) -> PubSub {
    connect(url).await.expect("a bus on the private RabbitMQ")
}

#[tokio::test]
async fn esn_runs_on_rabbitmq_with_an_exchange_per_topic() {
    let url = vhost("?routing=fanout");
    let report = esn::run(&url).await.expect("the ESN demo on RabbitMQ");
    for node in ["a", "b"] {
        assert_eq!(report.count(node, "global", "message:stored"), 1, "{node}");
        assert_eq!(
            report.count(node, "global", "message:activity"),
            1,
            "{node}"
        );
    }
    assert_eq!(report.count("a", "local", "message:activity"), 1);
    let vhost = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let exchanges =
        RabbitServer::shared().rabbitmqctl(&["list_exchanges", "-p", vhost, "name", "type"]);
    for topic in ["message:stored", "message:activity"] {
        assert!(
            exchanges.contains(&format!("{topic}\tfanout")),
            "{topic} in {exchanges}"
        );
    }
}

/// ESN's nodes start before RabbitMQ does: their subscriptions and publishes wait
/// for the broker and go through once it is up.
#[tokio::test(flavor = "multi_thread")]
async fn esn_starts_before_rabbitmq() {
    let server = RabbitServer::start();
    server.stop();
    let url = format!(
        "{}?routing=fanout&lazy=true&connect_timeout=60s",
        server.url()
    );
    let nodes = tokio::spawn(async move { esn::run(&url).await });
    let restart = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    });
    // The node takes seconds to boot: more than the demo's patience per step.
    let report = tokio::time::timeout(Duration::from_secs(90), nodes)
        .await
        .expect("the nodes finished once the broker was up")
        .unwrap()
        .expect("the ESN demo");
    let _server = restart.await.unwrap();
    assert_eq!(report.received.len(), 8);
    assert_eq!(report.count("b", "global", "message:stored"), 1);
}

/// An ESN node written in Node.js publishes to the `message:stored` fanout exchange;
/// ours receives the typed message.
#[tokio::test]
async fn esn_node_receives_what_a_pika_node_publishes() {
    let url = vhost("?routing=fanout");
    let node = esn::Node::start("rust", &url).await.unwrap();
    let mut stored = node.global.subscribe_to::<MessageStored>().await.unwrap();
    let body = r#"{"_id":"5f1c","objectType":"whatsup","content":"from node.js"}"#;
    let base = url.split('?').next().unwrap().to_owned();
    support::python(
        "pika_publish.py",
        &[
            base,
            MessageStored::TOPIC.into(),
            String::new(),
            body.into(),
        ],
    )
    .await;
    let message = support::next_event(&mut stored, "the stored message").await;
    assert_eq!(message.0["content"], "from node.js");
}

#[tokio::test]
async fn infrahub_demo_runs_on_rabbitmq() {
    let report = infrahub::run(&bus(&vhost("")).await)
        .await
        .expect("the Infrahub demo");
    assert_eq!(
        report.backlog,
        vec![5, 5, 3, 3, 3],
        "RabbitMQ's priority queue"
    );
    assert_eq!(report.echo.data.response, "Reply to: ping");
    assert!(report.file.passed && !report.missing.passed);
    assert_eq!(
        report.dead_letter.original_topic,
        "git.repository.connectivity"
    );
    let skipped = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Skipped { .. }))
        .count();
    assert_eq!(skipped, 1);
}

/// Infrahub's Python side sends `send.echo.request` with `reply_to` and
/// `correlation_id`; a worker of ours answers with the seed's response fields.
#[tokio::test]
async fn infrahub_worker_answers_a_pika_rpc() {
    let url = vhost("");
    let bus = bus(&url).await;
    let (outcomes, _events) = tokio::sync::mpsc::unbounded_channel();
    let worker = infrahub::Worker::start(&bus, "worker-1", outcomes)
        .await
        .unwrap();
    let printed = support::python(
        "pika_echo.py",
        &[
            url,
            pubsub_amqp::DEFAULT_EXCHANGE.into(),
            "ping from pika".into(),
        ],
    )
    .await;
    let mut lines = printed.lines();
    assert_eq!(
        lines.next(),
        Some("True"),
        "the reply carries the request's correlation id"
    );
    let reply: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(reply["passed"], true);
    assert_eq!(reply["routing_key"], "send.echo.request");
    assert_eq!(reply["data"]["response"], "Reply to: ping from pika");
    worker.stop();
}

#[tokio::test]
async fn brainlife_demo_runs_on_rabbitmq() {
    let outbox = tempfile::tempdir().unwrap();
    let report = brainlife::run(&bus(&vhost("")).await, outbox.path())
        .await
        .unwrap();
    assert_eq!(
        report.mails(),
        vec![outbox.path().join("t-2.eml").as_path()]
    );
    assert!(report.dead_letters.is_empty());
}

/// Amaretti (here pika) publishes the seed's task record, finished, while the
/// notification service is down; the durable queue keeps it, and the service mails
/// it when it comes back.
#[tokio::test]
async fn brainlife_mails_a_task_amaretti_published_while_it_was_down() {
    let url = vhost("");
    let bus = bus(&url).await;
    let outbox = tempfile::tempdir().unwrap();
    let registration = brainlife::Registration {
        to: "user1@brainlife.example".into(),
        request: NotificationRequest {
            event: TASK_FINISHED.into(),
            handler: NotificationHandler::Email,
            config: EmailConfig {
                task_id: "57c4a6fafe948ddd0372e20e".into(),
                subject: "diff import finished".into(),
                message: "Hello! your workflow has completed!".into(),
            },
        },
    };
    let (outcomes, mut events) = tokio::sync::mpsc::unbounded_channel();
    // The first start declares the durable queue; then the service goes down.
    brainlife::start(
        &bus,
        vec![registration.clone()],
        outbox.path(),
        outcomes.clone(),
    )
    .await
    .unwrap()
    .stop();

    let mut record: Task = serde_json::from_str(SEED_TASK).unwrap();
    record.status = "finished".into();
    let body = serde_json::to_string(&record).unwrap();
    support::python(
        "pika_publish.py",
        &[
            url,
            pubsub_amqp::DEFAULT_EXCHANGE.into(),
            record.topic().into_owned(),
            body,
        ],
    )
    .await;

    let _service = brainlife::start(&bus, vec![registration], outbox.path(), outcomes)
        .await
        .unwrap();
    let outcome = demo::next(&mut events, "the mail").await.unwrap();
    let mail = outbox.path().join("57c4a6fafe948ddd0372e20e.eml");
    assert_eq!(
        outcome,
        brainlife::Outcome::Mailed {
            task: "57c4a6fafe948ddd0372e20e".into(),
            path: mail.clone()
        }
    );
    assert!(std::fs::read_to_string(mail)
        .unwrap()
        .contains("Subject: diff import finished"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err(),
        "the acked message is not delivered again"
    );
}

/// The seed's task message, as Amaretti published it.
const SEED_TASK: &str = r#"{"_id":"57c4a6fafe948ddd0372e20e","status_msg":"","request_date":"2016-08-30T19:52:46.992Z","status":"requested","progress_key":"brlife.57912b0fef01633d720918cf.57c4a6fafe948ddd0372e20e","user_id":"1","config":{"source_dir":"57c4a6fafe948ddd0372e20d/download"},"instance_id":"57912b0fef01633d720918cf","service":"soichih/bl-product-nifti","name":"diff import","__v":4,"_envs":{"BL_WORKFLOW_ID":"57912b0fef01633d720918cf","TASK_ID":"57c4a6fafe948ddd0372e20e","test":"hello"},"resource_id":"575ee815b62439c67b693b85","create_date":"2016-08-29T21:19:54.592Z","resource_ids":["575ee815b62439c67b693b85"],"resource_deps":[],"deps":["57c4a6fafe948ddd0372e20d"]}"#;

//! ESN and brainlife on a private RabbitMQ node (Infrahub: `infrahub_amqp.rs`), with pika as the seed
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
use pubsub_seeds::{brainlife, demo, esn};

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
    let point_to_point =
        ["a", "b"].map(|node| report.count(node, "point-to-point", esn::DEMO_CHANNEL));
    assert_eq!(
        point_to_point.iter().sum::<usize>(),
        esn::DEMO_SENDS,
        "each point-to-point message handled once: {point_to_point:?}"
    );
    let vhost = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    // ESN's point-to-point queue: durable, no arguments, so ESN's own declare passes.
    let queues = RabbitServer::shared().rabbitmqctl(&[
        "list_queues",
        "-p",
        vhost,
        "name",
        "durable",
        "arguments",
    ]);
    assert!(
        queues.contains(&format!("{}\ttrue\t[]", esn::DEMO_CHANNEL)),
        "{queues}"
    );
    let exchanges =
        RabbitServer::shared().rabbitmqctl(&["list_exchanges", "-p", vhost, "name", "type"]);
    for topic in ["message:stored", "message:activity"] {
        assert!(
            exchanges.contains(&format!("{topic}\tfanout")),
            "{topic} in {exchanges}"
        );
    }
}

/// ESN's nodes and point-to-point channels ask for ESN's 5 s heartbeat, as
/// amqp-connection-manager does, unless the URL sets one.
#[tokio::test]
async fn esn_connections_use_esns_heartbeat() {
    let url = vhost("?routing=fanout");
    let node = esn::Node::start("a", &url).await.expect("a node");
    let channel = esn::PointToPoint::open(&url, "heartbeats")
        .await
        .expect("a channel");
    let vhost = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let connections = RabbitServer::shared().rabbitmqctl(&["list_connections", "vhost", "timeout"]);
    let timeouts: Vec<&str> = connections
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{vhost}\t")))
        .collect();
    assert_eq!(timeouts, ["5", "5"], "{connections}");
    drop((node, channel));
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
    assert_eq!(report.received.len(), 12);
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

/// Amaretti's own `wf.task` events, published by pika in the current layout (`wf.task`,
/// `<instance>.<task>`) and the 2016 one (`wf`, `task.<instance>.<task>`), reach the
/// notification service in brainlife's queue `event.task` (durable, no arguments,
/// manual ack, prefetch 1), which mails once: the same status published again (as
/// Amaretti does on every save) and a removed task's `null` send nothing.
#[tokio::test]
async fn brainlife_notify_takes_amarettis_events_in_both_layouts() {
    for layout in [brainlife::Layout::Current, brainlife::Layout::Legacy] {
        let url = vhost("");
        let bus = layout.connect(&url).await.expect("Amaretti's exchange");
        let outbox = tempfile::tempdir().unwrap();
        let registration = brainlife::Registration {
            to: "user1@brainlife.example".into(),
            request: NotificationRequest {
                event: TASK_FINISHED.into(),
                handler: NotificationHandler::Email,
                config: EmailConfig {
                    task_id: "57c4a6fafe948ddd0372e20e".into(),
                    subject: "diff import finished".into(),
                    message: "done".into(),
                },
            },
        };
        let (outcomes, mut events) = tokio::sync::mpsc::unbounded_channel();
        let service =
            brainlife::start_on(&bus, layout, vec![registration], outbox.path(), outcomes)
                .await
                .unwrap();

        let mut record: Task = serde_json::from_str(SEED_TASK).unwrap();
        record.status = "finished".into();
        let exchange = layout.exchange().expect("an Amaretti layout").to_owned();
        let key = layout.key(&record);
        let body = serde_json::to_string(&record).unwrap();
        for body in [body.clone(), body, "null".to_owned()] {
            let args = [url.clone(), exchange.clone(), key.clone(), body];
            support::python("pika_publish.py", &args).await;
        }
        let mail = outbox.path().join("57c4a6fafe948ddd0372e20e.eml");
        let task = "57c4a6fafe948ddd0372e20e".to_owned();
        let outcome = demo::next(&mut events, "the mail").await.unwrap();
        assert_eq!(
            outcome,
            brainlife::Outcome::Mailed {
                task: task.clone(),
                path: mail
            },
            "{layout:?}"
        );
        let again = demo::next(&mut events, "the second finish").await.unwrap();
        let status = "finished".to_owned();
        assert_eq!(
            again,
            brainlife::Outcome::Ignored { task, status },
            "{layout:?}"
        );
        let extra = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
        assert!(extra.is_err(), "{layout:?}: {extra:?}");

        let vhost = url.rsplit('/').next().unwrap();
        let server = RabbitServer::shared();
        let list = |what: &[&str]| {
            let mut args = vec![what[0], "-p", vhost, "-q", "--no-table-headers"];
            args.extend(&what[1..]);
            server.rabbitmqctl(&args)
        };
        let queues = list(&["list_queues", "name", "durable", "auto_delete", "arguments"]);
        assert!(queues.contains("event.task\ttrue\tfalse\t[]"), "{queues}");
        let bindings = list(&[
            "list_bindings",
            "source_name",
            "routing_key",
            "destination_name",
        ]);
        let binding = format!("{exchange}\t{}\tevent.task", layout.binding());
        assert!(
            bindings.lines().any(|l| l == binding),
            "{layout:?}: {bindings}"
        );
        let consumers = list(&[
            "list_consumers",
            "queue_name",
            "ack_required",
            "prefetch_count",
        ]);
        assert!(consumers.contains("event.task\ttrue\t1"), "{consumers}");
        service.stop();
        bus.close().await.unwrap();
    }
}

/// The `brainlife_notify` program on Amaretti's exchanges: its demo's task records
/// go through brainlife's queue `event.task`, which stays, as brainlife's does.
#[tokio::test]
async fn brainlife_notify_runs_on_amarettis_exchanges() {
    for (layout, exchange) in [("current", "wf.task"), ("2016", "wf")] {
        let url = vhost("");
        let (out, left) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || {
                let notify = env!("CARGO_BIN_EXE_brainlife_notify");
                let outbox = tempfile::tempdir().unwrap();
                let outbox = outbox.path().to_str().unwrap().to_owned();
                let args = ["--layout", layout, "--url", &url, "--outbox", &outbox];
                (run_binary(notify, &args), left_behind(&url))
            }
        })
        .await
        .unwrap();
        assert_eq!(
            out.lines().last(),
            Some("done: 1 mails, 0 given up"),
            "{out}"
        );
        assert!(left.contains(&"event.task".to_owned()), "{left:?}");
        assert!(left.contains(&exchange.to_owned()), "{left:?}");
    }
}

/// The seed's task message, as Amaretti published it.
const SEED_TASK: &str = r#"{"_id":"57c4a6fafe948ddd0372e20e","status_msg":"","request_date":"2016-08-30T19:52:46.992Z","status":"requested","progress_key":"brlife.57912b0fef01633d720918cf.57c4a6fafe948ddd0372e20e","user_id":"1","config":{"source_dir":"57c4a6fafe948ddd0372e20d/download"},"instance_id":"57912b0fef01633d720918cf","service":"soichih/bl-product-nifti","name":"diff import","__v":4,"_envs":{"BL_WORKFLOW_ID":"57912b0fef01633d720918cf","TASK_ID":"57c4a6fafe948ddd0372e20e","test":"hello"},"resource_id":"575ee815b62439c67b693b85","create_date":"2016-08-29T21:19:54.592Z","resource_ids":["575ee815b62439c67b693b85"],"resource_deps":[],"deps":["57c4a6fafe948ddd0372e20d"]}"#;

/// The names on the broker that a demo binary's run left in `url`'s vhost.
fn left_behind(url: &str) -> Vec<String> {
    let vhost = url.rsplit('/').next().expect("a vhost");
    let server = RabbitServer::shared();
    let queues = server.rabbitmqctl(&[
        "list_queues",
        "-p",
        vhost,
        "-q",
        "--no-table-headers",
        "name",
    ]);
    let exchanges = server.rabbitmqctl(&[
        "list_exchanges",
        "-p",
        vhost,
        "-q",
        "--no-table-headers",
        "name",
    ]);
    queues
        .lines()
        .chain(exchanges.lines())
        // RabbitMQ's own exchanges, there in every vhost.
        .filter(|name| !name.is_empty() && !name.starts_with("amq."))
        .map(str::to_owned)
        .collect()
}

fn run_binary(program: &str, args: &[&str]) -> String {
    let mut command = std::process::Command::new(program);
    command.args(args);
    let output = support::run_bounded(command);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Two demo runs on one broker: each on names of its own, each deleting them at the
/// end, so the second replays nothing of the first and nothing is left; with
/// `--keep-names` the durable queues stay, on the URL's exchange.
#[tokio::test]
async fn demo_binaries_on_rabbitmq_leave_nothing_behind() {
    let url = vhost("");
    let runs = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let notify = env!("CARGO_BIN_EXE_brainlife_notify");
            let outbox = tempfile::tempdir().unwrap();
            let outbox = outbox.path().to_str().unwrap().to_owned();
            let mut outs = Vec::new();
            for _ in 0..2 {
                outs.push(run_binary(notify, &["--url", &url, "--outbox", &outbox]));
            }
            let after_clean_runs = left_behind(&url);
            outs.push(run_binary(
                notify,
                &["--url", &url, "--outbox", &outbox, "--keep-names"],
            ));
            (outs, after_clean_runs, left_behind(&url))
        }
    });
    let (outs, after_clean_runs, after_kept) = runs.await.unwrap();
    for out in &outs[..2] {
        let last = out.lines().last().unwrap_or_default();
        assert_eq!(last, "done: 1 mails, 0 given up", "{out}");
    }
    assert_eq!(after_clean_runs, Vec::<String>::new());
    let queue = pubsub_amqp::group_queue(brainlife::QUEUE, "pubsub", Task::TOPIC).unwrap();
    assert!(after_kept.contains(&queue), "{after_kept:?}");
    assert!(after_kept.contains(&"pubsub".to_owned()), "{after_kept:?}");
}

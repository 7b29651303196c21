//! End to end in a real browser: headless Chromium, driven through `chromedriver` by
//! fantoccini, opens the gateway's demo page, connects with a token, binds, and shows
//! a message published after the bind; and brainlife's own client, the event socket
//! of Warehouse's process page (`tests/brainlife/process.html`, with the
//! ReconnectingWebSocket that page ships), gets Amaretti's and Warehouse's events
//! from RabbitMQ. Chromium or the Node package missing is a failure, never a skip:
//! `scripts/test` installs Debian's `chromium` and `chromium-driver`, and the package
//! with npm.

mod gateway_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use gateway_support::{token, Gateway, PATIENCE};
use pubsub_brokers::RabbitServer;
use pubsub_core::testkit::support::unique;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: run scripts/test, which installs the Debian packages \
                 chromium and chromium-driver (apt-get install chromium chromium-driver)"
            );
        }
        let port = pubsub_brokers::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A browser session, once chromedriver answers (bounded).
    async fn session(&self, profile: &Path) -> Client {
        let options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("waiting for chromedriver: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session from chromedriver: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls the text of element `id` until `done` holds (bounded).
async fn wait_text(browser: &Client, id: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = browser
            .find(Locator::Id(id))
            .await
            .expect("the element")
            .text()
            .await
            .expect("its text");
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "#{id} still reads {text:?} after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(browser: &Client, what: Locator<'_>) {
    let element = browser.find(what).await.expect("the element to click");
    element.click().await.expect("click");
}

async fn fill(browser: &Client, id: &str, value: &str) {
    let field = browser.find(Locator::Id(id)).await.expect("the field");
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_binds_and_shows_a_published_message() {
    let gw = Gateway::start("[exchanges.public]\naccess = \"public\"\n");
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("a profile folder");
    let browser = driver.session(profile.path()).await;

    let alice = token(json!({"sub": "alice"}));
    browser
        .goto(&gw.url(&format!("/?jwt={alice}")))
        .await
        .expect("open the demo page");
    click(&browser, Locator::Id("connect")).await;
    wait_text(&browser, "status", |s| s == "connected").await;

    fill(&browser, "ex", "public").await;
    fill(&browser, "key", "browser.#").await;
    click(&browser, Locator::Id("bind")).await;
    wait_text(&browser, "status", |s| s == "bound public:browser.#").await;

    gw.publish("public", "browser.hello", json!({"text": "hello, browser"}))
        .await;
    let log = wait_text(&browser, "log", |s| s.contains("hello, browser")).await;
    assert!(
        log.contains(r#"public:browser.hello {"text":"hello, browser"}"#),
        "{log}"
    );

    // The same page over Server-Sent Events: binding opens the stream.
    click(&browser, Locator::Css("#transport option[value=sse]")).await;
    fill(&browser, "key", "sse.#").await;
    click(&browser, Locator::Id("bind")).await;
    wait_text(&browser, "status", |s| s == "bound public:sse.#").await;
    gw.publish("public", "sse.hello", json!("hello over SSE"))
        .await;
    wait_text(&browser, "log", |s| {
        s.contains(r#"public:sse.hello "hello over SSE""#)
    })
    .await;
    browser.close().await.expect("end the session");
}

/// ReconnectingWebSocket as brainlife's Warehouse UI ships it (`reconnectingwebsocket`
/// 1.0.0), from the Node packages `scripts/test` installs (NODE_PATH).
fn reconnecting_websocket() -> String {
    let modules = std::env::var_os("NODE_PATH").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-node/node_modules"),
        std::path::PathBuf::from,
    );
    let file = modules.join("reconnectingwebsocket/reconnecting-websocket.js");
    std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/test, which installs it with npm under target/interop-node",
            file.display()
        )
    })
}

/// Serves brainlife's page and its script on a free loopback port; its address.
async fn serve_brainlife_page() -> String {
    use axum::http::header::CONTENT_TYPE;
    use axum::response::Html;
    let script = reconnecting_websocket();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { Html(include_str!("brainlife/process.html")) }),
        )
        .route(
            "/reconnecting-websocket.js",
            axum::routing::get(
                move || async move { ([(CONTENT_TYPE, "text/javascript")], script) },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Publishes `(key, body)` pairs to `exchange` with pika, as node-amqp does for
/// brainlife's services (`tests/python/amaretti_publish.py`).
async fn publish_as_brainlife(node: &RabbitServer, exchange: &str, pairs: &[(&str, &Value)]) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/amaretti_publish.py"
    );
    let mut python = Command::new("python3");
    python.arg(script).arg(node.url()).arg(exchange);
    for (key, body) in pairs {
        python.arg(key).arg(body.to_string());
    }
    let output = gateway_support::within("pika's publish", async {
        tokio::task::spawn_blocking(move || python.output()).await
    })
    .await
    .expect("the waiting thread")
    .expect("run python3 with pika (scripts/python-requirements.txt)");
    assert!(
        output.status.success(),
        "pika's publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the page recorded: every frame's text, the tasks and the dataset ids.
async fn page_state(browser: &Client) -> Value {
    let script =
        "return {received: window.received, tasks: window.tasks, datasets: window.datasets};";
    browser
        .execute(script, vec![])
        .await
        .expect("read the page's state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brainlifes_process_page_gets_amarettis_and_warehouses_events_from_rabbitmq() {
    let node = tokio::task::spawn_blocking(RabbitServer::shared)
        .await
        .expect("start the RabbitMQ node");
    let exchanges = "[exchanges.\"wf.task\"]\naccess = \"public\"\n\n[exchanges.warehouse]\naccess = \"public\"\n";
    let gw = Gateway::start_on(&node.url(), exchanges);
    let page = serve_brainlife_page().await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("a profile folder");
    let browser = driver.session(profile.path()).await;

    // Ids are single key segments, as MongoDB's are.
    let id = |prefix: &str| unique(prefix).replace('.', "-");
    let (instance, project) = (id("instance"), id("project"));
    let socket = gw
        .url(&format!(
            "/subscribe?jwt={}",
            token(json!({"sub": "alice"}))
        ))
        .replacen("http://", "ws://", 1);
    let params = [
        ("url", socket.as_str()),
        ("instance", &instance),
        ("project", &project),
    ];
    let url = reqwest::Url::parse_with_params(&page, &params).expect("the page's URL");
    browser.goto(url.as_str()).await.expect("open the page");
    wait_text(&browser, "status", |s| s == "open").await;
    // The page's binds are never answered: the gateway's count says when both are live.
    gw.wait_stats("the page's two binds", |s| s["subscriptions"] == 2)
        .await;

    let task = json!({"_id": "t1", "instance_id": instance, "status": "running", "status_msg": "",
        "service": "brainlife/app-foo", "config": {"_tid": 3}, "name": "foo"});
    let other = json!({"_id": "t9", "instance_id": "other", "status": "failed",
        "service": "brainlife/app-foo", "config": {}});
    let (task_key, other_key) = (format!("{instance}.t1"), "other.t9".to_owned());
    publish_as_brainlife(node, "wf.task", &[(&other_key, &other), (&task_key, &task)]).await;
    let dataset_key = format!("dataset.create.42.{project}.d7");
    let dataset = json!({"_id": "d7", "timestamp": 1_700_000_000.5});
    publish_as_brainlife(node, "warehouse", &[(&dataset_key, &dataset)]).await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let state = loop {
        let state = page_state(&browser).await;
        if state["tasks"]["t1"] == "running" && state["datasets"] == json!(["d7"]) {
            break state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page has {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        state["tasks"],
        json!({"t1": "running"}),
        "only its instance's task"
    );
    // Every frame is one the page understands: a message or an error, never `bound`.
    let frames: Vec<Value> = state["received"]
        .as_array()
        .expect("the frames")
        .iter()
        .map(|text| serde_json::from_str(text.as_str().expect("text")).expect("JSON"))
        .collect();
    assert_eq!(frames.len(), 2, "{frames:?}");
    for frame in &frames {
        assert!(frame.get("bound").is_none(), "{frame}");
        assert!(
            frame.get("dinfo").is_some() || frame.get("error").is_some(),
            "{frame}"
        );
    }
    let of = |exchange: &str| {
        frames
            .iter()
            .find(|f| f["dinfo"]["exchange"] == exchange)
            .unwrap_or_else(|| panic!("no frame of {exchange}: {frames:?}"))
    };
    let relayed = of("wf.task");
    assert_eq!(relayed["msg"], task, "the published JSON unchanged");
    assert_eq!(relayed["dinfo"]["routingKey"], task_key.as_str());
    assert_eq!(relayed["dinfo"]["contentType"], "application/json");
    assert_eq!(relayed["headers"], json!({}));
    assert_eq!(of("warehouse")["msg"], dataset);
    browser.close().await.expect("end the session");
}

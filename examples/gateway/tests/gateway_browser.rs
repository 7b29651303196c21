//! End to end in a real browser: headless Chromium, driven through `chromedriver` by
//! fantoccini, opens the gateway's demo page, connects with a token, binds, and shows
//! a message published after the bind. Chromium missing is a failure, never a skip:
//! `scripts/test` installs Debian's `chromium` and `chromium-driver`.

mod gateway_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use gateway_support::{token, Gateway, PATIENCE};
use serde_json::json;

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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
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

//! What the gateway tests share: the gateway binary started with a configuration of
//! the test's making, tokens, a WebSocket client, and a local access-check server.
//!
//! Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
pub(crate) use pubsub_core::testkit::support::{within, PATIENCE};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret of every test configuration.
const SECRET: &str = "gateway-test-secret";

fn keys() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `claims` with an `exp` an hour ahead unless they have one.
fn with_exp(mut claims: Value) -> Value {
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now() + 3600);
    }
    claims
}

/// An HS256 token signed with [`SECRET`].
pub(crate) fn token(claims: Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

/// An RS256 token signed with the demo's private key.
pub(crate) fn rs256_token(claims: Value) -> String {
    let pem = std::fs::read(keys().join("demo-rs256.key.pem")).expect("read the demo key");
    let key = EncodingKey::from_rsa_pem(&pem).expect("the demo key is an RSA key");
    sign(Algorithm::RS256, &key, claims)
}

/// `claims` signed with `key` for `alg`, with an `exp` added when missing.
pub(crate) fn sign(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &with_exp(claims), key).expect("sign a test token")
}

/// Seconds since the epoch, for `exp` claims.
pub(crate) fn unix_now() -> u64 {
    now()
}

/// A token of `user` that may publish.
pub(crate) fn publisher() -> String {
    token(json!({"sub": "publisher", "role": "publisher"}))
}

/// A gateway process with its own configuration; killed on drop.
pub(crate) struct Gateway {
    child: Child,
    /// `127.0.0.1:port`.
    pub(crate) addr: String,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

/// The gateway binary with a configuration of `tables` on `backend` and `args`, its
/// stdout and stderr piped; the folder holds the configuration.
pub(crate) fn command(backend: &str, tables: &str, args: &[&str]) -> (tempfile::TempDir, Command) {
    command_in(
        Command::new(env!("CARGO_BIN_EXE_gateway")),
        backend,
        tables,
        args,
    )
}

/// [`command`] whose process may open at most `files` files (its `RLIMIT_NOFILE`).
pub(crate) fn command_with_files(files: u64, tables: &str) -> (tempfile::TempDir, Command) {
    let mut shell = Command::new("sh");
    // `exec` keeps the process id, which `resident_bytes` reads.
    shell.args([
        "-c",
        &format!("ulimit -n {files} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_gateway"),
    ]);
    command_in(shell, "memory://", tables, &[])
}

fn command_in(
    mut command: Command,
    backend: &str,
    tables: &str,
    args: &[&str],
) -> (tempfile::TempDir, Command) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = format!(
        "listen = \"127.0.0.1:0\"\nbackend = \"{backend}\"\n\n[auth]\nhs256_secret = \"{SECRET}\"\n\
         rs256_public_key = \"{}\"\n\n[publish]\nclaim = \"role\"\nvalue = \"publisher\"\n\n{tables}\n",
        keys().join("demo-rs256.pub.pem").display()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).expect("write the configuration");
    command
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (dir, command)
}

impl Gateway {
    /// A gateway on the in-process bus; `tables` adds `[limits]` and `[exchanges.*]`.
    pub(crate) fn start(tables: &str) -> Gateway {
        Gateway::start_on("memory://", tables)
    }

    /// A gateway on `backend`.
    pub(crate) fn start_on(backend: &str, tables: &str) -> Gateway {
        Gateway::start_with(backend, tables, &[])
    }

    /// A gateway on `backend` with more command-line arguments.
    pub(crate) fn start_with(backend: &str, tables: &str, args: &[&str]) -> Gateway {
        let (dir, command) = command(backend, tables, args);
        Gateway::spawn(dir, command)
    }

    /// A gateway on the in-process bus that may open at most `files` files.
    pub(crate) fn start_with_files(files: u64, tables: &str) -> Gateway {
        let (dir, command) = command_with_files(files, tables);
        Gateway::spawn(dir, command)
    }

    fn spawn(dir: tempfile::TempDir, mut command: Command) -> Gateway {
        let mut child = command.spawn().expect("start the gateway binary");
        let stdout = child.stdout.take().expect("the gateway's stdout");
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("read the gateway's first line");
        // The rest of its output goes to the test's, where a failing test shows it.
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        let stderr = BufReader::new(child.stderr.take().expect("the gateway's stderr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let addr = first
            .trim()
            .strip_prefix("gateway: listening on http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("the gateway did not start (its stderr is above): {first:?}"))
            .to_owned();
        Gateway {
            child,
            addr,
            _dir: dir,
            http: reqwest::Client::new(),
            log,
        }
    }

    /// The lines the gateway wrote to stderr so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends the gateway `signal` (`INT`, `TERM`) and waits until it exits.
    pub(crate) fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal}");
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("the gateway's status") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not stop within {PATIENCE:?} of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL of `path` on this gateway.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A WebSocket with `token`.
    pub(crate) async fn connect(&self, token: &str) -> Client {
        let url = format!("ws://{}/subscribe?jwt={token}", self.addr);
        // The load test holds 5,000 clients: at tungstenite's default 128 KiB read
        // buffer each, the test itself would hold 640 MiB.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let handshake = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
        let (ws, _) = within("connect", handshake)
            .await
            .expect("the WebSocket handshake");
        Client { ws }
    }

    /// A WebSocket with `token` from the local address `from` (any of 127.0.0.0/8 is
    /// this machine, each another address to the gateway).
    pub(crate) async fn connect_from(&self, from: [u8; 4], token: &str) -> Client {
        let url = format!("ws://{}/subscribe?jwt={token}", self.addr);
        let stream = self.tcp_from(from).await;
        let handshake = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream));
        let (ws, _) = within("connect", handshake)
            .await
            .expect("the WebSocket handshake");
        Client { ws }
    }

    /// A TCP connection to the gateway from the local address `from`.
    pub(crate) async fn tcp_from(&self, from: [u8; 4]) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind((std::net::Ipv4Addr::from(from), 0).into())
            .expect("bind a loopback address");
        let addr = self.addr.parse().expect("the gateway's address");
        within("connect", socket.connect(addr))
            .await
            .expect("a TCP connection")
    }

    /// `GET /metrics` from the local address `from`.
    pub(crate) async fn metrics_from(&self, from: [u8; 4]) -> String {
        let http = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(from))
            .build()
            .expect("an HTTP client");
        let response = within("metrics", http.get(self.url("/metrics")).send())
            .await
            .expect("GET /metrics");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("the metrics text")
    }

    /// Publishes `msg` on `ex`/`key` through `POST /publish`.
    pub(crate) async fn publish(&self, ex: &str, key: &str, msg: Value) {
        self.publish_batch(json!({"ex": ex, "key": key, "msg": msg}))
            .await;
    }

    /// Publishes one publication or an array of them.
    pub(crate) async fn publish_batch(&self, body: Value) {
        let url = self.url(&format!("/publish?jwt={}", publisher()));
        let response = within("publish", self.http.post(url).json(&body).send())
            .await
            .expect("POST /publish");
        let status = response.status();
        assert!(
            status.is_success(),
            "publish: {status} {:?}",
            response.text().await
        );
    }

    /// The gateway process's resident memory in bytes, from `/proc` (Linux).
    pub(crate) fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
        let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    }

    /// `GET /stats`.
    pub(crate) async fn stats(&self) -> Value {
        let response = within("stats", self.http.get(self.url("/stats")).send())
            .await
            .expect("GET /stats");
        response.json().await.expect("stats are JSON")
    }

    /// `GET /metrics`, the Prometheus text.
    pub(crate) async fn metrics(&self) -> String {
        let response = within("metrics", self.http.get(self.url("/metrics")).send())
            .await
            .expect("GET /metrics");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("the metrics text")
    }

    /// Polls `/stats` until `done` holds, failing after [`PATIENCE`].
    pub(crate) async fn wait_stats(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let stats = self.stats().await;
            if done(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: stats still {stats} after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `frame` relays `msg` from `exchange` key `key` with `headers`, in
/// brainlife's shape (node-amqp's `deliveryInfo` names; the rest of `dinfo` is
/// checked by the frame's unit tests).
pub(crate) fn assert_relayed(frame: &Value, headers: Value, exchange: &str, key: &str, msg: Value) {
    let dinfo = &frame["dinfo"];
    assert_eq!(frame["headers"], headers, "{frame}");
    assert_eq!(dinfo["exchange"], exchange, "{frame}");
    assert_eq!(dinfo["routingKey"], key, "{frame}");
    assert_eq!(frame["msg"], msg, "{frame}");
    assert_eq!(dinfo["redelivered"], false, "{frame}");
    assert!(
        dinfo["queue"].is_string() && dinfo["consumerTag"].is_string(),
        "{frame}"
    );
    assert_eq!(dinfo["deliveryTag"]["type"], "Buffer", "{frame}");
}

/// A WebSocket client of the gateway.
pub(crate) struct Client {
    pub(crate) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Sends a text frame.
    pub(crate) async fn send_text(&mut self, text: &str) {
        within("send", self.ws.send(Message::text(text)))
            .await
            .expect("send a frame");
    }

    /// Sends `{"bind":{"ex":..,"key":..}}`.
    pub(crate) async fn bind(&mut self, ex: &str, key: &str) {
        self.send_text(&json!({"bind": {"ex": ex, "key": key}}).to_string())
            .await;
    }

    /// Sends `{"bind":{"ex":..,"key":..},"ack":true}`, which is always answered.
    pub(crate) async fn bind_acked(&mut self, ex: &str, key: &str) {
        self.send_text(&json!({"bind": {"ex": ex, "key": key}, "ack": true}).to_string())
            .await;
    }

    /// Binds asking for an answer and waits for the `bound` frame.
    pub(crate) async fn bound(&mut self, ex: &str, key: &str) {
        self.bind_acked(ex, key).await;
        let frame = self.frame().await;
        assert_eq!(frame["bound"], json!({"ex": ex, "key": key}), "{frame}");
    }

    /// Binds asking for an answer and waits for the error frame, which must have
    /// `code`.
    pub(crate) async fn refused(&mut self, ex: &str, key: &str, code: &str) -> Value {
        self.bind_acked(ex, key).await;
        let frame = self.frame().await;
        assert_eq!(frame["code"], code, "bind {ex}:{key}: {frame}");
        assert!(frame["error"].is_string(), "{frame}");
        assert_eq!(frame["bind"], json!({"ex": ex, "key": key}));
        frame
    }

    /// The next text frame as JSON.
    pub(crate) async fn frame(&mut self) -> Value {
        self.frame_within(PATIENCE).await
    }

    /// The next text frame as JSON, waiting at most `patience`.
    pub(crate) async fn frame_within(&mut self, patience: Duration) -> Value {
        loop {
            let next = tokio::time::timeout(patience, self.ws.next()).await;
            match next.unwrap_or_else(|_| panic!("no frame within {patience:?}")) {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).expect("frames are JSON")
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be a message: its routing key and `msg`.
    pub(crate) async fn message(&mut self) -> (String, Value) {
        let frame = self.frame().await;
        let key = frame["dinfo"]["routingKey"]
            .as_str()
            .unwrap_or_else(|| panic!("expected a message, got {frame}"))
            .to_owned();
        (key, frame["msg"].clone())
    }

    /// Waits for the close frame: its code and reason.
    pub(crate) async fn closed(&mut self) -> (u16, String) {
        loop {
            match within("the close frame", self.ws.next()).await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Closes the socket.
    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// What the access-check server saw: the Authorization header and the key.
pub(crate) type Asked = Arc<Mutex<Vec<(String, String)>>>;

/// A local stand-in for brainlife's `checkaccess`: answers `{"status":"ok"}` when
/// `allow(authorization, key)` holds, after one permit of `gate` (open unless a test
/// holds it), and tells `asked` about each request first.
pub(crate) struct CheckServer {
    /// The base URL to configure (`.../check`).
    pub(crate) url: String,
    /// Every request, in order.
    pub(crate) asked: Asked,
    /// Announces each request as it arrives.
    pub(crate) arrivals: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Requests wait for a permit here before they are answered.
    pub(crate) gate: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl CheckServer {
    /// Starts the server on a free loopback port; it answers at once.
    pub(crate) async fn start(
        allow: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> CheckServer {
        CheckServer::with_permits(allow, tokio::sync::Semaphore::MAX_PERMITS).await
    }

    /// Starts a server whose answers wait until the test adds permits to `gate`.
    pub(crate) async fn held(
        allow: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> CheckServer {
        CheckServer::with_permits(allow, 0).await
    }

    async fn with_permits(
        allow: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
        permits: usize,
    ) -> CheckServer {
        use axum::extract::{Path, State};
        use axum::http::HeaderMap;

        type Shared = (
            Arc<dyn Fn(&str, &str) -> bool + Send + Sync>,
            Asked,
            tokio::sync::mpsc::UnboundedSender<String>,
            Arc<tokio::sync::Semaphore>,
        );
        async fn check(
            State((allow, asked, arrivals, gate)): State<Shared>,
            Path(key): Path<String>,
            headers: HeaderMap,
        ) -> axum::Json<Value> {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            asked.lock().unwrap().push((auth.clone(), key.clone()));
            let _ = arrivals.send(key.clone());
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
            let status = if allow(&auth, &key) { "ok" } else { "denied" };
            axum::Json(json!({ "status": status }))
        }

        let asked = Asked::default();
        let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(tokio::sync::Semaphore::new(permits));
        let shared: Shared = (Arc::new(allow), asked.clone(), tx, gate.clone());
        let app = axum::Router::new()
            .route("/check/{*key}", axum::routing::get(check))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/check", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CheckServer {
            url,
            asked,
            arrivals,
            gate,
            task,
        }
    }

    /// The keys asked about so far.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(_, k)| k.clone())
            .collect()
    }
}

impl Drop for CheckServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The value of the sample of metric `name` with (at least) `labels` in Prometheus
/// text; `None` when there is none.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest),
                None => (series, ""),
            };
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && all).then(|| value.parse().ok())?
        })
}

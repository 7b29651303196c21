//! A private `redis-server` for tests: a free loopback port, no persistence, and
//! stop, restart and kill for fault tests, so tests never touch a Redis someone else
//! runs.
//!
//! ```no_run
//! use pubsub_brokers::RedisServer;
//!
//! let server = RedisServer::start();
//! println!("{}", server.url());
//! server.restart(); // same port, empty memory
//! ```
//!
//! Every server of a `RedisServer` runs in the process group of a watchdog shell that
//! holds the other end of a pipe from the test process: when the test process exits,
//! however it exits, the pipe closes and the watchdog kills the group and removes the
//! server's log. That is what cleans up servers kept in a `static`, which are never
//! dropped.

use crate::free_ports;
use crate::lock;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SERVER: &str = "redis-server";
/// It starts in milliseconds; a loaded CI machine gets more.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A private Redis server on `127.0.0.1`. Dropping it kills the server.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    log: PathBuf,
    group: i32,
    server: Mutex<Option<Child>>,
    /// Closing it makes the watchdog kill the group.
    watchdog_pipe: Mutex<Option<ChildStdin>>,
    watchdog: Mutex<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    ///
    /// Panics when `redis-server` is not installed or does not start: tests that need
    /// a broker fail rather than skip.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, such as
    /// `["--requirepass", "secret"]`.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        if let Err(e) = Command::new(SERVER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
        {
            panic!(
                "cannot run {SERVER} ({e}): run `scripts/test`, which installs the \
                 redis-server package, or `apt-get install redis-server`"
            );
        }
        let port = free_ports::<1>()[0];
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let log = std::env::temp_dir().join(format!("pubsub-redis-{port}.log"));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"cat >/dev/null; rm -f "$0"; kill -KILL "-$$""#)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the watchdog shell");
        let pipe = watchdog.stdin.take().expect("piped stdin");
        let server = RedisServer {
            port,
            args,
            log,
            group: i32::try_from(watchdog.id()).expect("pid fits i32"),
            server: Mutex::new(None),
            watchdog_pipe: Mutex::new(Some(pipe)),
            watchdog: Mutex::new(watchdog),
        };
        server.boot();
        server
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server runs (it was not stopped or killed).
    pub fn is_running(&self) -> bool {
        lock(&self.server).is_some()
    }

    /// Stops the server (SIGTERM) and waits until it is gone.
    pub fn stop(&self) {
        self.end("-TERM");
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&self) {
        self.end("-KILL");
    }

    /// Starts the server again on the same port after [`stop`](Self::stop) or
    /// [`kill`](Self::kill); it starts empty.
    pub fn start_again(&self) {
        self.boot();
    }

    /// Stops the server and starts it again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.boot();
    }

    /// Runs one command against the server over RESP and returns its raw reply, for
    /// tests that poke the server (`CLIENT KILL`, `PUBSUB NUMSUB`...).
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream
            .write_all(request.as_bytes())
            .expect("send a command");
        let mut reply = vec![0; 64 * 1024];
        let n = stream.read(&mut reply).expect("read the reply");
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    fn end(&self, signal: &str) {
        let Some(mut child) = lock(&self.server).take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let _ = child.wait();
    }

    fn boot(&self) {
        let mut server = lock(&self.server);
        if server.is_some() {
            return;
        }
        let log = std::fs::File::create(&self.log).expect("create the server's log");
        let mut child = Command::new(SERVER)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a file handle"))
            .stderr(log)
            .process_group(self.group)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SERVER}: {e}; run `scripts/test`"));
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.answers() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{SERVER} exited with {status} before answering; its log:\n{}",
                    self.server_log()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{SERVER} did not answer within {START_TIMEOUT:?}; its log:\n{}",
                    self.server_log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        *server = Some(child);
    }

    /// Whether it answers a PING (with PONG, or NOAUTH when it wants a password).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 64];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|n| {
                reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH")
            })
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        drop(lock(&self.watchdog_pipe).take());
        let _ = lock(&self.watchdog).wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

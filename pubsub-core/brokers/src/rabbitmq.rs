//! A private `rabbitmq-server` for tests: its own node name, ports and data folder on
//! loopback, so tests can stop and restart it and never touch a broker someone else
//! runs.
//!
//! ```no_run
//! use pubsub_brokers::RabbitServer;
//!
//! // One node per test binary, started by the first test that asks.
//! let server = RabbitServer::shared();
//! println!("{}", server.url());
//! ```
//!
//! Every process the node needs (its own `epmd`, the Erlang VM and its helpers) runs in
//! one process group. A watchdog shell holds the other end of a pipe from the test
//! process: when the test process exits, however it exits, the pipe closes and the
//! watchdog kills the group and removes the data folder. That is what cleans up the
//! shared node, which lives in a `static` and so is never dropped.

use crate::free_ports;
use crate::lock;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
const EPMD: &str = "epmd";
/// A node starts in about 6 s here; a loaded CI machine gets more.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private RabbitMQ node.
///
/// [`RabbitServer::shared`] gives the one node of the test binary; [`RabbitServer::start`]
/// a node of one's own (for tests that restart it). Dropping a node kills it and
/// removes its data.
#[derive(Debug)]
pub struct RabbitServer {
    node: String,
    port: u16,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    /// The rabbitmq-server script while the node runs.
    server: Mutex<Option<Child>>,
    host: Arc<Host>,
}

/// What the nodes started together share: a private `epmd` (through which clustered
/// nodes find each other), the process group they all run in, the watchdog that
/// kills the group, and the folder that holds their data and their Erlang cookie.
#[derive(Debug)]
pub(crate) struct Host {
    dir: PathBuf,
    epmd_port: u16,
    group: i32,
    epmd: Mutex<Child>,
    /// Closing it makes the watchdog kill the group.
    watchdog_pipe: Mutex<Option<ChildStdin>>,
    watchdog: Mutex<Child>,
}

impl Host {
    /// Starts the private `epmd` and the watchdog.
    pub(crate) fn start() -> Arc<Host> {
        if !Path::new(SERVER).exists() {
            panic!(
                "{SERVER} is not installed: run `scripts/test`, which installs the \
                 rabbitmq-server package, or `apt-get install rabbitmq-server`"
            );
        }
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let dir = std::env::temp_dir().join(format!("pubsub-rabbit-{id}"));
        // One HOME for every node: they share the Erlang cookie made in it, which
        // clustering and rabbitmqctl need.
        std::fs::create_dir_all(dir.join("home")).expect("create the nodes' folder");
        let [epmd_port] = free_ports::<1>();
        let epmd = Command::new(EPMD)
            .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {EPMD} (from the erlang-base package): {e}; run `scripts/test`")
            });
        let group = i32::try_from(epmd.id()).expect("pid fits i32");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"cat >/dev/null; kill -KILL "-$1"; sleep 0.5; rm -rf "$0""#)
            .arg(&dir)
            .arg(group.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the watchdog shell");
        let pipe = watchdog.stdin.take().expect("piped stdin");
        Arc::new(Host {
            dir,
            epmd_port,
            group,
            epmd: Mutex::new(epmd),
            watchdog_pipe: Mutex::new(Some(pipe)),
            watchdog: Mutex::new(watchdog),
        })
    }

    /// Kills every process of the group and removes the folder; waits for both.
    pub(crate) fn kill_all(&self) {
        drop(lock(&self.watchdog_pipe).take());
        let _ = lock(&self.watchdog).wait();
        let _ = lock(&self.epmd).wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl RabbitServer {
    /// The node shared by every test of this test binary, started on first use.
    ///
    /// Panics when `rabbitmq-server` is not installed or does not start: tests that
    /// need a broker fail rather than skip.
    pub fn shared() -> &'static RabbitServer {
        static SHARED: OnceLock<RabbitServer> = OnceLock::new();
        SHARED.get_or_init(RabbitServer::start)
    }

    /// Starts a node of its own and waits until it accepts AMQP connections.
    ///
    /// Panics when `rabbitmq-server` is not installed or does not start.
    pub fn start() -> RabbitServer {
        RabbitServer::start_with_config("")
    }

    /// Starts a node of its own with `lines` added to its `rabbitmq.conf` (a TLS
    /// listener, say), and waits until its plain port accepts AMQP connections.
    pub fn start_with_config(lines: &str) -> RabbitServer {
        let server = RabbitServer::prepare(Host::start(), "pubsub");
        if !lines.is_empty() {
            let conf = server.dir.join("rabbitmq.conf");
            let before = std::fs::read_to_string(&conf).unwrap_or_default();
            write(&conf, &format!("{before}{lines}\n"));
        }
        server.boot();
        server
    }

    /// A node on `host` named `name-ID@localhost`, with its own ports and data, not
    /// started yet.
    pub(crate) fn prepare(host: Arc<Host>, name: &str) -> RabbitServer {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let dir = host.dir.join(id);
        let node = format!("{name}-{id}@localhost");
        let [port, dist_port] = free_ports::<2>();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the node's folders");
        }
        write(&dir.join("enabled_plugins"), "[].\n");
        write(
            &dir.join("rabbitmq.conf"),
            "disk_free_limit.absolute = 1MB\nlog.console = false\nlog.file.level = warning\n",
        );
        // Our own (empty) env file, so /etc/rabbitmq/rabbitmq-env.conf cannot rename
        // the node or move its ports.
        write(&dir.join("rabbitmq-env.conf"), "");
        let path = |sub: &str| dir.join(sub).display().to_string();
        let env = vec![
            ("HOME", host.dir.join("home").display().to_string()),
            ("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf")),
            ("RABBITMQ_NODENAME", node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", port.to_string()),
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE", path("mnesia")),
            ("RABBITMQ_LOG_BASE", path("log")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins")),
            ("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf")),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
            // The host's private epmd: nothing is left registered with the machine's
            // one, and it dies with the group.
            ("ERL_EPMD_PORT", host.epmd_port.to_string()),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
        ];
        RabbitServer {
            node,
            port,
            dir,
            env,
            server: Mutex::new(None),
            host,
        }
    }

    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Erlang node name, for `rabbitmqctl -n`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stops the node (`rabbitmqctl stop`), keeping its data.
    pub fn stop(&self) {
        let mut server = lock(&self.server);
        let Some(mut child) = server.take() else {
            return;
        };
        let out = self.ctl(&["stop"]);
        if !out.status.success() {
            // The node may be half down: the script stops the VM on TERM.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let _ = child.wait();
        // The VM is a child of the script: wait until it let go of the port.
        self.wait_until_port_is_free();
    }

    /// Starts the node again after [`stop`](Self::stop), with the same port and data:
    /// vhosts and durable queues survive.
    pub fn start_again(&self) {
        self.boot();
    }

    /// Kills the node's VM with SIGKILL, as a crash or the OOM killer would: no
    /// connection is closed in order. [`start_again`](Self::start_again) brings it back.
    pub fn kill(&self) {
        let mut server = lock(&self.server);
        let Some(mut script) = server.take() else {
            return;
        };
        // The script runs the VM as its one child and waits for it.
        let script_pid = script.id();
        let children =
            std::fs::read_to_string(format!("/proc/{script_pid}/task/{script_pid}/children"))
                .unwrap_or_default();
        for vm in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", vm]).status();
        }
        let _ = script.wait();
        self.wait_until_port_is_free();
    }

    /// Stops the RabbitMQ application but not its Erlang VM (`rabbitmqctl
    /// stop_app`): connections are closed and the port refuses new ones.
    pub fn stop_app(&self) {
        self.rabbitmqctl(&["stop_app"]);
        self.wait_until_port_is_free();
    }

    /// Starts the application again after [`stop_app`](Self::stop_app) and waits
    /// until it accepts AMQP connections.
    pub fn start_app(&self) {
        self.rabbitmqctl(&["start_app"]);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the node did not accept connections within {START_TIMEOUT:?} after start_app"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_until_port_is_free(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the node and starts it again, keeping its data.
    pub fn restart(&self) {
        self.stop();
        self.boot();
    }

    /// Closes every client connection (`rabbitmqctl close_all_connections`), as an
    /// operator or a load balancer would.
    pub fn close_connections(&self) {
        self.rabbitmqctl(&["close_all_connections", "closed by the test"]);
    }

    /// Runs `rabbitmqctl -n NODE ARGS...` against this node and returns its output;
    /// panics when it fails.
    pub fn rabbitmqctl(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        if !out.status.success() {
            panic!(
                "rabbitmqctl {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        // `timeout` (coreutils) so that a wedged node fails the test instead of
        // hanging it.
        Command::new("timeout")
            .args(["120", CTL, "-q", "-n", &self.node])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run rabbitmqctl")
    }

    pub(crate) fn boot(&self) {
        let mut server = lock(&self.server);
        if server.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.join("log").join("stdout.log"))
            .expect("create the node's console log");
        let mut child = Command::new(SERVER)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a file handle"))
            .stderr(log)
            .process_group(self.host.group)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SERVER}: {e}; run `scripts/test`"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "rabbitmq-server exited with {status} before accepting connections; \
                     its log:\n{}",
                    self.console_log()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "rabbitmq-server did not accept connections within {START_TIMEOUT:?}; \
                     its log:\n{}",
                    self.console_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The AMQP port opens before the node's boot has finished, and until it has,
        // rabbitmqctl refuses commands such as add_vhost ("requires the 'rabbit' app
        // to be running"): a test that made a vhost at once failed so in CI.
        let started = self.ctl(&["await_startup"]);
        if !started.status.success() {
            let _ = child.kill();
            panic!(
                "rabbitmq-server opened its port but did not finish starting: {}{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr)
            );
        }
        *server = Some(child);
    }

    fn console_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log").join("stdout.log")).unwrap_or_default()
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        // The host's watchdog kills the whole group (epmd, the VMs and their helpers)
        // and removes the folder; a node of a cluster goes with the cluster's host.
        if Arc::strong_count(&self.host) == 1 {
            self.host.kill_all();
        }
        if let Some(mut server) = lock(&self.server).take() {
            let _ = server.wait();
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

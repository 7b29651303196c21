//! A private Redis Cluster for tests: three masters with one replica each, every node
//! a [`RedisServer`] on a free loopback port, created with `redis-cli --cluster
//! create` and returned once every node reports the cluster ok.
//!
//! ```no_run
//! use pubsub_brokers::RedisCluster;
//!
//! let cluster = RedisCluster::start();
//! println!("{}", cluster.url()); // redis://127.0.0.1:P1,127.0.0.1:P2,.../
//! let master = cluster.master_of("some.key");
//! cluster.kill_and_fail_over(master); // its replica took over
//! cluster.start_again(master); // it comes back as a replica
//! ```

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisServer;

/// Masters, and replicas per master.
const MASTERS: usize = 3;
const REPLICAS: usize = 1;
/// How long a node may be unreachable before the cluster fails it over: short, so
/// that fault tests are quick.
const NODE_TIMEOUT_MS: &str = "1000";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A private Redis Cluster on `127.0.0.1`. Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// The nodes' directories (configuration, replication files).
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts six nodes, joins them into a cluster of three masters with one replica
    /// each, and waits until every node says the cluster is ok.
    ///
    /// Panics when `redis-server` or `redis-cli` is missing or the cluster does not
    /// form: tests that need a broker fail rather than skip.
    pub fn start() -> RedisCluster {
        let dir =
            std::env::temp_dir().join(format!("pubsub-cluster-{}", uuid::Uuid::new_v4().simple()));
        let nodes: Vec<RedisServer> = (0..MASTERS * (1 + REPLICAS))
            .map(|i| {
                // A directory per node: replication writes RDB files, which must
                // neither land in the test's directory nor be loaded by a later run.
                let node_dir = dir.join(i.to_string());
                std::fs::create_dir_all(&node_dir).expect("create a cluster node's directory");
                // The cluster bus port is chosen free too: by default it is the port plus
                // 10,000, which nothing checked, and another process held it once.
                let bus_port = crate::free_ports::<1>()[0].to_string();
                RedisServer::start_with(&[
                    "--dir",
                    &node_dir.to_string_lossy(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus_port,
                    "--cluster-config-file",
                    "nodes.conf",
                    // A new replica syncs at once, not after the default 5 s delay.
                    "--repl-diskless-sync",
                    "yes",
                    "--repl-diskless-sync-delay",
                    "0",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    // The other shards go on serving while one fails over.
                    "--cluster-require-full-coverage",
                    "no",
                    "--cluster-allow-pubsubshard-when-down",
                    "yes",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &REPLICAS.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli ({e}): run `scripts/test`, which installs redis-tools")
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_ready();
        cluster
    }

    /// The seed URL of every node: `redis://127.0.0.1:P1,127.0.0.1:P2,.../`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis://{}/", hosts.join(","))
    }

    /// The nodes, masters and replicas as `redis-cli` assigned them at creation.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node that serves `key`'s slot now (the master of its shard).
    pub fn master_of(&self, key: &str) -> usize {
        let slot = self.live_node().command(&["CLUSTER", "KEYSLOT", key]);
        let slot: u16 = slot
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT answered {slot:?}"));
        let nodes = self.live_node().command(&["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            if serves {
                let port = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse::<u16>().ok());
                if let Some(i) = self.nodes.iter().position(|n| Some(n.port()) == port) {
                    return i;
                }
            }
        }
        panic!("no master serves slot {slot} of {key:?}:\n{nodes}");
    }

    /// Kills node `i` (SIGKILL), as a crash would.
    pub fn kill(&self, i: usize) {
        self.nodes[i].kill();
    }

    /// Kills node `i` and waits until the cluster has failed it over: the others mark
    /// it failed and every slot is served again (by its replica, if it was a master).
    /// Restarting a master before that would bring it back empty as the master of its
    /// slots, and its replica would copy the empty data set.
    pub fn kill_and_fail_over(&self, i: usize) {
        self.kill(i);
        let port = format!("127.0.0.1:{}@", self.nodes[i].port());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let nodes = self.live_node().command(&["CLUSTER", "NODES"]);
            let failed = nodes.lines().any(|line| {
                line.contains(&port) && line.contains("fail") && !line.contains("fail?")
            });
            if failed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} was not marked failed within {READY_TIMEOUT:?}:\n{nodes}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_ready();
    }

    /// Starts node `i` again after [`kill`](Self::kill), with its cluster
    /// configuration: it rejoins (as a replica, if it was failed over).
    pub fn start_again(&self, i: usize) {
        self.nodes[i].start_again();
    }

    /// Waits until every node that runs says `cluster_state:ok` and every slot is
    /// served.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let infos: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .map(|n| n.command(&["CLUSTER", "INFO"]))
                .collect();
            let ok = infos.iter().all(|info| {
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready within {READY_TIMEOUT:?}: {infos:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn live_node(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a node of the cluster runs")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

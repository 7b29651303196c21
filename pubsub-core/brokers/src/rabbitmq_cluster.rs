//! A private RabbitMQ cluster for tests: nodes of one host (a private `epmd`, one
//! Erlang cookie, one process group), each with its own node name, AMQP and
//! distribution ports, joined with `rabbitmqctl join_cluster`.
//!
//! ```no_run
//! use pubsub_brokers::RabbitCluster;
//!
//! // Three nodes per test binary, started by the first test that asks.
//! let cluster = RabbitCluster::shared();
//! println!("{}", cluster.url()); // amqp://guest:guest@127.0.0.1:P1,127.0.0.1:P2,.../%2f
//! cluster.node(1).stop();
//! cluster.node(1).start_again(); // it rejoins the cluster by itself
//! ```

use std::sync::OnceLock;

use crate::rabbitmq::Host;
use crate::RabbitServer;

/// Nodes of one RabbitMQ cluster. Dropping it kills every node and removes their
/// data.
#[derive(Debug)]
pub struct RabbitCluster {
    nodes: Vec<RabbitServer>,
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        // Every node at once: one dropped alone would wait for a VM that runs on.
        if let Some(node) = self.nodes.first() {
            node.host().kill_all();
        }
    }
}

impl RabbitCluster {
    /// The three-node cluster shared by every test of this test binary, started on
    /// first use.
    ///
    /// Panics when `rabbitmq-server` is not installed or a node does not start or
    /// join.
    pub fn shared() -> &'static RabbitCluster {
        static SHARED: OnceLock<RabbitCluster> = OnceLock::new();
        SHARED.get_or_init(|| RabbitCluster::start(3))
    }

    /// Starts `nodes` nodes (at least one) together, then joins the others to the
    /// first.
    pub fn start(nodes: usize) -> RabbitCluster {
        let host = Host::start();
        let nodes: Vec<RabbitServer> = (0..nodes.max(1))
            .map(|_| RabbitServer::prepare(std::sync::Arc::clone(&host), "pubsub-cluster"))
            .collect();
        std::thread::scope(|scope| {
            for node in &nodes {
                scope.spawn(|| node.boot());
            }
        });
        let first = nodes[0].node().to_owned();
        for node in &nodes[1..] {
            node.rabbitmqctl(&["stop_app"]);
            node.rabbitmqctl(&["join_cluster", &first]);
            node.start_app();
        }
        RabbitCluster { nodes }
    }

    /// Node `index`, from 0: stop, kill and start it again through it.
    pub fn node(&self, index: usize) -> &RabbitServer {
        &self.nodes[index]
    }

    /// Every node.
    pub fn nodes(&self) -> &[RabbitServer] {
        &self.nodes
    }

    /// One URL with every node's address,
    /// `amqp://guest:guest@127.0.0.1:P1,127.0.0.1:P2,.../%2f`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("amqp://guest:guest@{}/%2f", hosts.join(","))
    }

    /// The nodes running, as the cluster sees them (`rabbitmqctl cluster_status`
    /// asked of node `asked`).
    pub fn running_nodes(&self, asked: usize) -> Vec<String> {
        let status = self.nodes[asked].rabbitmqctl(&["cluster_status", "--formatter", "json"]);
        // `"running_nodes":["a@localhost","b@localhost"]`, without a JSON parser.
        status
            .split_once("\"running_nodes\":[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| {
                list.split(',')
                    .map(|name| name.trim_matches('"').to_owned())
                    .filter(|name| !name.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

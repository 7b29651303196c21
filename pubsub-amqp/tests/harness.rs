//! The private RabbitMQ node harness: start, stop, restart keeping data.

use pubsub_brokers::RabbitServer;

#[test]
fn node_starts_restarts_and_cleans_up() {
    let t = std::time::Instant::now();
    let server = RabbitServer::start();
    eprintln!("started in {:?}", t.elapsed());
    server.rabbitmqctl(&["add_vhost", "kept"]);
    let t = std::time::Instant::now();
    server.restart();
    eprintln!("restarted in {:?}", t.elapsed());
    assert!(server.rabbitmqctl(&["list_vhosts"]).contains("kept"));
    std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("port open");
}

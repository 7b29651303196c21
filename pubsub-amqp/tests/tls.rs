//! `amqps://` against private RabbitMQ nodes with a TLS listener, and a test
//! certificate authority made here: a certificate the CA signed for the host connects
//! and carries messages; one for another host, an expired one, and one from a CA the
//! client does not trust are each refused at once, with the certificate's problem in
//! the error. Each case has a node of its own, as a node has one certificate.

use pubsub_amqp::AmqpBackend;
use pubsub_brokers::{RabbitServer, ServerCertificate, TestCa};
use pubsub_core::testkit::support::{next, refused_at_once};
use pubsub_core::PubSub;

/// A node whose TLS listener presents `certificate`, and the listener's port.
fn tls_node(certificate: &ServerCertificate) -> (RabbitServer, u16) {
    let port = pubsub_brokers::free_port();
    let config = format!(
        "listeners.ssl.default = 127.0.0.1:{port}\n\
         ssl_options.cacertfile = {}\n\
         ssl_options.certfile = {}\n\
         ssl_options.keyfile = {}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false",
        certificate.authority.display(),
        certificate.certificate.display(),
        certificate.key.display(),
    );
    let node = tokio::task::block_in_place(|| RabbitServer::start_with_config(&config));
    (node, port)
}

async fn connect(port: u16, trusted: &TestCa) -> pubsub_core::Result<AmqpBackend> {
    AmqpBackend::builder(&format!("amqps://guest:guest@localhost:{port}/%2f"))
        .tls_root_certificate(trusted.pem())
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_trusted_ca_signed_for_the_host_connects() {
    let authority = TestCa::new("pubsub test CA");
    let certificate = authority.server_certificate(&["localhost", "127.0.0.1"], false);
    let (_node, port) = tls_node(&certificate);
    let bus = PubSub::new(connect(port, &authority).await.expect("connect over TLS"));
    let mut sub = bus.topic("tls.hello").subscribe().await.expect("subscribe");
    bus.topic("tls.hello")
        .publish(&"over TLS")
        .await
        .expect("publish");
    let d = next(&mut sub, "a message over TLS").await;
    assert_eq!(d.json::<String>().expect("a string"), "over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_is_refused_at_once_with_its_problem() {
    let trusted = TestCa::new("pubsub test CA");
    for (certificate, problem) in trusted.bad_server_certificates("localhost") {
        let (_node, port) = tls_node(&certificate);
        let message = refused_at_once(problem, connect(port, &trusted)).await;
        assert!(
            !message.contains("guest:guest"),
            "no credentials: {message}"
        );
    }
}

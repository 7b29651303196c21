//! `rediss://` against a private `redis-server` TLS port, with a test certificate
//! authority made here: a server certificate the CA signed for the host connects and
//! carries messages; one for another host, an expired one, and one from a CA the
//! client does not trust are each refused at once, with the certificate's problem in
//! the error.

use pubsub_brokers::{RedisServer, ServerCertificate, TestCa};
use pubsub_core::testkit::support::{next, refused_at_once};
use pubsub_core::PubSub;
use pubsub_redis::RedisBackend;

/// A Redis server whose TLS port presents `certificate`, and that port. The plain
/// port stays for the harness's own checks.
fn tls_server(certificate: &ServerCertificate) -> (RedisServer, u16) {
    let port = pubsub_brokers::free_port();
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_owned();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &path(&certificate.certificate),
        "--tls-key-file",
        &path(&certificate.key),
        "--tls-auth-clients",
        "no",
    ]);
    (server, port)
}

async fn connect(port: u16, trusted: &TestCa) -> pubsub_core::Result<RedisBackend> {
    RedisBackend::builder(&format!("rediss://localhost:{port}/"))
        .tls_root_certificate(trusted.pem())
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_trusted_ca_signed_for_the_host_connects() {
    let authority = TestCa::new("pubsub test CA");
    let certificate = authority.server_certificate(&["localhost", "127.0.0.1"], false);
    let (_server, port) = tls_server(&certificate);
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
        let (_server, port) = tls_server(&certificate);
        refused_at_once(problem, connect(port, &trusted)).await;
    }
}

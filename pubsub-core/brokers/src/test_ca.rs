//! A certificate authority made for a test, and the server certificates it signs
//! (good ones, for another host, expired), written where a broker can read them.
//!
//! ```
//! use pubsub_brokers::TestCa;
//!
//! let ca = TestCa::new("pubsub test CA");
//! let good = ca.server_certificate(&["localhost", "127.0.0.1"], false);
//! assert!(std::fs::read_to_string(&good.certificate).unwrap().contains("BEGIN CERTIFICATE"));
//! assert!(ca.pem().contains("BEGIN CERTIFICATE"));
//! ```

use std::path::PathBuf;

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

/// A certificate authority of the test's own.
pub struct TestCa {
    certificate: Certificate,
    key: KeyPair,
}

/// A server certificate and its key, as PEM files in a folder of their own, removed
/// when this is dropped.
#[derive(Debug)]
pub struct ServerCertificate {
    /// The certificate (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM, PKCS #8).
    pub key: PathBuf,
    /// The certificate authority's certificate (PEM), for a broker that asks for it.
    pub authority: PathBuf,
    folder: PathBuf,
}

impl TestCa {
    /// A new authority named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let certificate = params.self_signed(&key).expect("the CA certificate");
        TestCa { certificate, key }
    }

    /// Its certificate (PEM): what a client that trusts it is given.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A server certificate it signs for `hosts` (names or IP addresses), valid now
    /// or `expired` (2020 to 2021).
    pub fn server_certificate(&self, hosts: &[&str], expired: bool) -> ServerCertificate {
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server parameters");
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("a server key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("the server certificate");
        let folder =
            std::env::temp_dir().join(format!("pubsub-test-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).expect("a folder for the certificates");
        let write = |name: &str, text: String| -> PathBuf {
            let path = folder.join(name);
            std::fs::write(&path, text).expect("write a certificate file");
            path
        };
        ServerCertificate {
            certificate: write("server.crt", certificate.pem()),
            key: write("server.key", key.serialize_pem()),
            authority: write("ca.crt", self.pem()),
            folder,
        }
    }
}

impl TestCa {
    /// Server certificates for `host` that a client trusting this authority must
    /// refuse, each with the words its refusal names: one for another host, an
    /// expired one, and one from an authority nobody trusts.
    pub fn bad_server_certificates(&self, host: &str) -> Vec<(ServerCertificate, &'static str)> {
        let stranger = TestCa::new("a CA nobody trusts");
        vec![
            (
                self.server_certificate(&["other.example"], false),
                "not valid for this host",
            ),
            (self.server_certificate(&[host], true), "has expired"),
            (
                stranger.server_certificate(&[host], false),
                "issuer is unknown",
            ),
        ]
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Drop for ServerCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

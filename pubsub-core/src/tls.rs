//! For backends: why a broker's TLS certificate was refused, found in an error's
//! chain of sources (feature `tls`). Trying again cannot change such a refusal, so
//! a first connection fails at once with it, in words, whatever client failed.
//!
//! ```
//! use pubsub_core::tls::certificate_problem;
//!
//! let refused = std::io::Error::new(
//!     std::io::ErrorKind::InvalidData,
//!     rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
//! );
//! assert_eq!(certificate_problem(&refused).as_deref(), Some("it has expired"));
//! assert_eq!(certificate_problem(&std::io::Error::other("reset")), None);
//! ```

use std::error::Error;
use std::sync::Arc;

use rustls::CertificateError as Problem;

/// Why the server's certificate was refused, if somewhere in `error`'s sources
/// rustls refused it.
pub fn certificate_problem(error: &(dyn Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(rustls::Error::InvalidCertificate(problem)) = refusal(error) {
            return Some(describe(problem));
        }
        cause = error.source();
    }
    None
}

/// `error` as rustls's, directly or inside an I/O error, which clients keep as it is
/// or behind an `Arc`.
fn refusal<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = Arc<dyn Error + Send + Sync>;
    let io = error
        .downcast_ref::<std::io::Error>()
        .or_else(|| error.downcast_ref::<Arc<std::io::Error>>().map(|io| &**io))
        .or_else(|| error.downcast_ref::<Shared>()?.downcast_ref());
    error
        .downcast_ref::<rustls::Error>()
        .or_else(|| io?.get_ref()?.downcast_ref())
}

fn describe(problem: &Problem) -> String {
    match problem {
        Problem::NotValidForName | Problem::NotValidForNameContext { .. } => {
            "it is not valid for this host name".to_owned()
        }
        Problem::Expired | Problem::ExpiredContext { .. } => "it has expired".to_owned(),
        Problem::NotValidYet | Problem::NotValidYetContext { .. } => {
            "it is not valid yet".to_owned()
        }
        Problem::UnknownIssuer => "its issuer is unknown: no certificate authority the \
            client trusts signed it (a private CA is trusted with the builder's \
            tls_root_certificate)"
            .to_owned(),
        other => format!("{other:?}"),
    }
}

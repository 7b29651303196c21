//! The gateway's configuration file (TOML): where to listen, which broker, how tokens
//! are verified, the limits, and the access policy of each exchange.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything in the configuration file. Its `Debug` shows no password or secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Where to listen (default `127.0.0.1:8080`; port 0 picks a free port).
    #[serde(default = "default_listen")]
    pub(crate) listen: SocketAddr,
    /// The broker: `memory://` (in-process) or an `amqp://` URL.
    #[serde(default = "default_backend")]
    pub(crate) backend: String,
    /// How tokens are verified.
    pub(crate) auth: AuthConfig,
    /// Bounds on what one client may use.
    #[serde(default)]
    pub(crate) limits: Limits,
    /// The exchanges clients may bind to, by name; any other name is refused.
    pub(crate) exchanges: BTreeMap<String, ExchangeConfig>,
    /// Who may publish through `POST /publish`; absent, nobody may.
    pub(crate) publish: Option<ClaimValue>,
    /// The demo's sample token and ticker.
    pub(crate) demo: Option<DemoConfig>,
}

/// Token verification: at least one of the two keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    /// The shared secret of HS256 tokens.
    pub(crate) hs256_secret: Option<String>,
    /// A PEM file with the RSA public key of RS256 tokens, relative to the config file.
    pub(crate) rs256_public_key: Option<PathBuf>,
    /// The claim that names the user, for the sockets-per-user limit (default `sub`).
    #[serde(default = "default_user_claim")]
    pub(crate) user_claim: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (default 0).
    #[serde(default)]
    pub(crate) leeway_seconds: u64,
    /// The `aud` a token must name; absent, the audience is not checked.
    pub(crate) audience: Option<String>,
}

/// The bounds that keep one client from using up the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// The largest frame a client may send; larger ones get an error frame.
    pub(crate) max_frame_bytes: usize,
    /// Binds one socket may hold.
    pub(crate) max_binds_per_socket: usize,
    /// Sockets (WebSocket or SSE) one user may hold at once.
    pub(crate) max_sockets_per_user: usize,
    /// Messages waiting for one socket before the oldest are dropped and counted as lag.
    pub(crate) socket_buffer: usize,
    /// Bytes of messages waiting for one socket before the oldest are dropped (the
    /// newest one is always kept, however large).
    pub(crate) socket_buffer_bytes: usize,
    /// Bytes of messages waiting for all of one user's sockets: each of them may hold
    /// its share, this divided by the user's open sockets, if that is less than
    /// `socket_buffer_bytes`.
    pub(crate) user_buffer_bytes: usize,
    /// Seconds between SSE heartbeats.
    pub(crate) heartbeat_seconds: u64,
    /// Milliseconds an HTTP access check may take before the bind is refused.
    pub(crate) check_timeout_ms: u64,
    /// Milliseconds a connection has to send a whole request head (its first, or the
    /// next one on a kept-alive connection) before it is closed.
    pub(crate) handshake_timeout_ms: u64,
    /// Milliseconds a WebSocket peer may stay silent (it is pinged every half of this)
    /// and a write to any client may wait for it to read before the connection closes.
    pub(crate) idle_timeout_ms: u64,
    /// Connections open at once. Held below the process's open-file limit
    /// (`RLIMIT_NOFILE`), which keeps a quarter of its files for everything else.
    pub(crate) max_connections: usize,
    /// Connections open at once from one IP address; at most half of
    /// `max_connections`, so that other addresses always find room.
    pub(crate) max_connections_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 4096,
            max_binds_per_socket: 32,
            max_sockets_per_user: 8,
            socket_buffer: 256,
            socket_buffer_bytes: 4 << 20,
            user_buffer_bytes: 16 << 20,
            heartbeat_seconds: 15,
            check_timeout_ms: 5000,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 16_384,
            max_connections_per_address: 256,
        }
    }
}

impl Limits {
    /// The SSE heartbeat interval.
    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds.max(1))
    }

    /// How long an HTTP access check may take.
    pub(crate) fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms)
    }

    /// How long a connection may take to send a request head.
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }

    /// How long a peer may stay silent, or a write wait for the client to read.
    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(2))
    }
}

/// How an exchange decides who may bind to which keys.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AccessKind {
    /// Anyone with a valid token.
    Public,
    /// A key segment must be one of the values of a token claim.
    Claim,
    /// A URL answers for the user's token and the key (brainlife's `checkaccess`).
    Http,
}

/// One exchange's entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeConfig {
    /// The kind of check.
    pub(crate) access: AccessKind,
    /// `claim`: the claim whose value (or one of whose values) the key segment must be.
    pub(crate) claim: Option<String>,
    /// `claim`: which key segment (0 is the first).
    #[serde(default)]
    pub(crate) segment: usize,
    /// `http`: the URL the key is appended to as one path segment.
    pub(crate) url: Option<String>,
    /// The first this many key segments must be literal (no `*` or `#`), so that a
    /// check that answers for one key cannot be asked about a wildcard.
    #[serde(default)]
    pub(crate) literal_segments: usize,
}

/// A claim that must hold a value (or hold it among its values).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimValue {
    /// The claim's name.
    pub(crate) claim: String,
    /// The value it must have.
    pub(crate) value: String,
}

/// What the demo command prints and publishes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DemoConfig {
    /// The claims of the sample token (an `exp` a day ahead is added).
    pub(crate) claims: serde_json::Map<String, serde_json::Value>,
    /// `exchange:key` that a ticker publishes to every `tick_seconds`.
    pub(crate) tick: Option<String>,
    /// Seconds between ticks (default 2).
    #[serde(default = "default_tick")]
    pub(crate) tick_seconds: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_backend() -> String {
    "memory://".to_owned()
}

fn default_user_claim() -> String {
    "sub".to_owned()
}

fn default_tick() -> u64 {
    2
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("backend", &pubsub_connect::without_password(&self.backend))
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .field("exchanges", &self.exchanges)
            .field("publish", &self.publish)
            .field("demo", &self.demo)
            .finish()
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "***"))
            .field("rs256_public_key", &self.rs256_public_key)
            .field("user_claim", &self.user_claim)
            .field("leeway_seconds", &self.leeway_seconds)
            .field("audience", &self.audience)
            .finish()
    }
}

/// A configuration file that cannot be used, with the reason.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks the file; relative key paths are resolved against its folder.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        if let Some(key) = &mut config.auth.rs256_public_key {
            if key.is_relative() {
                *key = path.parent().unwrap_or(Path::new(".")).join(&*key);
            }
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.auth.hs256_secret.is_none() && self.auth.rs256_public_key.is_none() {
            return Err(ConfigError(
                "[auth] needs hs256_secret or rs256_public_key: tokens are always verified".into(),
            ));
        }
        for (name, exchange) in &self.exchanges {
            // Dotted names are brainlife's (`wf.task`): every exchange is a bus of its
            // own, so `wf.task` key `1.2` and `wf` key `task.1.2` stay apart.
            if !matches!(pubsub_core::name::validate(name), Ok(false)) {
                return Err(ConfigError(format!(
                    "exchange {name:?}: a name is a topic name without `*` or `#`"
                )));
            }
            let missing = match exchange.access {
                AccessKind::Claim if exchange.claim.is_none() => Some("claim"),
                AccessKind::Http if exchange.url.is_none() => Some("url"),
                _ => None,
            };
            if let Some(field) = missing {
                return Err(ConfigError(format!("exchange {name:?} needs `{field}`")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_password_or_secret() {
        let config: Config = toml::from_str(
            "backend = \"amqp://app:s3cret-pw@rabbit/%2f\"\n\
             [auth]\nhs256_secret = \"hs-s3cret\"\n\
             [exchanges.public]\naccess = \"public\"\n",
        )
        .expect("a configuration");
        let shown = format!("{config:?}");
        assert!(shown.contains("amqp://app:***@rabbit/%2f"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

//! `logging::init(format)`: what every program of this workspace installs first, so
//! that the library's warnings (a lag, a gap, a dead letter) and errors (a handler
//! that gave up on a message) reach a person (feature `logging`).
//!
//! Log lines go to stderr, filtered by `RUST_LOG` (the `tracing-subscriber` syntax:
//! `RUST_LOG=debug`, `RUST_LOG=pubsub_core=debug,info`); without it, `info` and above.
//! A directive `RUST_LOG` cannot parse is skipped, not fatal.
//!
//! ```
//! use pubsub_connect::logging::{self, LogFormat};
//!
//! let format: LogFormat = "json".parse().expect("text or json");
//! logging::init(format).expect("the first subscriber of this process");
//! tracing::warn!(topic = "sync.alice", "this line is JSON on stderr");
//! // A second init fails: a process has one subscriber.
//! assert!(logging::init(LogFormat::Text).is_err());
//! ```

use std::io::IsTerminal;

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::util::{SubscriberInitExt as _, TryInitError};

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event (colours when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    /// `text` or `json`, as a `--log-format` option takes it.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the process's `tracing` subscriber: `RUST_LOG` filtering (default `info`),
/// lines on stderr in `format`. Fails when a subscriber was installed before.
pub fn init(format: LogFormat) -> Result<(), TryInitError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => lines.finish().try_init(),
        LogFormat::Json => lines.json().finish().try_init(),
    }
}

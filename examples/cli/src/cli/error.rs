//! The tool's errors: the bus's, and the tool's own reading and writing.

/// What can go wrong in a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The bus refused or failed (a bad URL, topic or priority, a broker error...).
    #[error(transparent)]
    Bus(#[from] pubsub_core::Error),
    /// Reading a payload or writing the output failed.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The result of a command.
pub(crate) type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether the reader of stdout went away (`pubsub sub ... | head`): the tool's
    /// work is done, not failed.
    pub(crate) fn is_closed_output(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

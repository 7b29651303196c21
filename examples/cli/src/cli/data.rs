//! Where a payload comes from: the argument itself, stdin (`-`) or a file (`@PATH`).

use std::io::Read;
use std::path::PathBuf;
use std::str::FromStr;

use super::{CliError, Result};

/// A payload argument, read when the command runs (so that `--help` never waits on stdin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// The argument's own text.
    Text(String),
    /// Everything on stdin, up to its end.
    Stdin,
    /// A file's bytes, exactly.
    File(PathBuf),
}

impl FromStr for Data {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Ok(match text {
            "-" => Data::Stdin,
            "@" => return Err("`@` needs a file's path: `@PATH`".into()),
            _ => match text.strip_prefix('@') {
                Some(path) => Data::File(path.into()),
                None => Data::Text(text.to_owned()),
            },
        })
    }
}

impl Data {
    /// The payload's bytes.
    pub(crate) fn read(self) -> Result<Vec<u8>> {
        match self {
            Data::Text(text) => Ok(text.into_bytes()),
            Data::Stdin => {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .map_err(|e| CliError::io("reading the payload from stdin", e))?;
                Ok(bytes)
            }
            Data::File(path) => std::fs::read(&path).map_err(|e| {
                CliError::io(format!("reading the payload from {}", path.display()), e)
            }),
        }
    }
}

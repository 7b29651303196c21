//! `memory://`: the in-process bus, new or shared by name.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use pubsub_core::{Error, PubSub, Result};
use pubsub_local::LocalBackend;

/// The in-process bus named by what follows `memory://`, or a new one when nothing
/// does.
pub(crate) fn connect(name: &str) -> Result<PubSub> {
    if name.contains(['/', '?', '@', ':']) {
        return Err(Error::InvalidUrl(
            "memory:// takes no host, path or options: use memory:// or memory://NAME".into(),
        ));
    }
    Ok(named(name).into())
}

fn named(name: &str) -> LocalBackend {
    static NAMED: OnceLock<Mutex<HashMap<String, LocalBackend>>> = OnceLock::new();
    if name.is_empty() {
        return LocalBackend::new();
    }
    // A panic elsewhere while the map was locked leaves it whole: keep using it.
    let mut named = NAMED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    named.entry(name.to_owned()).or_default().clone()
}

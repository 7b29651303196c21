//! Who may open a connection: at most `max_connections` at once, and at most
//! `max_connections_per_address` from one IP address, both held below the process's
//! open-file limit, so that one address that hogs its share leaves room for others.
//! A connection over a limit is answered at once with HTTP 503 and closed, and counted
//! in `/metrics`. Admitted connections are [`Guarded`] with the handshake and idle
//! deadlines.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::guarded::{Deadlines, Guarded};

/// Files kept for everything but client connections (the broker, access checks,
/// refusals being answered): a quarter of the open-file limit, and at least this.
const RESERVED_FILES: usize = 64;
/// Refusals answered at once; past this, a refused connection is closed unanswered.
const REFUSALS_ANSWERING: usize = 64;
/// How long a refusal waits for the client to finish sending its request, so that
/// the 503 is not lost to a reset.
const REFUSAL_DRAIN: Duration = Duration::from_secs(1);

/// The open connections, by address, and the limits they are held to.
#[derive(Debug)]
pub(crate) struct Connections {
    open: Mutex<Open>,
    max_total: usize,
    max_per_address: usize,
    refused_total: Counter,
    refused_address: Counter,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    address: IpAddr,
}

/// Which limit a connection was over.
#[derive(Debug, Clone, Copy)]
enum Over {
    Total,
    Address,
}

impl Connections {
    /// The limits of `limits`, held below the open-file limit `files` when it is known.
    pub(crate) fn new(limits: &Limits, files: Option<usize>) -> Connections {
        let mut max_total = limits.max_connections.max(1);
        if let Some(files) = files {
            let reserved = (files / 4).max(RESERVED_FILES);
            max_total = max_total.min(files.saturating_sub(reserved).max(1));
        }
        let max_per_address = limits.max_connections_per_address.min(max_total / 2).max(1);
        Connections {
            open: Mutex::default(),
            max_total,
            max_per_address,
            refused_total: metrics::counter!("gateway_connections_refused_total", "limit" => "total"),
            refused_address: metrics::counter!("gateway_connections_refused_total", "limit" => "address"),
        }
    }

    /// The limits in force: in total and per address.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.max_total, self.max_per_address)
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Over> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Over::Total);
        }
        let count = open.by_address.entry(address).or_default();
        if *count >= self.max_per_address {
            return Err(Over::Address);
        }
        *count += 1;
        open.total += 1;
        Ok(Slot {
            connections: Arc::clone(self),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.total -= 1;
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// The process's soft limit on open files (Linux), from `/proc/self/limits`.
pub(crate) fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The gateway's listener: admits connections within the limits, guarded by the
/// deadlines, and answers the others with 503.
pub(crate) struct Limited {
    listener: TcpListener,
    connections: Arc<Connections>,
    deadlines: Deadlines,
    answering: Arc<Semaphore>,
}

impl Limited {
    /// Admits the connections of `listener` by `connections`.
    pub(crate) fn new(
        listener: TcpListener,
        connections: Arc<Connections>,
        deadlines: Deadlines,
    ) -> Limited {
        Limited {
            listener,
            connections,
            deadlines,
            answering: Arc::new(Semaphore::new(REFUSALS_ANSWERING)),
        }
    }

    fn refuse(&self, stream: TcpStream, over: Over) {
        let (counter, reason) = match over {
            Over::Total => (&self.connections.refused_total, "too many connections"),
            Over::Address => (
                &self.connections.refused_address,
                "too many connections from this address",
            ),
        };
        counter.increment(1);
        // Without a permit the stream is dropped here: closed at once, unanswered.
        if let Ok(permit) = Arc::clone(&self.answering).try_acquire_owned() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REFUSAL_DRAIN, answer_503(stream, reason)).await;
                drop(permit);
            });
        }
    }
}

/// Writes a 503 with `reason`, then reads what the client sent until it closes, so
/// that closing does not reset the connection before the client reads the answer.
async fn answer_503(mut stream: TcpStream, reason: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reason}",
        reason.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

impl axum::serve::Listener for Limited {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            let (stream, address) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files, most likely: the limits should have prevented it,
                    // and retrying at once would spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.connections.admit(address.ip()) {
                Ok(slot) => return (Guarded::new(stream, slot, &self.deadlines), address),
                Err(over) => self.refuse(stream, over),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_address: per_address,
            ..Limits::default()
        }
    }

    #[test]
    fn the_limits_stay_below_the_open_file_limit_and_leave_other_addresses_room() {
        let connections = Connections::new(&limits(16_384, 1000), Some(1024));
        assert_eq!(connections.limits(), (768, 384));
        let connections = Connections::new(&limits(100, 10), None);
        assert_eq!(connections.limits(), (100, 10));
    }

    #[test]
    fn one_address_over_its_limit_is_refused_and_another_admitted() {
        let connections = Arc::new(Connections::new(&limits(10, 2), None));
        let hog: IpAddr = [127, 0, 0, 1].into();
        let held: Vec<_> = (0..2)
            .map(|_| connections.admit(hog).expect("room"))
            .collect();
        assert!(matches!(connections.admit(hog), Err(Over::Address)));
        assert!(connections.admit([127, 0, 0, 2].into()).is_ok());
        assert_eq!(connections.open(), 2);
        drop(held);
        assert_eq!(connections.open(), 0);
        assert!(connections.admit(hog).is_ok());
    }
}

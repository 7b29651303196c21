//! Inthe.AM (contract sheet `inthe-am.md`): the web service and Taskd publish raw JSON
//! on per-user channels; the `sync_listener` acts on `sync.*`; the status endpoint
//! streams one user's events to the browser as Server-Sent Events ([`stream`]).

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use pubsub_core::{Delivery, Error, Event, Handler, PubSub, Result};
use serde_json::json;
use tokio::net::TcpListener;

use crate::catalog::inthe_am::{
    CertificateCheck, ChangedTask, GeneralAnnouncement, IncomingMail, LocalSync, LogMessage,
    PersonalMessage, RejectionReason, Sync, SyncAction,
};
use crate::demo;

mod client;
pub mod stream;

pub use client::{open_stream, StreamEvent};
pub use stream::{router, serve, HEARTBEAT};

/// The addresses Inthe.AM's `sync_listener` takes for its own: `127.0.0.1` and what
/// this host's name resolves to. A sync that came from one of them is the web
/// service's own and needs no store sync.
pub async fn local_addresses() -> HashSet<String> {
    let mut local = HashSet::from(["127.0.0.1".to_owned()]);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    if let Ok(addresses) = tokio::net::lookup_host((host.as_str(), 0)).await {
        local.extend(
            addresses
                .filter(|a| a.is_ipv4())
                .map(|a| a.ip().to_string()),
        );
    }
    local
}

/// Whether Inthe.AM's `sync_listener` syncs the store on `sync`: something was stored
/// or merged, and the client is not this host.
///
/// ```
/// use std::collections::HashSet;
/// use pubsub_seeds::catalog::inthe_am::Sync;
///
/// let sync = |ip: &str, stored: u64| -> Sync {
///     serde_json::from_value(serde_json::json!({
///         "action": "sync", "username": "alice.smith", "org": "o", "client": "c",
///         "ip": ip, "port": 1, "client_key": "k", "record_count": 1, "branch_point": "b",
///         "branch_record_count": 1, "delta_count": 0, "stored_count": stored,
///         "service_duration": 0.1
///     })).unwrap()
/// };
/// let local = HashSet::from(["127.0.0.1".to_owned()]);
/// assert!(pubsub_seeds::intheam::acts_on(&sync("203.0.113.7", 2), &local));
/// assert!(!pubsub_seeds::intheam::acts_on(&sync("127.0.0.1", 2), &local));
/// assert!(!pubsub_seeds::intheam::acts_on(&sync("203.0.113.7", 0), &local));
/// ```
pub fn acts_on(sync: &Sync, local: &HashSet<String>) -> bool {
    sync.has_changes() && !local.contains(&sync.ip)
}

/// Starts Inthe.AM's `sync_listener` on `sync.#` (Redis' `sync.*` glob, which matches
/// dotted usernames): on a sync it [acts on](acts_on), it syncs the task store of the
/// body's user and announces it with `local_sync.<user>`.
pub async fn sync_listener(bus: &PubSub) -> Result<Handler> {
    let replies = bus.clone();
    let local = std::sync::Arc::new(local_addresses().await);
    let mut handler = bus.topic(Sync::TOPIC).on(move |d: Delivery| {
        let (bus, local) = (replies.clone(), local.clone());
        async move {
            let sync: Sync = d.json()?;
            if !acts_on(&sync, &local) {
                let why = match sync.has_changes() {
                    false => "nothing changed",
                    true => "the sync came from this host",
                };
                println!(
                    "sync_listener: {} synced from {}: {why}",
                    sync.username, sync.ip
                );
                return Ok(());
            }
            println!(
                "sync_listener: {} stored {} merged {}: syncing the task store",
                sync.username, sync.stored_count, sync.merged_count
            );
            let done = LocalSync {
                username: sync.username,
                debounce_id: Some(debounce_id()),
                start: sync.branch_point,
                head: uuid::Uuid::new_v4().simple().to_string(),
            };
            bus.send(&done).await?;
            Ok(())
        }
    });
    handler.ready().await?;
    Ok(handler)
}

/// A debounce id as Inthe.AM makes one: `str(time.time())`.
fn debounce_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

/// A client address that is no local one, for the demo's remote syncs (TEST-NET-3).
const REMOTE_CLIENT: &str = "203.0.113.7";

/// Publishes what the web service and Taskd emit for `username`, one message of each
/// kind and shape. Returns the events the user's status stream shows for them (not
/// counting what the sync listener adds).
pub async fn publish_all(bus: &PubSub, username: &str) -> Result<Vec<&'static str>> {
    let user = || username.to_owned();
    let sync = |ip: &str, stored_count, merged_count| Sync {
        action: SyncAction::Sync,
        username: user(),
        org: "inthe_am".into(),
        client: "taskwarrior 2.6.2".into(),
        ip: ip.into(),
        port: 53589,
        client_key: "6a8e0a61".into(),
        record_count: 12,
        branch_point: "6a8e0a61".into(),
        branch_record_count: 10,
        delta_count: stored_count,
        stored_count,
        merged_count,
        service_duration: 0.031,
    };
    let task = |id: &str, description: &str| ChangedTask {
        username: user(),
        start: "2d4f9c1".into(),
        head: "8e1b7a0".into(),
        task_id: id.into(),
        task_data: [
            ("uuid", json!(id)),
            ("description", json!(description)),
            ("status", json!("pending")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        changes: [("description", json!([null, description]))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    let log = |error, message: &str| LogMessage {
        username: user(),
        md5hash: "d41d8cd98f00b204e9800998ecf8427e".into(),
        last_seen: None,
        created: None,
        error,
        silent: false,
        message: message.into(),
        count: 1,
    };
    let mut shown = Vec::new();
    bus.send(&GeneralAnnouncement {
        title: "Maintenance".into(),
        message: "Inthe.AM restarts at noon".into(),
        system: true,
    })
    .await?;
    shown.push("public_announcement");
    bus.send(&PersonalMessage {
        username: user(),
        title: "Welcome".into(),
        message: "Your task store is ready".into(),
    })
    .await?;
    shown.push("personal_announcement");
    for (id, description) in [
        ("0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f", "Buy milk"),
        ("5d2e8f3a-1b4c-4d6e-8f9a-0b1c2d3e4f5a", "Call Bob"),
    ] {
        bus.send(&task(id, description)).await?;
        shown.push("task_changed");
    }
    bus.send(&log(false, "Synchronization complete")).await?;
    bus.send(&log(true, "Taskd refused the certificate"))
        .await?;
    shown.push("error_logged");
    bus.send(&IncomingMail {
        username: user(),
        message_id: 17,
        subject: "Buy milk".into(),
        accepted: true,
        rejection_reason: None,
        task_id: Some("0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f".into()),
    })
    .await?;
    bus.send(&IncomingMail {
        username: user(),
        message_id: 18,
        subject: "You won!".into(),
        accepted: false,
        rejection_reason: Some(RejectionReason::Passlist),
        task_id: None,
    })
    .await?;
    shown.extend(["incoming_mail", "incoming_mail"]);
    // Taskd's syncs: nothing changed; changes from this host (the web service's own
    // sync); changes from a remote client, the one the listener acts on.
    for (ip, stored, merged) in [
        (REMOTE_CLIENT, 0, 0),
        ("127.0.0.1", 3, 0),
        (REMOTE_CLIENT, 2, 1),
    ] {
        bus.send(&sync(ip, stored, merged)).await?;
    }
    bus.send(&CertificateCheck {
        username: user(),
        org: "inthe_am".into(),
        client: "taskwarrior 2.6.2".into(),
        ip: REMOTE_CLIENT.into(),
        port: 53589,
        fingerprint: "ab:cd:ef:01".into(),
        certificate_recognized: true,
        certificate_accepted: true,
    })
    .await?;
    Ok(shown)
}

/// What the demo's browser saw.
#[derive(Debug, Default)]
pub struct Report {
    /// The user's events, in order, without heartbeats.
    pub events: Vec<StreamEvent>,
    /// How many heartbeats came.
    pub heartbeats: usize,
}

/// Runs the demo: the sync listener and the status endpoint on `bus`, a browser
/// streaming `username`'s events, and a publisher of every channel. Returns once the
/// browser has every event (the listener's `local_sync` and `head_changed` included)
/// and a second heartbeat.
pub async fn run(bus: &PubSub, username: &str, heartbeat: Duration) -> Result<Report> {
    let listener = sync_listener(bus).await?;
    let http = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::connection("binding the HTTP port", e))?;
    let addr = http
        .local_addr()
        .map_err(|e| Error::connection("reading the HTTP port", e))?;
    let server = tokio::spawn(serve(http, bus.clone(), heartbeat));
    println!("status stream: curl -N http://{addr}/status/{username}");

    let mut browser = Box::pin(open_stream(addr, username).await?);
    let mut report = Report::default();
    // The first heartbeat says the stream's subscriptions are live.
    let first = demo::within("the first heartbeat", browser.next()).await?;
    if let Some(Ok(beat)) = first {
        println!("browser: {} {:?}", beat.event, beat.data);
        report.heartbeats += 1;
    }
    let expected = publish_all(bus, username).await?.len() + ["local_sync", "head_changed"].len();
    while report.events.len() < expected || report.heartbeats < 2 {
        let event = demo::within("the user's events", browser.next())
            .await?
            .ok_or(Error::Closed)??;
        println!("browser: {} {}", event.event, event.data);
        if event.event == "heartbeat" {
            report.heartbeats += 1;
        } else {
            report.events.push(event);
        }
    }
    server.abort();
    listener.stop();
    Ok(report)
}

//! Inthe.AM's event bus (seed `000`): Redis PubSub channels `<kind>.<username>`
//! carrying JSON, plus the public `__general__` channel.
//!
//! ```
//! use pubsub_seeds::catalog::inthe_am::Sync;
//!
//! let sync: Sync = serde_json::from_value(serde_json::json!({
//!     "action": "sync", "username": "alice", "org": "inthe_am", "client": "taskwarrior 2.6",
//!     "ip": "127.0.0.1", "port": 53589, "client_key": "k", "record_count": 12,
//!     "branch_point": "b", "branch_record_count": 10, "delta_count": 2,
//!     "stored_count": 2, "merged_count": 0, "service_duration": 0.031
//! })).unwrap();
//! assert!(sync.has_changes());
//! ```

use serde::{Deserialize, Serialize};

use super::{events, Document};

/// `__general__`: a public announcement, shown as a toast to everyone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneralAnnouncement {
    /// Toast message title.
    pub title: String,
    /// Toast message body.
    pub message: String,
    /// Whether the announcement comes from the system.
    pub system: bool,
}

/// `personal.<USERNAME>`: a toast message for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalMessage {
    /// Whom it is for.
    pub username: String,
    /// Toast message title.
    pub title: String,
    /// Toast message body.
    pub message: String,
}

/// `local_sync.<USERNAME>`: a synchronous sync between the web interface and Taskd
/// has completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalSync {
    /// Whose task store was synced.
    pub username: String,
    /// Used for debouncing sync requests.
    pub debounce_id: String,
    /// Git SHA before the sync.
    pub start: String,
    /// Git SHA after the sync.
    pub head: String,
}

/// `changed_task.<USERNAME>`: one task changed by a task operation (one message per
/// changed task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedTask {
    /// Whose task changed.
    pub username: String,
    /// Git SHA before the operation.
    pub start: String,
    /// Git SHA after the operation.
    pub head: String,
    /// The task's UUID.
    pub task_id: String,
    /// The task as Taskwarrior stores it.
    pub task_data: Document,
}

/// `log_message.<USERNAME>`: a new message in a user's task store log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMessage {
    /// Whose log it is.
    pub username: String,
    /// Deduplication hash.
    pub md5hash: String,
    /// When it was last seen (a datetime).
    pub last_seen: String,
    /// When it was first written (a datetime).
    pub created: String,
    /// Whether it reports an error.
    pub error: bool,
    /// Whether it is hidden from the user.
    pub silent: bool,
    /// The log text.
    pub message: String,
    /// Number of times this message has been seen.
    pub count: u64,
}

/// Why an incoming mail was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectionReason {
    /// The sender is not on the user's pass list.
    Passlist,
    /// The subject could not be turned into a task.
    Subject,
}

/// `incoming_mail.<USERNAME>`: a mail to the user's task address was processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingMail {
    /// The recipient.
    pub username: String,
    /// The mail's id.
    pub message_id: i64,
    /// The mail's subject.
    pub subject: String,
    /// Whether a task was made of it.
    pub accepted: bool,
    /// Why not, if not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<RejectionReason>,
    /// The task made of it (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// The only `action` Taskd's sync messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncAction {
    /// A sync.
    #[default]
    Sync,
}

/// `sync.<USERNAME>`: Taskd finished a sync with one of the user's clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sync {
    /// Always `sync`.
    pub action: SyncAction,
    /// Who synced.
    pub username: String,
    /// The Taskd organisation.
    pub org: String,
    /// The client's name and version.
    pub client: String,
    /// The client's address.
    pub ip: String,
    /// The client's port.
    pub port: u16,
    /// The client's key.
    pub client_key: String,
    /// Records in the store.
    pub record_count: u64,
    /// The branch point of the sync.
    pub branch_point: String,
    /// Records after the branch point.
    pub branch_record_count: u64,
    /// Records sent back to the client.
    pub delta_count: u64,
    /// Records the client stored.
    pub stored_count: u64,
    /// Records merged.
    pub merged_count: u64,
    /// Seconds the sync took.
    pub service_duration: f64,
}

impl Sync {
    /// Whether the sync changed anything, which is when Inthe.AM's `sync_listener`
    /// acts on it.
    pub fn has_changes(&self) -> bool {
        self.stored_count > 0 || self.merged_count > 0
    }
}

/// `taskd.certificate.<USERNAME>`: Taskd decided whether to accept a user-provided
/// certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateCheck {
    /// Whose certificate.
    pub username: String,
    /// The Taskd organisation.
    pub org: String,
    /// The client's name and version.
    pub client: String,
    /// The client's address.
    pub ip: String,
    /// The client's port.
    pub port: u16,
    /// The certificate's fingerprint.
    pub fingerprint: String,
    /// Whether the certificate is known.
    pub certificate_recognized: bool,
    /// Whether it was accepted.
    pub certificate_accepted: bool,
}

events! {
    GeneralAnnouncement => "__general__";
    PersonalMessage => "personal.*", by username;
    LocalSync => "local_sync.*", by username;
    ChangedTask => "changed_task.*", by username;
    LogMessage => "log_message.*", by username;
    IncomingMail => "incoming_mail.*", by username;
    Sync => "sync.*", by username;
    CertificateCheck => "taskd.certificate.*", by username;
}

/// The patterns that carry one user's events, as the status stream subscribes to
/// them: every per-user channel, and the public announcements.
pub fn user_patterns(username: &str) -> [String; 2] {
    [
        format!("#.{username}"),
        <GeneralAnnouncement as pubsub_core::Event>::TOPIC.to_owned(),
    ]
}

/// The channel kind of a topic: `changed_task` for `changed_task.alice`,
/// `taskd.certificate` for `taskd.certificate.alice`, the name itself for
/// `__general__`. Server-Sent Events name their events with it.
pub fn kind_of(topic: &str) -> &str {
    topic.rsplit_once('.').map_or(topic, |(kind, _user)| kind)
}

//! Inthe.AM's event bus (seed `000`, and the contract sheet `inthe-am.md`): Redis
//! PubSub channels `<kind>.<username>` carrying raw JSON, the username verbatim (a
//! Django username: it may hold `.`, `@`, `+`, `-`), plus the public `__general__`
//! channel. The field names and types are the running code's: `changes` on a changed
//! task, a `null` debounce id, log dates `null` on a new entry, `rejection_reason`.
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
    /// Used for debouncing sync requests (`str(time.time())`); `null` when a sync ran
    /// without one.
    pub debounce_id: Option<String>,
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
    /// What changed: each field's `[old, new]`.
    #[serde(default)]
    pub changes: Document,
}

/// `log_message.<USERNAME>`: a new message in a user's task store log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMessage {
    /// Whose log it is.
    pub username: String,
    /// Deduplication hash.
    pub md5hash: String,
    /// When it was last seen (an ISO datetime); `null` on a new entry, which is
    /// published before it is saved.
    pub last_seen: Option<String>,
    /// When it was first written (an ISO datetime); `null` on a new entry.
    pub created: Option<String>,
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
    /// The client's address (missing reads as `""`).
    #[serde(default)]
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
    /// Records the client stored (missing reads as 0).
    #[serde(default)]
    pub stored_count: u64,
    /// Records merged (missing reads as 0).
    #[serde(default)]
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

// A username may hold dots, so a kind's pattern is `kind.#`, and a message's channel is
// the kind and the username verbatim.
events! {
    GeneralAnnouncement => "__general__";
    PersonalMessage => "personal.#", topic |m| format!("personal.{}", m.username);
    LocalSync => "local_sync.#", topic |m| format!("local_sync.{}", m.username);
    ChangedTask => "changed_task.#", topic |m| format!("changed_task.{}", m.username);
    LogMessage => "log_message.#", topic |m| format!("log_message.{}", m.username);
    IncomingMail => "incoming_mail.#", topic |m| format!("incoming_mail.{}", m.username);
    Sync => "sync.#", topic |m| format!("sync.{}", m.username);
    CertificateCheck => "taskd.certificate.#", topic |m| format!("taskd.certificate.{}", m.username);
}

/// The kinds of per-user channel the status stream carries, as Inthe.AM's SSE server
/// subscribes to them.
pub const STREAMED_KINDS: [&str; 6] = [
    "local_sync",
    "changed_task",
    "log_message",
    "personal",
    "incoming_mail",
    "incoming_trello_change",
];

/// The exact channels of one user's status stream: each streamed kind with the
/// username verbatim, and the public announcements. No pattern: `personal.bob` never
/// sees `personal.bob.smith`, nor `alice`'s stream anything of `bob.alice`.
///
/// ```
/// let channels = pubsub_seeds::catalog::inthe_am::user_channels("alice.smith");
/// assert_eq!(channels[1], "changed_task.alice.smith");
/// assert_eq!(channels[6], "__general__");
/// ```
pub fn user_channels(username: &str) -> [String; 7] {
    let [a, b, c, d, e, f] = STREAMED_KINDS.map(|kind| format!("{kind}.{username}"));
    let general = <GeneralAnnouncement as pubsub_core::Event>::TOPIC.to_owned();
    [a, b, c, d, e, f, general]
}

/// The channel kind of a topic: the text before its first `.` (so dots in a username
/// are harmless), or the name itself for `__general__`.
///
/// ```
/// use pubsub_seeds::catalog::inthe_am::kind_of;
///
/// assert_eq!(kind_of("changed_task.alice.smith"), "changed_task");
/// assert_eq!(kind_of("__general__"), "__general__");
/// ```
pub fn kind_of(topic: &str) -> &str {
    topic.split_once('.').map_or(topic, |(kind, _user)| kind)
}

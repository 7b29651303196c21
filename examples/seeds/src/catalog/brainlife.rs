//! brainlife.io's event service (seed `003`): Amaretti publishes task records, in
//! 2016 to exchange `wf` with key `task.<instance>.<task>`, today to exchange
//! `wf.task` with key `<instance>.<task>`; browsers bind to an exchange and key over a
//! WebSocket (`{"bind":{"ex":"wf.task","key":"<instance>.#"}}`) and get
//! `{"headers","dinfo","msg"}` frames; notification requests run a handler when a
//! task reaches a status.
//!
//! On this library's bus the exchange is the first segment of the topic: a task
//! record is published to `wf.task.<instance_id>.<task_id>`, and the notification
//! queue is bound to `wf.task.#` (see [`crate::brainlife::Layout`] for Amaretti's own
//! exchanges).
//!
//! ```
//! use pubsub_core::Event;
//! use pubsub_seeds::catalog::brainlife::Task;
//!
//! let task: Task = serde_json::from_str(r#"{"_id":"t1","instance_id":"i1","status":"finished",
//!   "status_msg":"","user_id":"1","service":"soichih/bl-product-nifti","name":"diff import"}"#).unwrap();
//! assert_eq!(task.topic(), "wf.task.i1.t1");
//! assert!(task.is_finished());
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{events, Document};

/// A task record as Amaretti publishes it on every status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The workflow instance the task belongs to.
    pub instance_id: String,
    /// `requested`, `running`, `finished`, `failed`...
    pub status: String,
    /// A human-readable status.
    pub status_msg: String,
    /// The owner's user id.
    pub user_id: String,
    /// The service (a GitHub repository) the task runs.
    pub service: String,
    /// The task's name.
    pub name: String,
    /// When the task was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
    /// When the task was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_date: Option<String>,
    /// When it will next be looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_date: Option<String>,
    /// The progress service key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_key: Option<String>,
    /// The service's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// The environment the task runs with.
    #[serde(rename = "_envs", default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<std::collections::BTreeMap<String, String>>,
    /// The resource it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The resources it may run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_ids: Option<Vec<String>>,
    /// Resources it depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_deps: Option<Vec<String>>,
    /// Tasks it depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps: Option<Vec<String>>,
    /// Mongoose's version key.
    #[serde(rename = "__v", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Any further fields, kept as they came.
    #[serde(flatten)]
    pub extra: Document,
}

impl Task {
    /// Whether the task completed successfully (the `wf.task.finished` event).
    pub fn is_finished(&self) -> bool {
        self.status == "finished"
    }
}

events! {
    Task => "wf.task.#", topic |t| format!("wf.task.{}.{}", t.instance_id, t.id);
}

/// What a browser sends over the event WebSocket to bind to a key of an exchange:
/// `{"bind":{"ex":"wf","key":"task.<id>.#"}}`. A gateway frame, not a bus message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindRequest {
    /// The binding asked for.
    pub bind: Binding,
}

/// An exchange and a key pattern within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The exchange (`wf`, `public`...).
    pub ex: String,
    /// The AMQP topic pattern within it.
    pub key: String,
}

impl Binding {
    /// The pattern on this bus, where the exchange is the first segment.
    pub fn pattern(&self) -> String {
        format!("{}.{}", self.ex, self.key)
    }
}

/// What the gateway relays to the browser: `msg` is the message body, `dinfo`
/// node-amqp's delivery info, on which browsers route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relayed {
    /// The message as published.
    pub msg: Value,
    /// Where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dinfo: Option<DeliveryInfo>,
}

/// The part of node-amqp's `deliveryInfo` that brainlife's browsers read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryInfo {
    /// The exchange (`wf.task`, `warehouse`...).
    pub exchange: String,
    /// The message's routing key; Warehouse's page takes the dataset id from its
    /// fifth segment.
    pub routing_key: String,
}

/// The event of a finished task: a notification's `event` is `"wf.task." + status`.
pub const TASK_FINISHED: &str = "wf.task.finished";

/// A notification request, posted to `/api/event/notification/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRequest {
    /// The event that triggers it, `"wf.task." + status` ([`TASK_FINISHED`]...).
    pub event: String,
    /// What to run.
    pub handler: NotificationHandler,
    /// The handler's settings.
    pub config: EmailConfig,
}

/// The notification handlers brainlife has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationHandler {
    /// Send an email to the user who made the request.
    Email,
}

/// The `config` of an email notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailConfig {
    /// The task whose completion triggers it.
    pub task_id: String,
    /// The mail's subject.
    pub subject: String,
    /// The mail's body.
    pub message: String,
}

/// The body the notification API and an exchange's access check answer with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `ok` when granted or accepted.
    pub status: String,
}

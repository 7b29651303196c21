//! brainlife.io's notifications: a durable group queue bound to `wf.task.#` runs the
//! registered handler when a task finishes. The email handler writes the mail it
//! would send into an outbox folder (there is no mail server here), and the message
//! is acked only once the mail is on disk: a crash before that delivers it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pubsub_core::{
    Delivery, Event, Handler, HandlerOptions, HandlerResult, PubSub, Result, RetryPolicy,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::catalog::brainlife::{
    EmailConfig, NotificationHandler, NotificationRequest, Task, TASK_FINISHED,
};
use crate::catalog::Document;
use crate::demo;

/// The group (durable queue) of the notification service.
pub const QUEUE: &str = "brainlife.notifications";
/// Where a task message goes when its notification could not be sent.
pub const FAILED: &str = "brainlife.notifications.failed";

/// A notification request and the address of the user who made it (brainlife looks
/// it up from the request's JWT).
#[derive(Debug, Clone)]
pub struct Registration {
    /// The user's email address.
    pub to: String,
    /// What they asked for.
    pub request: NotificationRequest,
}

/// What the notification handler did with one task message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task is not finished, or nobody asked to hear of it.
    Ignored {
        /// The task id.
        task: String,
        /// Its status.
        status: String,
    },
    /// The mail is in the outbox; the message was acked after this.
    Mailed {
        /// The task id.
        task: String,
        /// The mail's file.
        path: PathBuf,
    },
    /// Writing the mail failed; the message will be retried or dead-lettered.
    Failed {
        /// The task id.
        task: String,
        /// Why.
        error: String,
    },
}

struct Service {
    registrations: Vec<Registration>,
    outbox: PathBuf,
    outcomes: UnboundedSender<Outcome>,
}

/// Starts the notification service as a member of [`QUEUE`]: each task message goes
/// to one member, failures are retried twice after a delay, then sent to [`FAILED`].
pub async fn start(
    bus: &PubSub,
    registrations: Vec<Registration>,
    outbox: &Path,
    outcomes: UnboundedSender<Outcome>,
) -> Result<Handler> {
    let service = Arc::new(Service {
        registrations,
        outbox: outbox.to_owned(),
        outcomes,
    });
    let options = HandlerOptions::new().group(QUEUE).retry(
        RetryPolicy::attempts(3)
            .delay(Duration::from_millis(200))
            .dead_letter(FAILED),
    );
    let mut handler = bus.topic(Task::TOPIC).on_with(options, move |d: Delivery| {
        let service = Arc::clone(&service);
        async move { service.notify(&d).await }
    });
    handler.ready().await?;
    Ok(handler)
}

impl Service {
    async fn notify(&self, d: &Delivery) -> HandlerResult {
        let task: Task = d.json()?;
        let wanted: Vec<&Registration> = self
            .registrations
            .iter()
            .filter(|r| r.request.event == TASK_FINISHED && r.request.config.task_id == task.id)
            .collect();
        if !task.is_finished() || wanted.is_empty() {
            println!("task {} is {}: nothing to send", task.id, task.status);
            self.outcomes.send(Outcome::Ignored {
                task: task.id,
                status: task.status,
            })?;
            return Ok(());
        }
        for registration in wanted {
            match registration.request.handler {
                NotificationHandler::Email => self.email(&task, registration).await?,
            }
        }
        Ok(())
    }

    /// Writes the mail to a temporary file and renames it into place, so the outbox
    /// never holds half a mail.
    async fn email(&self, task: &Task, registration: &Registration) -> HandlerResult {
        let EmailConfig {
            subject, message, ..
        } = &registration.request.config;
        let mail = format!(
            "To: {}\r\nSubject: {subject}\r\nX-Brainlife-Task: {}\r\n\r\n{message}\r\n",
            registration.to, task.id
        );
        let path = self.outbox.join(format!("{}.eml", task.id));
        let staging = self.outbox.join(format!(".{}.eml.tmp", task.id));
        let written = async {
            tokio::fs::create_dir_all(&self.outbox).await?;
            tokio::fs::write(&staging, mail).await?;
            tokio::fs::rename(&staging, &path).await
        }
        .await;
        if let Err(error) = written {
            println!(
                "task {} finished: mail to {} failed: {error}",
                task.id, registration.to
            );
            self.outcomes.send(Outcome::Failed {
                task: task.id.clone(),
                error: error.to_string(),
            })?;
            return Err(error.into());
        }
        println!(
            "task {} finished: mail to {} written to {}",
            task.id,
            registration.to,
            path.display()
        );
        self.outcomes.send(Outcome::Mailed {
            task: task.id.clone(),
            path,
        })?;
        Ok(())
    }
}

/// What the demo saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Every outcome of the handler, in order.
    pub outcomes: Vec<Outcome>,
    /// The ids of the tasks whose message was dead-lettered.
    pub dead_letters: Vec<String>,
}

impl Report {
    /// The mails written.
    pub fn mails(&self) -> Vec<&Path> {
        self.outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Mailed { path, .. } => Some(path.as_path()),
                _ => None,
            })
            .collect()
    }
}

/// Runs the demo: a user asks to be mailed when task `t-2` finishes, Amaretti
/// publishes the status changes of two tasks, and the service writes one mail into
/// `outbox`. Returns once every task message is settled (mailed, ignored or
/// dead-lettered).
pub async fn run(bus: &PubSub, outbox: &Path) -> Result<Report> {
    let (outcomes, mut events) = unbounded_channel();
    let mut failed = bus.topic(FAILED).subscribe().await?;
    let registrations = vec![Registration {
        to: "user1@brainlife.example".into(),
        request: NotificationRequest {
            event: TASK_FINISHED.into(),
            handler: NotificationHandler::Email,
            config: EmailConfig {
                task_id: "t-2".into(),
                subject: "Your task diff import has finished".into(),
                message: "Hello! your workflow has completed!".into(),
            },
        },
    }];
    let handler = start(bus, registrations, outbox, outcomes).await?;

    let updates = [
        ("t-1", "requested"),
        ("t-2", "requested"),
        ("t-2", "running"),
        ("t-1", "failed"),
        ("t-2", "finished"),
    ];
    for (id, status) in updates {
        bus.send(&task(id, status)).await?;
    }

    let mut report = Report::default();
    let mut settled = 0;
    while settled < updates.len() {
        tokio::select! {
            outcome = demo::next(&mut events, "the notification service") => {
                let outcome = outcome?;
                if !matches!(outcome, Outcome::Failed { .. }) {
                    settled += 1;
                }
                report.outcomes.push(outcome);
            }
            dead = demo::next_message(&mut failed, "the dead letters") => {
                let task: Task = dead?.json()?;
                println!("task {}: notification given up", task.id);
                report.dead_letters.push(task.id);
                settled += 1;
            }
        }
    }
    // A failure is reported before its message is dead-lettered, so any not read
    // yet is already waiting.
    while let Ok(outcome) = events.try_recv() {
        report.outcomes.push(outcome);
    }
    handler.stop();
    Ok(report)
}

/// A task record of the demo's workflow instance.
fn task(id: &str, status: &str) -> Task {
    Task {
        id: id.into(),
        instance_id: "57912b0fef01633d720918cf".into(),
        status: status.into(),
        status_msg: format!("task is {status}"),
        user_id: "1".into(),
        service: "soichih/bl-product-nifti".into(),
        name: "diff import".into(),
        request_date: None,
        create_date: None,
        next_date: None,
        progress_key: None,
        config: None,
        envs: None,
        resource_id: None,
        resource_ids: None,
        resource_deps: None,
        deps: None,
        version: None,
        extra: Document::new(),
    }
}

//! brainlife.io's notifications: a durable group queue of task records runs the
//! registered handler when a task reaches the status it asked for
//! (`"wf.task." + status`), once per registration. The email handler writes the mail
//! it would send into an outbox folder (there is no mail server here), and the
//! message is acked only once the mail is on disk: a crash before that delivers it
//! again.
//!
//! The records come from this library's bus ([`Layout::Bus`]: `wf.task.#`), or from
//! Amaretti itself on RabbitMQ, as brainlife's `bin/handle.js` takes them: queue
//! `event.task` (durable, no arguments, prefetch 1, manual ack) bound to `wf.task`
//! with `#` today ([`Layout::Current`]), or to `wf` with `task.#` in the 2016 layout
//! ([`Layout::Legacy`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashSet;
use std::sync::Mutex;

use pubsub_amqp::{AmqpBackend, QueueSpec};
use pubsub_core::{
    Delivery, Event, Handler, HandlerOptions, HandlerResult, Message, PubSub, Result, RetryPolicy,
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

/// brainlife's own queue of the notification service (`bin/handle.js`).
pub const EVENT_QUEUE: &str = "event.task";
/// Runs of the handler for one message before it is given up.
const ATTEMPTS: u32 = 3;

/// Where the service takes task records from, and where Amaretti puts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// This library's bus: topic `wf.task.<instance>.<task>`, group [`QUEUE`], given
    /// up messages to [`FAILED`].
    Bus,
    /// Amaretti today: exchange `wf.task`, key `<instance>.<task>`; queue
    /// [`EVENT_QUEUE`] bound with `#`.
    Current,
    /// Amaretti in 2016: exchange `wf`, key `task.<instance>.<task>`; queue
    /// [`EVENT_QUEUE`] bound with `task.#`.
    #[value(name = "2016")]
    Legacy,
}

impl Layout {
    /// Amaretti's exchange, for the layouts of Amaretti itself.
    pub fn exchange(self) -> Option<&'static str> {
        match self {
            Layout::Bus => None,
            Layout::Current => Some("wf.task"),
            Layout::Legacy => Some("wf"),
        }
    }

    /// What the service's queue is bound with.
    pub fn binding(self) -> &'static str {
        match self {
            Layout::Bus => Task::TOPIC,
            Layout::Current => "#",
            Layout::Legacy => "task.#",
        }
    }

    /// The routing key (the topic, on the bus) of `task`'s record.
    pub fn key(self, task: &Task) -> String {
        match self {
            Layout::Bus => task.topic().into_owned(),
            Layout::Current => format!("{}.{}", task.instance_id, task.id),
            Layout::Legacy => format!("task.{}.{}", task.instance_id, task.id),
        }
    }

    /// The group, which is the queue's name on Amaretti's exchanges.
    pub fn group(self) -> &'static str {
        match self {
            Layout::Bus => QUEUE,
            Layout::Current | Layout::Legacy => EVENT_QUEUE,
        }
    }

    /// Where a given-up message goes. On Amaretti's exchange a dead letter would come
    /// back through `#`, so there it is dropped after its attempts, as brainlife
    /// acks a message whose handler failed.
    fn dead_letter(self) -> Option<&'static str> {
        (self == Layout::Bus).then_some(FAILED)
    }

    /// The bus to run the service on: `url` as it is for [`Layout::Bus`], else
    /// Amaretti's exchange on the RabbitMQ `url`, whose group [`EVENT_QUEUE`]
    /// consumes brainlife's durable queue with prefetch 1.
    ///
    /// ```no_run
    /// use pubsub_seeds::brainlife::Layout;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> pubsub_core::Result<()> {
    /// let bus = Layout::Current.connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
    /// # drop(bus);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self, url: &str) -> Result<PubSub> {
        let Some(exchange) = self.exchange() else {
            return pubsub_connect::connect(url).await;
        };
        let backend = AmqpBackend::builder(url)
            .exchange(exchange)
            .queue(QueueSpec::declare(EVENT_QUEUE))
            .prefetch(1)
            .connect()
            .await?;
        Ok(backend.into())
    }
}

/// The group queue of the service, as a pair of group and topic: what a demo run on a
/// broker deletes when it ends ([`crate::footprint`]).
pub fn groups() -> Vec<(String, &'static str)> {
    vec![(QUEUE.to_owned(), Task::TOPIC)]
}

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
    /// The registrations that fired (by index): each fires once.
    fired: Mutex<HashSet<usize>>,
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
    start_on(bus, Layout::Bus, registrations, outbox, outcomes).await
}

/// Starts the notification service on `bus` (from [`Layout::connect`]) as a member
/// of `layout`'s group, bound as `layout` says; failures are retried twice after a
/// delay, then given up.
pub async fn start_on(
    bus: &PubSub,
    layout: Layout,
    registrations: Vec<Registration>,
    outbox: &Path,
    outcomes: UnboundedSender<Outcome>,
) -> Result<Handler> {
    let service = Arc::new(Service {
        registrations,
        fired: Mutex::default(),
        outbox: outbox.to_owned(),
        outcomes,
    });
    let mut retry = RetryPolicy::attempts(ATTEMPTS).delay(Duration::from_millis(200));
    if let Some(topic) = layout.dead_letter() {
        retry = retry.dead_letter(topic);
    }
    let options = HandlerOptions::new().group(layout.group()).retry(retry);
    let topic = bus.topic(layout.binding());
    let mut handler = topic.on_with(options, move |d: Delivery| {
        let service = Arc::clone(&service);
        async move { service.notify(&d).await }
    });
    handler.ready().await?;
    Ok(handler)
}

impl Service {
    async fn notify(&self, d: &Delivery) -> HandlerResult {
        // Amaretti sends JSON `null` for a task removed before it was read again.
        let Some(task) = d.json::<Option<Task>>()? else {
            println!("a removed task: nothing to send");
            return Ok(());
        };
        let event = format!("wf.task.{}", task.status);
        let wanted: Vec<(usize, &Registration)> = {
            let fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
            let registrations = self.registrations.iter().enumerate();
            registrations
                .filter(|(i, r)| {
                    !fired.contains(i)
                        && r.request.event == event
                        && r.request.config.task_id == task.id
                })
                .collect()
        };
        if wanted.is_empty() {
            println!("task {} is {}: nothing to send", task.id, task.status);
            self.outcomes.send(Outcome::Ignored {
                task: task.id,
                status: task.status,
            })?;
            return Ok(());
        }
        for (index, registration) in wanted {
            match registration.request.handler {
                NotificationHandler::Email => self.email(&task, registration).await?,
            }
            // Only once it ran: a failed mail is tried again with its message.
            let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
            fired.insert(index);
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
        // Each step names the path it failed on: "Permission denied" alone does not
        // say which file to look at.
        let written = async {
            let at = |path: &Path| {
                let path = path.to_owned();
                move |error: std::io::Error| format!("{}: {error}", path.display())
            };
            tokio::fs::create_dir_all(&self.outbox)
                .await
                .map_err(at(&self.outbox))?;
            tokio::fs::write(&staging, mail)
                .await
                .map_err(at(&staging))?;
            tokio::fs::rename(&staging, &path).await.map_err(at(&path))
        }
        .await;
        if let Err(error) = written {
            println!(
                "task {} finished: mail to {} failed: {error}",
                task.id, registration.to
            );
            self.outcomes.send(Outcome::Failed {
                task: task.id.clone(),
                error: error.clone(),
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

/// Runs the demo on this library's bus ([`run_on`] with [`Layout::Bus`]).
pub async fn run(bus: &PubSub, outbox: &Path) -> Result<Report> {
    run_on(bus, Layout::Bus, outbox).await
}

/// Runs the demo: a user asks to be mailed when task `t-2` finishes, Amaretti
/// publishes the status changes of two tasks as `layout` lays them out, and the
/// service writes one mail into `outbox`. Returns once every task message is settled
/// (mailed, ignored or given up).
pub async fn run_on(bus: &PubSub, layout: Layout, outbox: &Path) -> Result<Report> {
    let (outcomes, mut events) = unbounded_channel();
    let mut failed = match layout.dead_letter() {
        Some(topic) => Some(bus.topic(topic).subscribe().await?),
        None => None,
    };
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
    let handler = start_on(bus, layout, registrations, outbox, outcomes).await?;

    let updates = [
        ("t-1", "requested"),
        ("t-2", "requested"),
        ("t-2", "running"),
        ("t-1", "failed"),
        ("t-2", "finished"),
    ];
    for (id, status) in updates {
        let task = task(id, status);
        // Amaretti's node-amqp marks an object body so, and brainlife's gateway
        // parses `msg` only then; a bus that carries no headers (raw Redis) sends
        // the bare JSON.
        let mut event = Message::json(&task)?;
        if bus.capabilities().headers {
            event = event.with_content_type("application/json");
        }
        bus.topic(layout.key(&task)).publish_message(event).await?;
    }

    let mut report = Report::default();
    let mut settled = 0;
    let mut failures: Vec<String> = Vec::new();
    while settled < updates.len() {
        let dead_letter = async {
            match &mut failed {
                Some(failed) => demo::next_message(failed, "the dead letters").await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = demo::next(&mut events, "the notification service") => {
                let outcome = outcome?;
                match &outcome {
                    Outcome::Failed { task, .. } if failed.is_none() => {
                        // Without a dead-letter topic, the last attempt gives it up.
                        failures.push(task.clone());
                        if failures.iter().filter(|t| *t == task).count() == ATTEMPTS as usize {
                            report.dead_letters.push(task.clone());
                            settled += 1;
                        }
                    }
                    Outcome::Failed { .. } => {}
                    _ => settled += 1,
                }
                report.outcomes.push(outcome);
            }
            dead = dead_letter => {
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

#[cfg(test)]
mod tests {
    use pubsub_core::testkit::support::next;
    use pubsub_local::LocalBackend;

    use super::*;

    #[tokio::test]
    async fn task_events_say_they_are_json_as_node_amqp_marks_them() {
        let bus = PubSub::new(LocalBackend::new());
        let mut events = bus.topic("wf.task.#").subscribe().await.unwrap();
        let outbox = tempfile::tempdir().unwrap();
        run(&bus, outbox.path()).await.expect("the brainlife demo");
        let event = next(&mut events, "a task event").await;
        assert_eq!(event.content_type(), Some("application/json"));
        assert_eq!(event.json::<Task>().unwrap().id, "t-1");
    }
}

//! The `pubsub` command-line tool: publish, subscribe and request on any backend,
//! to poke at a live bus.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use pubsub_core::{Error, Message, Result, SubscribeOptions};
use serde_json::{json, Value};

/// `pubsub`: publish, subscribe and request on a bus chosen by URL.
#[derive(Debug, Parser)]
#[command(name = "pubsub", version, about)]
pub struct Cli {
    /// The bus: memory:// (in-process, for a demo), redis://HOST:PORT/, amqp://USER:PASS@HOST:PORT/%2f.
    #[arg(long, global = true, default_value = "memory://")]
    pub url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publishes DATA (sent as given: JSON text stays JSON text) to TOPIC.
    Pub {
        /// A concrete topic name.
        topic: String,
        /// The payload.
        data: String,
        /// Headers and priority.
        #[command(flatten)]
        meta: Meta,
    },
    /// Prints every message on PATTERN as pretty JSON, one after another.
    Sub {
        /// A topic name or pattern (`*` one segment, `#` any number).
        pattern: String,
        /// Joins this group (competing consumers) instead of a broadcast subscription.
        #[arg(long)]
        group: Option<String>,
        /// Exits after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Sends DATA as a request on TOPIC and prints the reply.
    Request {
        /// A concrete topic name.
        topic: String,
        /// The payload.
        data: String,
        /// How long to wait for the reply (`500ms`, `5s`, `1m`).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Headers and priority.
        #[command(flatten)]
        meta: Meta,
    },
}

/// Headers and priority of an outgoing message.
#[derive(Debug, Args)]
pub struct Meta {
    /// A header `KEY=VALUE`; repeat for more.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The priority, 0 to 9.
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
}

impl Meta {
    fn message(&self, data: &str) -> Message {
        self.headers.iter().fold(
            Message::new(data.to_owned()).with_priority(self.priority),
            |message, (key, value)| message.with_header(key, value),
        )
    }
}

fn parse_header(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Runs the command, writing what it receives to `out`.
///
/// ```
/// use clap::Parser;
/// use pubsub_examples::cli::{run, Cli};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pubsub_core::Result<()> {
/// let cli = Cli::parse_from(["pubsub", "pub", "changed_task.alice", r#"{"username":"alice"}"#, "-H", "k=v"]);
/// let mut out = Vec::new();
/// run(cli, &mut out).await?;
/// assert!(String::from_utf8_lossy(&out).contains("published"));
/// # Ok(())
/// # }
/// ```
pub async fn run(cli: Cli, out: &mut (impl Write + Send)) -> Result<()> {
    let bus = crate::connect(&cli.url).await?;
    match cli.command {
        Command::Pub { topic, data, meta } => {
            bus.topic(&topic)
                .publish_message(meta.message(&data))
                .await?;
            print(out, &json!({ "published": topic, "bytes": data.len() }))
        }
        Command::Sub {
            pattern,
            group,
            count,
        } => {
            let options = match group {
                Some(group) => SubscribeOptions::new().group(group),
                None => SubscribeOptions::new(),
            };
            let subscription = bus.topic(&pattern).subscribe_with(options).await?;
            let mut deliveries = subscription.take(count.unwrap_or(usize::MAX));
            while let Some(item) = deliveries.next().await {
                match item {
                    Ok(delivery) => {
                        print(out, &render(&delivery))?;
                        delivery.ack().await?;
                    }
                    // Signals (lag, gap, a bad message) are worth seeing; the stream goes on.
                    Err(signal) if signal.is_signal() => eprintln!("warning: {signal}"),
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        }
        Command::Request {
            topic,
            data,
            timeout,
            meta,
        } => {
            let reply = bus
                .topic(&topic)
                .request_message(meta.message(&data), timeout)
                .await?;
            print(out, &render(&reply))
        }
    }
}

/// A message as the tool prints it: its metadata, and its payload as JSON when it is
/// JSON, as text otherwise.
pub fn render(message: &Message) -> Value {
    let payload = serde_json::from_slice(message.payload())
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(message.payload()).into_owned()));
    let headers: serde_json::Map<String, Value> = message
        .headers()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    json!({
        "topic": message.topic(),
        "priority": message.priority(),
        "attempt": message.attempt(),
        "id": message.id(),
        "headers": headers,
        "payload": payload,
    })
}

fn print(out: &mut impl Write, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(Error::Encode)?;
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::connection("writing the output", e))
}

//! The `pubsub` command line: publish, subscribe and request on any backend, to poke
//! at a live bus.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pubsub_core::{Delivery, Error, Message, Received, Result, SubscribeOptions};
use serde_json::{json, Value};

#[cfg(test)]
mod tests;

/// `pubsub`: publish, subscribe and request on a bus chosen by URL.
#[derive(Debug, Parser)]
#[command(name = "pubsub", version, about)]
pub(crate) struct Cli {
    /// The bus: memory:// (in-process, for a demo), redis://HOST:PORT/, amqp://USER:PASS@HOST:PORT/%2f.
    #[arg(long, global = true, default_value = "memory://")]
    url: String,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
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
struct Meta {
    /// A header `KEY=VALUE`; repeat for more.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The priority, 0 to 9.
    #[arg(long, default_value_t = 0)]
    priority: u8,
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
pub(crate) async fn run(cli: Cli, out: &mut (impl Write + Send)) -> Result<()> {
    let bus = pubsub_connect::connect(&cli.url).await?;
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
            let mut subscription = bus.topic(&pattern).subscribe_with(options).await?;
            // On stderr, so that stdout stays JSON only: tells a person (or a script)
            // that messages published from now on will be printed.
            eprintln!("listening on {pattern}");
            let mut left = count.unwrap_or(usize::MAX);
            while left > 0 {
                let Some(received) = subscription.next().await else {
                    break;
                };
                match received {
                    Received::Message(delivery) => {
                        print(out, &render(&delivery))?;
                        delivery.ack().await?;
                        left -= 1;
                    }
                    // Missed messages are worth seeing, not worth stopping for.
                    Received::Signal(signal) => eprintln!("warning: {signal}"),
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

/// A delivery as the tool prints it: its metadata, and its payload as JSON when it
/// is JSON, as text otherwise.
fn render(delivery: &Delivery) -> Value {
    let payload = serde_json::from_slice(delivery.payload()).unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(delivery.payload()).into_owned())
    });
    let headers: serde_json::Map<String, Value> = delivery
        .headers()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    json!({
        "topic": delivery.topic(),
        "priority": delivery.priority(),
        "attempt": delivery.attempt(),
        "id": delivery.id(),
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

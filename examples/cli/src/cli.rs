//! The `pubsub` command line: publish, subscribe, request and reply on any backend, to
//! poke at a live bus.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pubsub_core::{Error, Message, PubSub, Received, SubscribeOptions, MAX_PRIORITY};

mod data;
mod error;
mod render;
#[cfg(test)]
mod tests;

use data::Data;
pub(crate) use error::{CliError, Result};
use render::{print, Encoding};

/// The environment variable that names the bus when `--url` is not given.
const URL_VARIABLE: &str = "PUBSUB_URL";

/// Publish, subscribe, request and reply on a message bus from the shell.
#[derive(Debug, Parser)]
#[command(
    name = "pubsub",
    version,
    about = "Publish, subscribe, request and reply on a message bus from the shell.",
    long_about = "Publish, subscribe, request and reply on a message bus from the shell.\n\n\
        The bus is in-process (memory://), Redis (redis://) or RabbitMQ (amqp://), \
        named by --url or the PUBSUB_URL variable. Received messages are printed on \
        stdout as pretty JSON, one document each; notes and warnings go to stderr.",
    after_help = "Examples:\n  \
        pubsub --url redis://127.0.0.1/ sub 'changed_task.*' --count 1\n  \
        pubsub --url redis://127.0.0.1/ pub changed_task.alice '{\"username\":\"alice\"}' -H source=cli\n  \
        echo '{\"message\":\"ping\"}' | pubsub --url amqp://guest:guest@127.0.0.1:5672/%2f request send.echo.request -\n  \
        pubsub --url amqp://guest:guest@127.0.0.1:5672/%2f reply send.echo.request @answer.json\n\n\
        DATA is the payload as written, `-` for stdin, or `@PATH` for a file's bytes."
)]
pub(crate) struct Cli {
    /// The bus: redis://HOST[:PORT]/, amqp://USER:PASS@HOST:PORT/%2f, or memory://
    /// (in-process: reaches this process only). Defaults to $PUBSUB_URL.
    #[arg(long, global = true, env = URL_VARIABLE, hide_env_values = true)]
    url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Publishes DATA to TOPIC and prints what was published.
    Pub {
        /// A concrete topic name (no `*` or `#`).
        topic: String,
        /// The payload: text as written, `-` for stdin, `@PATH` for a file.
        data: Data,
        /// Headers and priority.
        #[command(flatten)]
        meta: Meta,
    },
    /// Prints every message on PATTERN as it arrives.
    Sub {
        /// A topic name or pattern (`*` one segment, `#` any number).
        pattern: String,
        /// Joins this group (its members share the messages) instead of a broadcast.
        #[arg(long, value_parser = parse_group)]
        group: Option<String>,
        /// Exits after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// How payloads are printed.
        #[command(flatten)]
        encoding: Encoding,
    },
    /// Sends DATA as a request on TOPIC and prints the reply.
    Request {
        /// A concrete topic name.
        topic: String,
        /// The payload: text as written, `-` for stdin, `@PATH` for a file.
        data: Data,
        /// How long to wait for the reply (`500ms`, `5s`, `1m`).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Headers and priority.
        #[command(flatten)]
        meta: Meta,
        /// How payloads are printed.
        #[command(flatten)]
        encoding: Encoding,
    },
    /// Answers requests on PATTERN with DATA (or echoes each request without DATA),
    /// printing each request it answers.
    Reply {
        /// A topic name or pattern.
        pattern: String,
        /// The reply: text as written, `-` for stdin, `@PATH` for a file. Without it,
        /// each request's own payload is sent back.
        data: Option<Data>,
        /// Shares the requests with the other responders of this group.
        #[arg(long, value_parser = parse_group)]
        group: Option<String>,
        /// Exits after answering this many requests.
        #[arg(long)]
        count: Option<usize>,
        /// Headers and priority of the replies.
        #[command(flatten)]
        meta: Meta,
        /// How payloads are printed.
        #[command(flatten)]
        encoding: Encoding,
    },
}

/// Headers and priority of an outgoing message.
#[derive(Debug, Args)]
struct Meta {
    /// A header `KEY=VALUE`; repeat for more.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The priority: priorities go from 0 to 9 (9 first).
    #[arg(long, default_value_t = 0, value_parser = parse_priority)]
    priority: u8,
}

impl Meta {
    fn message(&self, payload: Vec<u8>) -> Message {
        self.headers.iter().fold(
            Message::new(payload).with_priority(self.priority),
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

/// A priority, in the bus's own words when it is out of range.
fn parse_priority(text: &str) -> std::result::Result<u8, String> {
    match text.parse::<u8>() {
        Ok(priority) if priority <= MAX_PRIORITY => Ok(priority),
        Ok(priority) => Err(Error::InvalidPriority(priority).to_string()),
        Err(_) => Err(format!(
            "invalid priority {text}: priorities go from 0 to {MAX_PRIORITY}"
        )),
    }
}

/// A group name, checked by the bus's rules; the error names the group.
fn parse_group(text: &str) -> std::result::Result<String, String> {
    pubsub_core::name::validate_group(text)
        .map(|()| text.to_owned())
        .map_err(|error| error.to_string())
}

/// Runs the command, writing what it receives to `out`.
pub(crate) async fn run(cli: Cli, out: &mut (impl Write + Send)) -> Result<()> {
    let bus = connect(cli.url.as_deref()).await?;
    match cli.command {
        Command::Pub { topic, data, meta } => {
            let payload = data.read()?;
            let bytes = payload.len();
            bus.topic(&topic)
                .publish_message(meta.message(payload))
                .await?;
            print(
                out,
                &serde_json::json!({ "published": topic, "bytes": bytes }),
            )
        }
        Command::Sub {
            pattern,
            group,
            count,
            encoding,
        } => {
            let mut subscription = subscribe(&bus, &pattern, group).await?;
            for _ in 0..count.unwrap_or(usize::MAX) {
                let Some(delivery) = next_delivery(&mut subscription).await else {
                    break;
                };
                print(out, &encoding.render(&delivery))?;
                delivery.ack().await?;
            }
            Ok(())
        }
        Command::Request {
            topic,
            data,
            timeout,
            meta,
            encoding,
        } => {
            let request = meta.message(data.read()?);
            let reply = bus.topic(&topic).request_message(request, timeout).await?;
            print(out, &encoding.render(&reply))
        }
        Command::Reply {
            pattern,
            data,
            group,
            count,
            meta,
            encoding,
        } => {
            let answer = data.map(|data| data.read()).transpose()?;
            let mut subscription = subscribe(&bus, &pattern, group).await?;
            for _ in 0..count.unwrap_or(usize::MAX) {
                let Some(request) = next_delivery(&mut subscription).await else {
                    break;
                };
                let payload = answer.clone().unwrap_or_else(|| request.payload().to_vec());
                match request.reply_message(meta.message(payload)).await {
                    Ok(()) => print(out, &encoding.render(&request))?,
                    // A plain publish on the topic has nobody to answer: worth a line,
                    // not the end of the responder.
                    Err(error) => eprintln!("warning: {}: {error}", request.topic()),
                }
                request.ack().await?;
            }
            Ok(())
        }
    }
}

/// The bus `--url` names; without one, an in-process bus, with a word on what that means.
async fn connect(url: Option<&str>) -> pubsub_core::Result<PubSub> {
    let url = url.unwrap_or_else(|| {
        eprintln!(
            "note: no --url or ${URL_VARIABLE}: using memory://, an in-process bus that \
             reaches this process only; give --url redis://HOST/ or \
             --url amqp://USER:PASS@HOST:PORT/%2f to reach other programs"
        );
        "memory://"
    });
    pubsub_connect::connect(url).await
}

async fn subscribe(
    bus: &PubSub,
    pattern: &str,
    group: Option<String>,
) -> pubsub_core::Result<pubsub_core::Subscription> {
    let options = match group {
        Some(group) => SubscribeOptions::new().group(group),
        None => SubscribeOptions::new(),
    };
    let subscription = bus.topic(pattern).subscribe_with(options).await?;
    // On stderr, so that stdout stays JSON only: tells a person (or a script) that
    // messages published from now on are this subscription's.
    eprintln!("listening on {pattern}");
    Ok(subscription)
}

/// The next delivery; signals (missed messages, a reconnect) are worth seeing on
/// stderr, not worth stopping for.
async fn next_delivery(
    subscription: &mut pubsub_core::Subscription,
) -> Option<pubsub_core::Delivery> {
    loop {
        match subscription.next().await? {
            Received::Message(delivery) => return Some(delivery),
            Received::Signal(signal) => eprintln!("warning: {signal}"),
        }
    }
}

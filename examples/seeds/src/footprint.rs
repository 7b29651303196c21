//! What a demo leaves on a shared broker: nothing. On RabbitMQ a demo runs on an
//! exchange of its own run (so its durable group queues are the run's own too, and a
//! later run never replays what an earlier one left queued), and deletes that exchange
//! and its group queues when it ends. `--keep-names` runs on the names the URL gives
//! (the `pubsub` exchange unless `exchange=` says otherwise) and deletes nothing: for a
//! demo that should meet what an earlier run or another program left.

use pubsub_core::{Error, Result};

/// The `--keep-names` option of the programs that declare durable queues.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Naming {
    /// Runs on the exchange the URL names (default `pubsub`) and keeps its durable
    /// queues after the run, instead of an exchange of this run's own that is deleted
    /// at the end.
    #[arg(long)]
    keep_names: bool,
}

/// The bus URL of one run, and what the run must delete when it ends.
#[derive(Debug)]
pub struct Run {
    url: String,
    /// The run's own exchange, on an AMQP URL that did not name one.
    exchange: Option<String>,
}

impl Naming {
    /// The run of `system`'s demo on `url`: an AMQP URL without `exchange=` gets an
    /// exchange named after `system` and a fresh id; any other URL is used as given.
    ///
    /// ```
    /// use clap::Parser;
    ///
    /// #[derive(Parser)]
    /// struct Args {
    ///     #[command(flatten)]
    ///     naming: pubsub_seeds::footprint::Naming,
    /// }
    ///
    /// let run = Args::parse_from(["demo"]).naming.run("amqp://127.0.0.1/%2f", "infrahub");
    /// assert!(run.url().starts_with("amqp://127.0.0.1/%2f?exchange=infrahub.demo."));
    /// let kept = Args::parse_from(["demo", "--keep-names"]).naming.run("amqp://127.0.0.1/%2f", "infrahub");
    /// assert_eq!(kept.url(), "amqp://127.0.0.1/%2f");
    /// assert_eq!(Args::parse_from(["demo"]).naming.run("memory://", "x").url(), "memory://");
    /// ```
    pub fn run(self, url: &str, system: &str) -> Run {
        let amqp = url.starts_with("amqp://") || url.starts_with("amqps://");
        let names_one = url
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("exchange=")));
        if self.keep_names || !amqp || names_one {
            return Run {
                url: url.to_owned(),
                exchange: None,
            };
        }
        let exchange = format!("{system}.demo.{}", uuid::Uuid::new_v4().simple());
        let separator = if url.contains('?') { '&' } else { '?' };
        Run {
            url: format!("{url}{separator}exchange={exchange}"),
            exchange: Some(exchange),
        }
    }
}

impl Run {
    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Deletes the run's own exchange and the durable queues of `groups` (pairs of
    /// group and topic) on it; nothing when the run kept the names. Every queue is
    /// tried, so one failure leaves no more behind than it must.
    pub async fn clean_up(&self, groups: &[(String, &str)]) -> Result<()> {
        let Some(exchange) = &self.exchange else {
            return Ok(());
        };
        // The client's URL: our query keys are not lapin's.
        let base = self
            .url
            .split_once('?')
            .map_or(self.url.as_str(), |(base, _)| base);
        let connection = lapin::Connection::connect(base, lapin::ConnectionProperties::default())
            .await
            .map_err(|e| Error::connection("connecting to clean up the demo's queues", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| Error::broker("opening a channel to clean up", e))?;
        let mut failed = None;
        for (group, topic) in groups {
            let queue = pubsub_amqp::group_queue(group, exchange, topic)?;
            if let Err(error) = channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await
            {
                failed.get_or_insert(Error::broker(format!("deleting queue {queue}"), error));
            }
        }
        if let Err(error) = channel
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await
        {
            failed.get_or_insert(Error::broker(
                format!("deleting exchange {exchange}"),
                error,
            ));
        }
        let _ = connection.close(200, "cleaned up".into()).await;
        failed.map_or(Ok(()), Err)
    }
}

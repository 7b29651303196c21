//! Topology a program declares for itself: a queue with its flags, arguments and
//! headers bindings ([`QueueSpec`]), outside any subscription.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::{Connection, ExchangeKind};
use pubsub_core::Result;

use crate::connection::declare_exchange;
use crate::errors::lapin_error;
use crate::properties::{short, to_table};
use crate::QueueSpec;

/// Declares `spec` on a channel of `connection` of its own, then binds it to each of
/// its headers exchanges, declaring those.
pub(crate) async fn declare_queue(connection: &Connection, spec: &QueueSpec) -> Result<()> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| lapin_error("open a channel", e))?;
    let queue = short("queue name", &spec.name)?;
    let options = QueueDeclareOptions {
        durable: spec.durable,
        exclusive: spec.exclusive,
        passive: spec.passive,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.clone(), options, spec.argument_table()?)
        .await
        .map_err(|e| {
            let flags = format!(
                "durable = {}, exclusive = {}, arguments {:?}",
                spec.durable, spec.exclusive, spec.arguments
            );
            lapin_error(&format!("declare queue {:?} ({flags})", spec.name), e)
        })?;
    for (exchange, arguments) in &spec.header_bindings {
        let exchange = short("exchange name", exchange)?;
        declare_exchange(&channel, &exchange, ExchangeKind::Headers).await?;
        let table = to_table(arguments)?;
        channel
            .queue_bind(
                queue.clone(),
                exchange.clone(),
                "".into(),
                QueueBindOptions::default(),
                table,
            )
            .await
            .map_err(|e| {
                let what = format!("bind queue {:?} to {:?}", spec.name, exchange.as_str());
                lapin_error(&what, e)
            })?;
    }
    // An exclusive queue belongs to the connection, not to this channel.
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

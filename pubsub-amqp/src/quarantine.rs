//! Messages lapin cannot read, taken out of a group queue before it is consumed
//! again.
//!
//! lapin 4.12 (amq-protocol-types 10.6) reads every AMQP short string as UTF-8: a
//! foreign message whose `message-id`, `reply-to`, `content-type` or a header name is
//! not UTF-8 fails the parse of its content header, and lapin ends the whole
//! connection. The broker then requeues the message, the next consumer of the queue
//! gets it and loses its connection too: a group queue would never be consumed
//! again. So a member whose connection ended so first looks at the head of its queue
//! on a connection spoken by hand ([`crate::wire`]): up to its prefetch and one more
//! messages taken with `basic.get`, each content header read leniently. What lapin
//! cannot read is rejected without requeue (to the queue's dead-letter exchange if it
//! has one, else dropped) and reported on the subscription as a gap; closing the
//! channel gives the others back to the queue, in their order, marked redelivered
//! (one more attempt for a handler). Only then does the member consume again.
//!
//! The broker returns what the lost connection held a moment after the socket
//! closed, and tells no one: a look that finds the queue empty before any of it came
//! back looks again, for up to a second (seen here in tests/unreadable.rs: one look
//! in 32 found the queue empty at first, and the message 10 ms later). A message
//! that still slips by ends one more connection, and is taken out then.

use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use lapin::protocol::basic::parse_properties;
use lapin::types::parsing::{parse_field_table, parse_value};
use lapin::ErrorKind;
use pubsub_core::backoff::Backoff;
use pubsub_core::ring::RingSender;
use pubsub_core::Delivery;
use tokio::time::Instant;

use crate::connection::Shared;
use crate::wire::{self, Frame, Io, Refusal, BODY, CONTENT_HEADER, HEADER};

/// Whether lapin ended a connection because it could not read what the broker sent.
pub(crate) fn is_unreadable(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ParsingError(_))
}

/// Takes what lapin cannot read out of the head of `queue` (at most `limit`
/// messages are looked at) and tells `ring` about each. A failure to look is logged:
/// the member consumes again all the same.
pub(crate) async fn contain(shared: &Shared, queue: &str, limit: u16, ring: &RingSender<Delivery>) {
    let Some((address, tls)) = shared.preferred_address() else {
        return;
    };
    let look = async {
        let mut stream = wire::connect(&address.uri, Some(&tls)).await?;
        stream.write_all(HEADER).await?;
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).await?;
        let frame_max = wire::handshake(&mut stream, first[0], &address.uri).await?;
        let found = reject_unreadable(&mut stream, frame_max, queue, limit).await;
        wire::close(&mut stream, "looked for unreadable messages", frame_max).await;
        found
    };
    match tokio::time::timeout(shared.options.connect_timeout, look).await {
        Ok(Ok(found)) => {
            for what in found {
                tracing::warn!(queue, %what, "rejected a message the client cannot read");
                ring.gap(format!(
                    "a message in group queue {queue:?} could not be read ({what}); it was \
                     rejected without requeue (to the queue's dead-letter exchange if it \
                     has one, else dropped)"
                ));
            }
        }
        Ok(Err(Refusal::Auth(why) | Refusal::Other(why))) => {
            let broker = &address.display;
            tracing::warn!(queue, %broker, %why, "could not look for unreadable messages");
        }
        Err(_) => {
            let broker = &address.display;
            tracing::warn!(queue, %broker, "could not look for unreadable messages in time");
        }
    }
}

/// The channel the look takes.
const CHANNEL: u16 = 1;

/// How long the look waits for the broker to return what the lost connection held,
/// when nothing it returned is seen (the unreadable message may have been in another
/// queue of that connection; then each of its members waits this long).
const SETTLE: Duration = Duration::from_secs(1);

/// On a connection just opened: gets up to `limit` messages of `queue`, rejects those
/// lapin cannot read, and closes the channel, which requeues the rest. What was
/// unreadable in each rejected message.
async fn reject_unreadable(
    stream: &mut (impl Io + ?Sized),
    frame_max: usize,
    queue: &str,
    limit: u16,
) -> Result<Vec<String>, Refusal> {
    let mut open = wire::method(20, 10);
    wire::short_string(&mut open, "");
    wire::send(stream, CHANNEL, &open).await?;
    wire::expect(
        &wire::read_frame(stream, None, frame_max).await?,
        (20, 11),
        "channel.open-ok",
    )?;
    let mut found = Vec::new();
    let (mut taken, mut returned, mut waits) = (0, false, 0);
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
    let settle = Instant::now() + SETTLE;
    while taken <= limit {
        let Some(message) = get(stream, frame_max, queue).await? else {
            // The broker may not have returned the lost connection's deliveries yet,
            // and tells no one when it does: look again for a while, unless some came
            // back already.
            if returned || !found.is_empty() || Instant::now() >= settle {
                break;
            }
            waits += 1;
            tokio::time::sleep(backoff.next_delay()).await;
            continue;
        };
        taken += 1;
        returned |= message.redelivered;
        if let Some(what) = unreadable(&message.properties) {
            let mut reject = wire::method(60, 90);
            reject.extend_from_slice(&message.tag.to_be_bytes());
            reject.push(0); // no requeue
            wire::send(stream, CHANNEL, &reject).await?;
            found.push(what);
        }
    }
    tracing::debug!(
        queue,
        taken,
        returned,
        waits,
        rejected = found.len(),
        "looked for unreadable messages"
    );
    // The broker's close-ok comes once it has settled the rejects and requeued the
    // rest.
    let mut close = wire::method(20, 40);
    close.extend_from_slice(&200u16.to_be_bytes());
    wire::short_string(&mut close, "looked");
    close.extend_from_slice(&[0; 4]);
    wire::send(stream, CHANNEL, &close).await?;
    loop {
        let frame = wire::read_frame(stream, None, frame_max).await?;
        if frame.ids() == (20, 41) {
            return Ok(found);
        }
    }
}

/// A message taken with `basic.get`.
struct Got {
    tag: u64,
    redelivered: bool,
    /// As sent, from the property flags on.
    properties: Vec<u8>,
}

/// The message at the head of `queue`, unacknowledged; `None` when there is none.
async fn get(
    stream: &mut (impl Io + ?Sized),
    frame_max: usize,
    queue: &str,
) -> Result<Option<Got>, Refusal> {
    let mut get = wire::method(60, 70);
    get.extend_from_slice(&0u16.to_be_bytes());
    wire::short_string(&mut get, queue);
    get.push(0); // acknowledged, by the reject or the channel's close
    wire::send(stream, CHANNEL, &get).await?;
    let answer = wire::read_frame(stream, None, frame_max).await?;
    match answer.ids() {
        (60, 71) => {}
        (60, 72) => return Ok(None),
        (20, 40) => {
            let (code, text) = wire::close_reason(&answer);
            let _ = wire::send(stream, CHANNEL, &wire::method(20, 41)).await;
            return Err(Refusal::Other(format!(
                "the broker closed the channel: {text} ({code})"
            )));
        }
        _ => wire::expect(&answer, (60, 71), "basic.get-ok")?,
    }
    let tag = answer
        .payload
        .get(4..12)
        .map_or(0, |t| u64::from_be_bytes(t.try_into().unwrap_or_default()));
    let redelivered = answer.payload.get(12).is_some_and(|bits| bits & 1 == 1);
    let properties = read_content(stream, frame_max).await?;
    Ok(Some(Got {
        tag,
        redelivered,
        properties,
    }))
}

/// Reads a message's content header and body frames; its properties as sent.
async fn read_content(
    stream: &mut (impl Io + ?Sized),
    frame_max: usize,
) -> Result<Vec<u8>, Refusal> {
    let header = wire::read_frame(stream, None, frame_max).await?;
    let malformed = || Refusal::Other("the broker sent a malformed content header".into());
    let Frame {
        kind: CONTENT_HEADER,
        payload,
        ..
    } = header
    else {
        return Err(malformed());
    };
    let size = payload.get(4..12).ok_or_else(malformed)?;
    let size = u64::from_be_bytes(size.try_into().unwrap_or_default());
    let mut read = 0u64;
    while read < size {
        let body = wire::read_frame(stream, None, frame_max).await?;
        if body.kind != BODY {
            return Err(malformed());
        }
        read += body.payload.len() as u64;
    }
    Ok(payload[12..].to_vec())
}

/// Basic's properties in the order of their flags, and which are short strings.
const PROPERTIES: [(&str, Kind); 14] = [
    ("content-type", Kind::Text),
    ("content-encoding", Kind::Text),
    ("headers", Kind::Table),
    ("delivery-mode", Kind::Octets(1)),
    ("priority", Kind::Octets(1)),
    ("correlation-id", Kind::Text),
    ("reply-to", Kind::Text),
    ("expiration", Kind::Text),
    ("message-id", Kind::Text),
    ("timestamp", Kind::Octets(8)),
    ("type", Kind::Text),
    ("user-id", Kind::Text),
    ("app-id", Kind::Text),
    ("cluster-id", Kind::Text),
];

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Table,
    Octets(usize),
}

/// What lapin cannot read in `properties` (a content header's, from its flags on),
/// in words; `None` when lapin reads them. Text that is not UTF-8 is shown as a short
/// lossy preview, never whole.
pub(crate) fn unreadable(properties: &[u8]) -> Option<String> {
    if parse_properties(properties).is_ok() {
        return None;
    }
    let mut problems = Vec::new();
    let described = describe(properties, &mut problems);
    if described.is_none() || problems.is_empty() {
        problems.push("its properties are malformed".to_owned());
    }
    Some(problems.join(", "))
}

/// Walks `properties`, noting each that is not UTF-8; `None` where they end early.
fn describe(properties: &[u8], problems: &mut Vec<String>) -> Option<()> {
    let flags = u16::from_be_bytes(properties.get(..2)?.try_into().ok()?);
    let mut rest = &properties[2..];
    for (index, (name, kind)) in PROPERTIES.iter().enumerate() {
        if flags & (1 << (15 - index)) == 0 {
            continue;
        }
        let size = match kind {
            Kind::Text => 1 + usize::from(*rest.first()?),
            Kind::Table => 4 + u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize,
            Kind::Octets(size) => *size,
        };
        let field = rest.get(..size)?;
        match kind {
            Kind::Text if std::str::from_utf8(&field[1..]).is_err() => {
                problems.push(format!("{name} is not UTF-8 ({})", preview(&field[1..])));
            }
            Kind::Table if parse_field_table(field).is_err() => {
                describe_headers(&field[4..], problems)
            }
            _ => {}
        }
        rest = &rest[size..];
    }
    Some(())
}

/// Notes the header names that are not UTF-8, and the first value lapin cannot read
/// (after which the table's entries cannot be told apart).
fn describe_headers(mut table: &[u8], problems: &mut Vec<String>) {
    while let Some(&len) = table.first() {
        let Some(name) = table.get(1..1 + usize::from(len)) else {
            break;
        };
        if std::str::from_utf8(name).is_err() {
            problems.push(format!("a header name is not UTF-8 ({})", preview(name)));
        }
        match parse_value(&table[1 + usize::from(len)..]) {
            Ok((rest, _)) => table = rest,
            Err(_) => {
                problems.push(format!(
                    "the value of header {} is not UTF-8 or malformed",
                    preview(name)
                ));
                break;
            }
        }
    }
}

/// At most a few characters of `bytes`, lossily decoded and quoted.
fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 12;
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(SHOWN).collect();
    if text.chars().count() > SHOWN {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Properties with `flags` set and `fields` after them.
    fn properties(flags: u16, fields: &[&[u8]]) -> Vec<u8> {
        let mut bytes = flags.to_be_bytes().to_vec();
        for field in fields {
            bytes.extend_from_slice(field);
        }
        bytes
    }

    #[test]
    fn readable_properties_are_left_alone() {
        let content_type = b"\x10application/json";
        assert_eq!(unreadable(&properties(1 << 15, &[content_type])), None);
        assert_eq!(unreadable(&properties(0, &[])), None);
    }

    #[test]
    fn text_that_is_not_utf8_is_named_with_a_short_preview() {
        // message-id (bit 7) after a priority (bit 11).
        let bytes = properties(1 << 11 | 1 << 7, &[b"\x05", b"\x02\xff\xfe"]);
        assert_eq!(
            unreadable(&bytes).unwrap(),
            "message-id is not UTF-8 (\"\u{fffd}\u{fffd}\")"
        );
        let long = [0xffu8; 40];
        let mut reply_to = vec![40u8];
        reply_to.extend_from_slice(&long);
        let what = unreadable(&properties(1 << 9, &[&reply_to])).unwrap();
        assert!(what.starts_with("reply-to is not UTF-8"), "{what}");
        assert!(what.chars().count() < 40, "{what}");
    }

    #[test]
    fn a_header_name_that_is_not_utf8_is_found_behind_readable_ones() {
        // headers (bit 13): {"ok": long string "v", "\xc3\x28": long string "w"}.
        let entries: &[u8] = b"\x02okS\x00\x00\x00\x01v\x02\xc3\x28S\x00\x00\x00\x01w";
        let mut table = u32::try_from(entries.len()).unwrap().to_be_bytes().to_vec();
        table.extend_from_slice(entries);
        let content_type = b"\x04text";
        let bytes = properties(1 << 15 | 1 << 13, &[content_type, &table]);
        assert_eq!(
            unreadable(&bytes).unwrap(),
            "a header name is not UTF-8 (\"\u{fffd}(\")"
        );
    }

    #[test]
    fn any_cut_of_the_properties_is_read_without_a_panic() {
        let entries: &[u8] = b"\x02okS\x00\x00\x00\x01v\x02\xc3\x28s\x02\xff\xfe";
        let mut table = u32::try_from(entries.len()).unwrap().to_be_bytes().to_vec();
        table.extend_from_slice(entries);
        let bytes = properties(0xfffc, &[b"\x01\xff", b"\x00", &table, b"\x02\x05"]);
        for end in 0..bytes.len() {
            assert!(unreadable(&bytes[..end]).is_some(), "cut at {end}");
        }
    }

    #[test]
    fn truncated_properties_are_malformed() {
        let bytes = properties(1 << 7, &[b"\x09abc"]);
        assert_eq!(unreadable(&bytes).unwrap(), "its properties are malformed");
    }
}

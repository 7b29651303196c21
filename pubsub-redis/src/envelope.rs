//! The envelope that carries headers, id and priority (the format is in the crate docs).

use pubsub_core::{Bytes, Error, Message, Result, MAX_PRIORITY};
use serde::{Deserialize, Serialize};

use crate::header_json::{from_json, to_json};

const MAGIC: [u8; 4] = [0x00, b'P', b'S', 0x01];
/// Magic, checksum and metadata length.
const FIXED: usize = 12;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[serde(default, rename = "h", skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, serde_json::Value)>,
    #[serde(default, rename = "i", skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, rename = "p", skip_serializing_if = "is_zero")]
    priority: u8,
}

fn is_zero(priority: &u8) -> bool {
    *priority == 0
}

/// The bytes to publish for `message`: the bare payload when that says it all (or in
/// raw mode), the envelope otherwise.
pub(crate) fn encode(message: &Message, raw: bool) -> Result<Bytes> {
    let payload = message.payload();
    let bare = !message.has_headers()
        && message.id().is_none()
        && message.priority() == 0
        && !payload.starts_with(&MAGIC);
    if raw || bare {
        return Ok(payload.clone());
    }
    let meta = Meta {
        headers: message
            .headers()
            .map(|(k, v)| (k.to_owned(), to_json(v)))
            .collect(),
        id: message.id().map(str::to_owned),
        priority: message.priority(),
    };
    let meta = serde_json::to_vec(&meta).map_err(Error::Encode)?;
    let len = u32::try_from(meta.len())
        .map_err(|_| Error::PayloadTooLarge {
            size: meta.len(),
            limit: u32::MAX as usize,
        })?
        .to_be_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&meta);
    let mut out = Vec::with_capacity(FIXED + meta.len() + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(&meta);
    out.extend_from_slice(payload);
    Ok(out.into())
}

/// The message carried by `bytes`: an envelope's content if `bytes` is a valid
/// envelope (and `raw` is off), else `bytes` itself as the payload.
pub(crate) fn decode(bytes: Bytes, raw: bool) -> Message {
    match (!raw).then(|| open(&bytes)).flatten() {
        Some(message) => message,
        None => Message::new(bytes),
    }
}

/// The message `bytes` carries, if they are an envelope in every detail.
fn open(bytes: &Bytes) -> Option<Message> {
    if bytes.len() < FIXED || bytes[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    let len_bytes = &bytes[8..12];
    let len = usize::try_from(u32::from_be_bytes(len_bytes.try_into().ok()?)).ok()?;
    let meta = bytes.get(FIXED..FIXED.checked_add(len)?)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_bytes);
    hasher.update(meta);
    if hasher.finalize() != crc {
        return None;
    }
    let meta: Meta = serde_json::from_slice(meta).ok()?;
    if meta.priority > MAX_PRIORITY {
        return None;
    }
    let mut message = Message::new(bytes.slice(FIXED + len..)).with_priority(meta.priority);
    for (key, value) in meta.headers {
        message = message.with_header(key, from_json(value)?);
    }
    Some(match meta.id {
        Some(id) => message.with_id(id),
        None => message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: &Message) -> Message {
        decode(encode(message, false).unwrap(), false)
    }

    #[test]
    fn plain_messages_go_bare() {
        let m = Message::new("{\"a\":1}");
        assert_eq!(&encode(&m, false).unwrap(), m.payload());
    }

    #[test]
    fn metadata_round_trips() {
        let m = Message::new("body")
            .with_header("k", "v")
            .with_header("delay", 5000)
            .with_header("reply-to", "x.y")
            .with_id("id-1")
            .with_priority(7);
        let back = round_trip(&m);
        assert_eq!(back.payload(), "body".as_bytes());
        assert_eq!(back, m);
        assert_eq!((back.id(), back.priority()), (Some("id-1"), 7));
    }

    #[test]
    fn raw_mode_sends_and_reads_bare_payloads() {
        let m = Message::new("body").with_header("k", "v");
        assert_eq!(encode(&m, true).unwrap(), "body".as_bytes());
        let enveloped = encode(&m, false).unwrap();
        assert_eq!(decode(enveloped.clone(), true).payload(), &enveloped);
    }

    #[test]
    fn payloads_that_look_like_an_envelope_arrive_unchanged() {
        let real = encode(&Message::new("x").with_header("k", "v"), false).unwrap();
        let lookalikes: Vec<Bytes> = vec![
            Bytes::from_static(&MAGIC),
            Bytes::from_static(b"\x00PS\x01\x00\x00\x00\x00\x00\x00\x00\x02{}"),
            real.slice(..real.len() - 1).slice(..14),
            {
                let mut bad_crc = real.to_vec();
                bad_crc[5] ^= 1;
                bad_crc.into()
            },
            {
                let mut long = real.to_vec();
                long[11] = 0xff;
                long.into()
            },
        ];
        for bytes in lookalikes {
            let got = decode(bytes.clone(), false);
            assert_eq!(got.payload(), &bytes);
            assert!(!got.has_headers());
        }
        // Our own bare payload that starts with the magic survives the trip.
        for bytes in [Bytes::from_static(&MAGIC), real.clone()] {
            assert_eq!(round_trip(&Message::new(bytes.clone())).payload(), &bytes);
        }
    }
}

//! AMQP 0-9-1 spoken by hand on a connection of its own, for the two things lapin
//! cannot do: tell at once why a broker address refuses (see [`crate::probe`]), and
//! read a message whose properties lapin cannot parse (see [`crate::quarantine`]).
//!
//! Frames are built and read here; the handshake (`start-ok` with PLAIN, `tune-ok`
//! without heartbeats, `open` of the vhost) is the same for both. The socket comes
//! from lapin's own TCP and TLS connector, so an `amqps://` address is reached with
//! the certificates lapin trusts.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use lapin::tcp::{AMQPUriTcpExt, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};

pub(crate) const HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
const FRAME_END: u8 = 0xCE;
pub(crate) const METHOD: u8 = 1;
pub(crate) const CONTENT_HEADER: u8 = 2;
pub(crate) const BODY: u8 = 3;

/// What the socket needs: lapin's TCP or TLS stream.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Why the broker, or what listens at the address, did not let a connection open.
pub(crate) enum Refusal {
    /// The broker refused the credentials or the vhost: final.
    Auth(String),
    Other(String),
}

impl From<std::io::Error> for Refusal {
    fn from(error: std::io::Error) -> Self {
        Refusal::Other(match error.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused: nothing listens on that port".into(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                "the peer closed the connection during the AMQP handshake: is this an AMQP \
                 port (a TLS port takes amqps://)?"
                    .into()
            }
            _ => error.to_string(),
        })
    }
}

/// A socket to `uri`'s address: with TLS when `tls` is given and the URI says
/// `amqps`, else in the clear (the probe looks at a TLS port's first answer so).
pub(crate) async fn connect(
    uri: &AMQPUri,
    tls: Option<&OwnedTLSConfig>,
) -> std::io::Result<Box<dyn Io>> {
    let runtime = lapin::runtime::default_runtime().map_err(std::io::Error::other)?;
    let stream = match tls {
        Some(tls) => {
            uri.connect_with_config_async(tls.as_ref(), &runtime)
                .await?
        }
        None => {
            let mut plain = uri.clone();
            plain.scheme = AMQPScheme::AMQP;
            plain.connect_async(&runtime).await?
        }
    };
    Ok(Box::new(stream))
}

/// One frame: its type, channel and payload.
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) channel: u16,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// A method frame's class and method ids.
    pub(crate) fn ids(&self) -> (u16, u16) {
        match (self.kind, self.payload.as_slice()) {
            (METHOD, [a, b, c, d, ..]) => {
                (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
            }
            _ => (0, 0),
        }
    }

    pub(crate) fn is_close(&self) -> bool {
        self.ids() == (10, 50)
    }
}

/// A method frame's payload: class and method ids, then arguments.
pub(crate) fn method(class: u16, method: u16) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload
}

pub(crate) fn short_string(payload: &mut Vec<u8>, text: &str) {
    payload.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
    payload.extend_from_slice(&text.as_bytes()[..text.len().min(255)]);
}

/// Sends a method frame with `payload` on `channel`.
pub(crate) async fn send(
    stream: &mut (impl Io + ?Sized),
    channel: u16,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut frame = vec![METHOD];
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(FRAME_END);
    stream.write_all(&frame).await
}

/// Reads one frame, whose type byte is `first` when already read. Heartbeats are
/// none (the handshake asks for none), and a frame over `max` bytes is refused.
pub(crate) async fn read_frame(
    stream: &mut (impl Io + ?Sized),
    first: Option<u8>,
    max: usize,
) -> Result<Frame, Refusal> {
    let kind = match first {
        Some(kind) => kind,
        None => {
            let mut kind = [0u8; 1];
            stream.read_exact(&mut kind).await?;
            kind[0]
        }
    };
    let mut head = [0u8; 6];
    stream.read_exact(&mut head).await?;
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    if !(METHOD..=BODY).contains(&kind) || size > max {
        return Err(Refusal::Other(
            "the peer does not speak AMQP 0-9-1 (another service on that port?)".into(),
        ));
    }
    let mut payload = vec![0; size + 1];
    stream.read_exact(&mut payload).await?;
    payload.pop();
    Ok(Frame {
        kind,
        channel: u16::from_be_bytes([head[0], head[1]]),
        payload,
    })
}

/// The largest frame a handshake reads: RabbitMQ's `connection.start` is a few KiB.
const HANDSHAKE_FRAME_MAX: usize = 1 << 20;

/// After the protocol header was sent and the `connection.start` frame's type byte
/// `first` read: logs in to `uri`'s vhost. The frame size the broker allows.
pub(crate) async fn handshake(
    stream: &mut (impl Io + ?Sized),
    first: u8,
    uri: &AMQPUri,
) -> Result<usize, Refusal> {
    let start = read_frame(stream, Some(first), HANDSHAKE_FRAME_MAX).await?;
    expect(&start, (10, 10), "connection.start")?;
    let user = &uri.authority.userinfo;
    let mut start_ok = method(10, 11);
    // Without this capability RabbitMQ answers a refused login by closing the socket.
    let capability = b"\x1cauthentication_failure_closet\x01";
    let mut capabilities = b"\x0ccapabilitiesF".to_vec();
    capabilities.extend_from_slice(&u32::try_from(capability.len()).unwrap_or(0).to_be_bytes());
    capabilities.extend_from_slice(capability);
    start_ok.extend_from_slice(&u32::try_from(capabilities.len()).unwrap_or(0).to_be_bytes());
    start_ok.extend_from_slice(&capabilities);
    short_string(&mut start_ok, "PLAIN");
    let response = format!("\0{}\0{}", user.username, user.password);
    start_ok.extend_from_slice(&u32::try_from(response.len()).unwrap_or(0).to_be_bytes());
    start_ok.extend_from_slice(response.as_bytes());
    short_string(&mut start_ok, "en_US");
    send(stream, 0, &start_ok).await?;

    let tune = read_frame(stream, None, HANDSHAKE_FRAME_MAX).await?;
    if tune.is_close() {
        return Err(closed(
            &tune,
            ACCESS_REFUSED,
            "the broker refused the login",
        ));
    }
    expect(&tune, (10, 30), "connection.tune")?;
    let frame_max = tune
        .payload
        .get(6..10)
        .map_or(0, |m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
    let mut tune_ok = method(10, 31);
    tune_ok.extend_from_slice(tune.payload.get(4..10).unwrap_or(&[0; 6]));
    tune_ok.extend_from_slice(&0u16.to_be_bytes()); // no heartbeat
    send(stream, 0, &tune_ok).await?;
    let mut open = method(10, 40);
    short_string(&mut open, &uri.vhost);
    short_string(&mut open, "");
    open.push(0);
    send(stream, 0, &open).await?;

    let opened = read_frame(stream, None, HANDSHAKE_FRAME_MAX).await?;
    if opened.is_close() {
        let _ = send(stream, 0, &method(10, 51)).await;
        let refused = format!("the broker refused the virtual host {:?}", uri.vhost);
        return Err(closed(&opened, NOT_ALLOWED, &refused));
    }
    expect(&opened, (10, 41), "connection.open-ok")?;
    // 0 means no limit; RabbitMQ's default is 128 KiB.
    Ok(match frame_max {
        0 => HANDSHAKE_FRAME_MAX,
        max => max as usize,
    })
}

/// Closes the connection cleanly, waiting for the broker's `close-ok` (frames of
/// channels still open before it are skipped); the socket goes either way.
pub(crate) async fn close(stream: &mut (impl Io + ?Sized), why: &str, frame_max: usize) {
    let mut close = method(10, 50);
    close.extend_from_slice(&200u16.to_be_bytes());
    short_string(&mut close, why);
    close.extend_from_slice(&[0; 4]);
    if send(stream, 0, &close).await.is_err() {
        return;
    }
    while let Ok(frame) = read_frame(stream, None, frame_max).await {
        if frame.channel == 0 {
            return;
        }
    }
}

/// RabbitMQ's reply to a refused login.
pub(crate) const ACCESS_REFUSED: u16 = 403;
/// RabbitMQ's reply to an unknown virtual host, or one the user may not use.
pub(crate) const NOT_ALLOWED: u16 = 530;

/// The reply code and text of a `close` method (of a connection or a channel).
pub(crate) fn close_reason(close: &Frame) -> (u16, String) {
    let payload = &close.payload;
    let code = payload
        .get(4..6)
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    let len = payload.get(6).copied().unwrap_or(0) as usize;
    let text = String::from_utf8_lossy(payload.get(7..7 + len).unwrap_or_default());
    (code, text.into_owned())
}

/// The broker's `connection.close` during the handshake: `refusal` (the code of a
/// final answer, `refused` its words) or a broker that is not ready. RabbitMQ also
/// closes a handshake while it starts or stops, with 541 "vhost '/' is down" or 320
/// CONNECTION_FORCED: connecting again a moment later works, so that is no refusal
/// (a subscription that took it for one would stop resuming).
pub(crate) fn closed(close: &Frame, refusal: u16, refused: &str) -> Refusal {
    let (code, text) = close_reason(close);
    match code == refusal {
        true => Refusal::Auth(format!("{refused}: {text} ({code})")),
        false => Refusal::Other(format!(
            "the broker closed the connection during the handshake: {text} ({code}); it \
             may be starting or stopping"
        )),
    }
}

pub(crate) fn expect(frame: &Frame, wanted: (u16, u16), what: &str) -> Result<(), Refusal> {
    match frame.ids() == wanted {
        true => Ok(()),
        false => Err(Refusal::Other(format!(
            "the broker answered with {:?} where {what} was due",
            frame.ids()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `connection.close` frame with `code` and `text`.
    fn close(code: u16, text: &str) -> Frame {
        let mut payload = method(10, 50);
        payload.extend_from_slice(&code.to_be_bytes());
        short_string(&mut payload, text);
        payload.extend_from_slice(&[0; 4]);
        Frame {
            kind: METHOD,
            channel: 0,
            payload,
        }
    }

    #[test]
    fn a_refused_login_or_vhost_is_final() {
        let login = closed(
            &close(403, "ACCESS_REFUSED - Login was refused"),
            ACCESS_REFUSED,
            "login",
        );
        assert!(matches!(login, Refusal::Auth(ref m) if m.contains("Login was refused (403)")));
        let vhost = closed(
            &close(530, "NOT_ALLOWED - vhost nope not found"),
            NOT_ALLOWED,
            "vhost",
        );
        assert!(matches!(vhost, Refusal::Auth(ref m) if m.contains("vhost nope not found (530)")));
    }

    #[test]
    fn a_broker_that_starts_or_stops_is_no_refusal() {
        let down =
            "INTERNAL_ERROR - access to vhost '/' refused for user 'guest': vhost '/' is down";
        let starting = closed(&close(541, down), NOT_ALLOWED, "vhost");
        assert!(matches!(starting, Refusal::Other(ref m) if m.contains("is down (541)")));
        let stopping = closed(
            &close(320, "CONNECTION_FORCED - shutdown"),
            ACCESS_REFUSED,
            "login",
        );
        assert!(matches!(stopping, Refusal::Other(ref m) if m.contains("starting or stopping")));
    }
}

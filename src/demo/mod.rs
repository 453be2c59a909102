//! The embedded demo console server: a small RFB 3.8 server (RFC 6143) that draws a
//! test pattern and asks for a VNC password, so `consolegate demo` works with nothing
//! installed and a person opening noVNC sees a live picture.
//!
//! It speaks just enough RFB for real clients: versions 3.3, 3.7 and 3.8, security
//! types None and VNC Authentication, true-colour pixel formats of 8, 16 or 32 bits,
//! and the Raw encoding only (every client must support it). The picture shows a
//! clock, the keys typed (named keys and combinations such as `[Ctrl+Alt+Del]`,
//! `[Tab]`, `[F5]`, and non-ASCII characters), the pointer position and the last
//! clipboard text received, so the person (and the browser tests) can see exactly
//! what input travelled through the proxy.
//!
//! Everything a client sends is untrusted: reads are bounded, a malformed or unknown
//! message ends that client's connection with an `io::Error`, and the accept loop
//! carries on serving everyone else.

pub mod engine;
mod font;
mod keysym;
mod picture;
mod pixel;

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;
use rand_core::{OsRng, RngCore};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tracing::{debug, Instrument};

use picture::{Rect, Screen, HEIGHT, WIDTH};
use pixel::{PixelFormat, PixelFormatError};

/// The desktop name sent in ServerInit; noVNC shows it as the page title.
const DESKTOP_NAME: &str = "consolegate demo";

/// Clients served at once. The demo serves one person; the cap only stops a runaway
/// script from exhausting memory (each client holds two 1.9 MB framebuffers).
const MAX_CLIENTS: usize = 32;

/// How long a client may take from connecting to finishing ClientInit. Generous,
/// because noVNC only prompts for the password once it has the challenge, and a
/// person is typing it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest ClientCutText we read; a longer one closes the client. Only its start
/// is kept, for the clipboard line.
const MAX_CUT_TEXT: u32 = 1 << 20;

/// Client messages parsed but not yet acted on; bounded so a client that floods us
/// with pointer events while its updates are being written is slowed by TCP instead.
const MESSAGE_QUEUE: usize = 64;

/// A way a client broke the protocol. Returned to callers as `io::ErrorKind::InvalidData`
/// (or `PermissionDenied` for a wrong password) with this as the source.
#[derive(Debug, Error)]
enum ProtocolError {
    #[error("client sent a malformed protocol version {0:?}")]
    BadVersion(String),
    #[error("client chose security type {0}, which was not offered")]
    SecurityTypeNotOffered(u8),
    #[error("wrong VNC password")]
    WrongPassword,
    #[error("client took longer than {0:?} to complete the handshake")]
    HandshakeTimeout(Duration),
    #[error("unknown client message type {0}")]
    UnknownMessage(u8),
    #[error("unsupported pixel format: {0}")]
    PixelFormat(PixelFormatError),
    #[error("client cut text of {0} bytes exceeds the 1 MiB limit")]
    CutTextTooLong(u32),
}

// Not `#[from]`: the message carries the cause, so it is not also `source()`.
impl From<PixelFormatError> for ProtocolError {
    fn from(e: PixelFormatError) -> Self {
        ProtocolError::PixelFormat(e)
    }
}

impl From<ProtocolError> for io::Error {
    fn from(err: ProtocolError) -> Self {
        let kind = match err {
            ProtocolError::WrongPassword => io::ErrorKind::PermissionDenied,
            ProtocolError::HandshakeTimeout(_) => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

/// Serves RFB clients from `listener` until the task is dropped, each in its own task.
///
/// With a `password`, clients must pass VNC Authentication (only its first 8 bytes
/// count, as in every VNC server); without one, security type None is offered.
/// A client's errors are logged at debug level and never end the loop.
pub async fn run_rfb_server(listener: TcpListener, password: Option<String>) -> io::Result<()> {
    let password: Option<Arc<str>> = password.map(Arc::from);
    let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut listener = crate::util::accept::Acceptor::new(listener, "demo console server");
    loop {
        // Take the permit before accepting, so the cap holds back new connections in
        // the kernel's backlog rather than accepting and dropping them.
        let permit = match limit.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed; if it were, there would be nothing to serve.
            Err(_) => return Ok(()),
        };
        let (stream, peer) = listener.accept().await;
        let password = password.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                match serve_rfb_client(stream, password.as_deref()).await {
                    Ok(()) => debug!("client disconnected"),
                    Err(err) => debug!(cause = %err, "client connection ended with an error"),
                }
            }
            .instrument(tracing::debug_span!("rfb_client", %peer)),
        );
    }
}

/// Serves one RFB client until it disconnects or breaks the protocol.
pub async fn serve_rfb_client(stream: TcpStream, password: Option<&str>) -> io::Result<()> {
    // Updates are written whole; don't let Nagle hold back the tail of one.
    stream.set_nodelay(true)?;
    serve(stream, password).await
}

async fn serve<S>(mut stream: S, password: Option<&str>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, password)).await {
        Ok(result) => result?,
        Err(_) => return Err(ProtocolError::HandshakeTimeout(HANDSHAKE_TIMEOUT).into()),
    }
    let (reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(MESSAGE_QUEUE);
    // Reading and answering run side by side: the reader parses messages with plain
    // `read_exact` calls (which must not be cancelled midway), while the session waits
    // on either a message or the clock. Whichever fails first ends both.
    tokio::try_join!(read_messages(reader, tx), Session::new(writer).run(rx))?;
    Ok(())
}

/// The protocol versions we speak; the handshake differs slightly between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V3_3,
    V3_7,
    V3_8,
}

/// Parses the client's 12-byte ProtocolVersion message.
fn parse_version(msg: &[u8; 12]) -> Result<Version, ProtocolError> {
    let bad = || ProtocolError::BadVersion(String::from_utf8_lossy(msg).into_owned());
    let digits = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if &msg[..4] != b"RFB " || msg[7] != b'.' || msg[11] != b'\n' {
        return Err(bad());
    }
    let major = digits(&msg[4..7]).ok_or_else(bad)?;
    let minor = digits(&msg[8..11]).ok_or_else(bad)?;
    match (major, minor) {
        (3, 7) => Ok(Version::V3_7),
        // Later 3.x minors (Apple's 3.889, for one) speak the 3.8 handshake.
        (3, 8..) => Ok(Version::V3_8),
        // RFC 6143 says to treat other 3.x versions as 3.3.
        (3, 3..=6) => Ok(Version::V3_3),
        _ => Err(bad()),
    }
}

const SECURITY_NONE: u8 = 1;
const SECURITY_VNC_AUTH: u8 = 2;

/// Version exchange, security and initialisation, up to and including ServerInit.
async fn handshake<S>(stream: &mut S, password: Option<&str>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    stream.read_exact(&mut version).await?;
    let version = parse_version(&version)?;
    debug!(?version, "client version");

    let offered = if password.is_some() {
        SECURITY_VNC_AUTH
    } else {
        SECURITY_NONE
    };
    if version == Version::V3_3 {
        // 3.3: the server decides and says which type, as a u32.
        stream.write_all(&u32::from(offered).to_be_bytes()).await?;
    } else {
        stream.write_all(&[1, offered]).await?;
        stream.flush().await?;
        let chosen = stream.read_u8().await?;
        if chosen != offered {
            if version == Version::V3_8 {
                security_failed(stream, "security type not offered").await?;
            }
            return Err(ProtocolError::SecurityTypeNotOffered(chosen).into());
        }
    }

    if let Some(password) = password {
        let mut challenge = [0u8; 16];
        OsRng.fill_bytes(&mut challenge);
        stream.write_all(&challenge).await?;
        stream.flush().await?;
        let mut response = [0u8; 16];
        stream.read_exact(&mut response).await?;
        if !constant_time_eq(&response, &vnc_auth_response(password, &challenge)) {
            if version == Version::V3_8 {
                security_failed(stream, "wrong password").await?;
            } else {
                stream.write_all(&1u32.to_be_bytes()).await?;
                stream.flush().await?;
            }
            return Err(ProtocolError::WrongPassword.into());
        }
        stream.write_all(&0u32.to_be_bytes()).await?;
    } else if version == Version::V3_8 {
        // Only 3.8 sends a SecurityResult after type None.
        stream.write_all(&0u32.to_be_bytes()).await?;
    }
    stream.flush().await?;

    // ClientInit's shared flag doesn't matter: every client gets its own screen.
    let _shared = stream.read_u8().await?;

    let mut init = Vec::with_capacity(24 + DESKTOP_NAME.len());
    init.extend_from_slice(&WIDTH.to_be_bytes());
    init.extend_from_slice(&HEIGHT.to_be_bytes());
    init.extend_from_slice(&PixelFormat::SERVER_DEFAULT.to_bytes());
    init.extend_from_slice(&(DESKTOP_NAME.len() as u32).to_be_bytes());
    init.extend_from_slice(DESKTOP_NAME.as_bytes());
    stream.write_all(&init).await?;
    stream.flush().await
}

/// Sends a failed SecurityResult with a reason string (RFB 3.8 only).
async fn security_failed<S: AsyncWrite + Unpin>(stream: &mut S, reason: &str) -> io::Result<()> {
    let mut msg = Vec::with_capacity(8 + reason.len());
    msg.extend_from_slice(&1u32.to_be_bytes());
    msg.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    msg.extend_from_slice(reason.as_bytes());
    stream.write_all(&msg).await?;
    stream.flush().await
}

/// The response a client holding `password` gives to `challenge` under VNC
/// Authentication: the challenge DES-encrypted (two ECB blocks) with the password as
/// key, truncated or zero-padded to 8 bytes and with each byte's bits reversed, a quirk
/// inherited from the original VNC's DES code that every implementation copies.
fn vnc_auth_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.as_bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// Compares without stopping at the first difference, so timing says nothing about
/// how much of a guess was right.
fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A client-to-server message, parsed and with anything we ignore already discarded.
#[derive(Debug)]
enum ClientMessage {
    SetPixelFormat(PixelFormat),
    UpdateRequest {
        incremental: bool,
        rect: Rect,
    },
    Key {
        down: bool,
        keysym: u32,
    },
    Pointer {
        buttons: u8,
        x: u16,
        y: u16,
    },
    /// ClientCutText: the start of the client's clipboard text (Latin-1).
    CutText(Vec<u8>),
}

/// How much of a ClientCutText is kept for display.
const CUT_TEXT_KEPT: u64 = 256;

/// Parses client messages and queues them for the session until the client closes.
async fn read_messages<R>(mut reader: R, tx: mpsc::Sender<ClientMessage>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
{
    while let Some(msg) = read_message(&mut reader).await? {
        if tx.send(msg).await.is_err() {
            // The session has ended; it reports its own error.
            break;
        }
    }
    Ok(())
}

/// Reads one message; `None` when the client closed the connection between messages.
async fn read_message<R>(reader: &mut R) -> io::Result<Option<ClientMessage>>
where
    R: AsyncRead + Unpin,
{
    loop {
        let mut kind = [0u8; 1];
        if reader.read(&mut kind).await? == 0 {
            return Ok(None);
        }
        let msg = match kind[0] {
            0 => {
                let mut body = [0u8; 19];
                reader.read_exact(&mut body).await?;
                let mut format = [0u8; 16];
                format.copy_from_slice(&body[3..]);
                ClientMessage::SetPixelFormat(
                    PixelFormat::from_bytes(&format).map_err(ProtocolError::from)?,
                )
            }
            2 => {
                let _padding = reader.read_u8().await?;
                let count = reader.read_u16().await?;
                // We only ever send Raw, which every client supports, so the list
                // doesn't change anything; read it to stay in step.
                discard(reader, u64::from(count) * 4).await?;
                debug!(count, "client set encodings; using Raw");
                continue;
            }
            3 => {
                let incremental = reader.read_u8().await? != 0;
                let (x, y) = (reader.read_u16().await?, reader.read_u16().await?);
                let (w, h) = (reader.read_u16().await?, reader.read_u16().await?);
                ClientMessage::UpdateRequest {
                    incremental,
                    rect: Rect { x, y, w, h },
                }
            }
            4 => {
                let down = reader.read_u8().await? != 0;
                let _padding = reader.read_u16().await?;
                ClientMessage::Key {
                    down,
                    keysym: reader.read_u32().await?,
                }
            }
            5 => {
                let buttons = reader.read_u8().await?;
                let (x, y) = (reader.read_u16().await?, reader.read_u16().await?);
                ClientMessage::Pointer { buttons, x, y }
            }
            6 => {
                let mut padding = [0u8; 3];
                reader.read_exact(&mut padding).await?;
                let len = reader.read_u32().await?;
                if len > MAX_CUT_TEXT {
                    return Err(ProtocolError::CutTextTooLong(len).into());
                }
                // Keep the start for the clipboard line; read the rest to stay in step.
                let kept = u64::from(len).min(CUT_TEXT_KEPT);
                let mut text = Vec::with_capacity(kept as usize);
                (&mut *reader).take(kept).read_to_end(&mut text).await?;
                if (text.len() as u64) < kept {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                discard(reader, u64::from(len) - kept).await?;
                ClientMessage::CutText(text)
            }
            other => return Err(ProtocolError::UnknownMessage(other).into()),
        };
        return Ok(Some(msg));
    }
}

/// Reads and drops exactly `len` bytes.
async fn discard<R: AsyncRead + Unpin>(reader: &mut R, len: u64) -> io::Result<()> {
    let copied = tokio::io::copy(&mut reader.take(len), &mut tokio::io::sink()).await?;
    if copied < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The answering half of a connection: owns the screen and the writer.
struct Session<W> {
    writer: W,
    /// How the client wants pixels; starts as what ServerInit announced.
    format: PixelFormat,
    screen: Screen,
    /// The region of an incremental request not yet answered, because nothing in it
    /// has changed yet. Answered as soon as something does (input, the clock).
    pending: Option<Rect>,
    /// When the session started, for the uptime on the clock line.
    started: Instant,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    fn new(writer: W) -> Self {
        let started = Instant::now();
        Session {
            writer,
            format: PixelFormat::SERVER_DEFAULT,
            screen: Screen::new(clock_text(started)),
            pending: None,
            started,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<ClientMessage>) -> io::Result<()> {
        let mut next_tick = next_second();
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg).await?,
                    None => return Ok(()),
                },
                () = tokio::time::sleep_until(next_tick) => {
                    next_tick = next_second();
                    self.screen.set_clock(clock_text(self.started));
                }
            }
            self.answer_pending().await?;
        }
    }

    async fn handle(&mut self, msg: ClientMessage) -> io::Result<()> {
        match msg {
            ClientMessage::SetPixelFormat(format) => {
                debug!(?format, "client set pixel format");
                self.format = format;
            }
            ClientMessage::UpdateRequest {
                incremental: false,
                rect,
            } => {
                // A full request wants the region now, changed or not.
                let rects: Vec<Rect> = rect.clip().into_iter().collect();
                self.send_update(&rects).await?;
            }
            ClientMessage::UpdateRequest {
                incremental: true,
                rect,
            } => {
                if let Some(rect) = rect.clip() {
                    self.pending = Some(self.pending.map_or(rect, |p| p.union(rect)));
                }
            }
            ClientMessage::Key { down, keysym } => self.screen.key_event(keysym, down),
            ClientMessage::CutText(text) => self.screen.clipboard_received(&text),
            ClientMessage::Pointer { buttons, x, y } => self.screen.pointer_moved(x, y, buttons),
        }
        Ok(())
    }

    /// Sends what changed in the pending region, if anything did.
    async fn answer_pending(&mut self) -> io::Result<()> {
        let Some(region) = self.pending else {
            return Ok(());
        };
        let rects = self.screen.changed_rects(region);
        if !rects.is_empty() {
            self.pending = None;
            self.send_update(&rects).await?;
        }
        Ok(())
    }

    /// Writes one FramebufferUpdate with `rects` in Raw encoding.
    async fn send_update(&mut self, rects: &[Rect]) -> io::Result<()> {
        const RAW: i32 = 0;
        let count =
            u16::try_from(rects.len()).map_err(|_| io::Error::other("too many rectangles"))?;
        let bpp = self.format.bytes_per_pixel();
        let mut msg =
            Vec::with_capacity(4 + rects.iter().map(|r| 12 + r.area() * bpp).sum::<usize>());
        msg.extend_from_slice(&[0, 0]);
        msg.extend_from_slice(&count.to_be_bytes());
        for &rect in rects {
            for v in [rect.x, rect.y, rect.w, rect.h] {
                msg.extend_from_slice(&v.to_be_bytes());
            }
            msg.extend_from_slice(&RAW.to_be_bytes());
            for y in rect.rows() {
                for &rgb in self.screen.row(rect, y) {
                    self.format.encode(rgb, &mut msg);
                }
            }
            self.screen.mark_sent(rect);
        }
        self.writer.write_all(&msg).await?;
        self.writer.flush().await
    }
}

/// The next whole wall-clock second, so the clock's digits change on time.
fn next_second() -> Instant {
    let into_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Instant::now()
        + Duration::from_nanos(u64::from(1_000_000_000 - into_second.min(999_999_999)))
        + Duration::from_millis(5)
}

/// The clock line: UTC wall time (no time-zone data needed) and the session's uptime.
fn clock_text(started: Instant) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC  up {}s",
        day / 3600,
        day / 60 % 60,
        day % 60,
        started.elapsed().as_secs()
    )
}

#[cfg(test)]
mod tests {
    //! A minimal RFB client drives a real server on a loopback port; every test is
    //! bounded by a timeout so a server that hangs fails the test instead of the run.

    use super::*;
    use std::future::Future;
    use std::net::SocketAddr;

    const PASSWORD: &str = "secret";

    /// Fails the test if `fut` takes longer than a few seconds.
    async fn within<T>(fut: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("test timed out")
    }

    async fn start_server(password: Option<&str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(run_rfb_server(listener, password.map(String::from)));
        addr
    }

    struct ServerInit {
        width: u16,
        height: u16,
        format: [u8; 16],
        name: String,
    }

    struct Update {
        rects: Vec<(Rect, Vec<u8>)>,
    }

    /// The test client: just the protocol, with no cleverness to hide server bugs.
    struct Client {
        stream: TcpStream,
        bytes_per_pixel: usize,
    }

    impl Client {
        async fn connect(addr: SocketAddr) -> Client {
            Client {
                stream: TcpStream::connect(addr).await.unwrap(),
                bytes_per_pixel: 4,
            }
        }

        /// Version exchange; returns the server's version string.
        async fn exchange_versions(&mut self, ours: &[u8; 12]) -> [u8; 12] {
            let mut theirs = [0u8; 12];
            self.stream.read_exact(&mut theirs).await.unwrap();
            self.stream.write_all(ours).await.unwrap();
            theirs
        }

        async fn security_types(&mut self) -> Vec<u8> {
            let n = self.stream.read_u8().await.unwrap();
            let mut types = vec![0u8; usize::from(n)];
            self.stream.read_exact(&mut types).await.unwrap();
            types
        }

        async fn answer_challenge(&mut self, password: &str) {
            let mut challenge = [0u8; 16];
            self.stream.read_exact(&mut challenge).await.unwrap();
            let response = vnc_auth_response(password, &challenge);
            self.stream.write_all(&response).await.unwrap();
        }

        /// Reads SecurityResult: 0 on success, else the status and the reason.
        async fn security_result(&mut self) -> Result<(), (u32, String)> {
            match self.stream.read_u32().await.unwrap() {
                0 => Ok(()),
                status => {
                    let len = self.stream.read_u32().await.unwrap();
                    let mut reason = vec![0u8; len as usize];
                    self.stream.read_exact(&mut reason).await.unwrap();
                    Err((status, String::from_utf8(reason).unwrap()))
                }
            }
        }

        async fn init(&mut self) -> ServerInit {
            self.stream.write_all(&[1]).await.unwrap();
            let width = self.stream.read_u16().await.unwrap();
            let height = self.stream.read_u16().await.unwrap();
            let mut format = [0u8; 16];
            self.stream.read_exact(&mut format).await.unwrap();
            let len = self.stream.read_u32().await.unwrap();
            let mut name = vec![0u8; len as usize];
            self.stream.read_exact(&mut name).await.unwrap();
            ServerInit {
                width,
                height,
                format,
                name: String::from_utf8(name).unwrap(),
            }
        }

        /// The whole 3.8 handshake, with VNC Authentication if `password` is given.
        async fn handshake(addr: SocketAddr, password: Option<&str>) -> (Client, ServerInit) {
            let mut client = Client::connect(addr).await;
            client.exchange_versions(b"RFB 003.008\n").await;
            let types = client.security_types().await;
            match password {
                Some(password) => {
                    assert_eq!(types, [SECURITY_VNC_AUTH]);
                    client.stream.write_all(&[SECURITY_VNC_AUTH]).await.unwrap();
                    client.answer_challenge(password).await;
                }
                None => {
                    assert_eq!(types, [SECURITY_NONE]);
                    client.stream.write_all(&[SECURITY_NONE]).await.unwrap();
                }
            }
            client
                .security_result()
                .await
                .expect("security handshake failed");
            let init = client.init().await;
            (client, init)
        }

        async fn request_update(&mut self, incremental: bool, rect: Rect) {
            let mut msg = vec![3, u8::from(incremental)];
            for v in [rect.x, rect.y, rect.w, rect.h] {
                msg.extend_from_slice(&v.to_be_bytes());
            }
            self.stream.write_all(&msg).await.unwrap();
        }

        async fn read_update(&mut self) -> Update {
            assert_eq!(
                self.stream.read_u8().await.unwrap(),
                0,
                "message type FramebufferUpdate"
            );
            let _padding = self.stream.read_u8().await.unwrap();
            let count = self.stream.read_u16().await.unwrap();
            let mut rects = Vec::new();
            for _ in 0..count {
                let x = self.stream.read_u16().await.unwrap();
                let y = self.stream.read_u16().await.unwrap();
                let w = self.stream.read_u16().await.unwrap();
                let h = self.stream.read_u16().await.unwrap();
                assert_eq!(self.stream.read_i32().await.unwrap(), 0, "Raw encoding");
                let rect = Rect { x, y, w, h };
                let mut pixels = vec![0u8; rect.area() * self.bytes_per_pixel];
                self.stream.read_exact(&mut pixels).await.unwrap();
                rects.push((rect, pixels));
            }
            Update { rects }
        }

        async fn set_pixel_format(&mut self, format: [u8; 16]) {
            let mut msg = vec![0, 0, 0, 0];
            msg.extend_from_slice(&format);
            self.stream.write_all(&msg).await.unwrap();
            self.bytes_per_pixel = usize::from(format[0] / 8);
        }

        async fn key(&mut self, down: bool, keysym: u32) {
            let mut msg = vec![4, u8::from(down), 0, 0];
            msg.extend_from_slice(&keysym.to_be_bytes());
            self.stream.write_all(&msg).await.unwrap();
        }

        /// True if the server closes the connection (EOF or reset) within the timeout.
        async fn is_closed_by_server(&mut self) -> bool {
            let mut sink = [0u8; 4096];
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        }
    }

    #[test]
    fn vnc_authentication_matches_an_independent_implementation() {
        // Expected values computed with Python's `cryptography` DES, bits reversed by hand.
        let challenge: [u8; 16] = std::array::from_fn(|i| i as u8);
        let hex = |r: [u8; 16]| r.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(vnc_auth_response("secret", &challenge)),
            "ee22539f33a5983ec12f9c2edbc995dd"
        );
        // Only the first eight bytes of a password count.
        assert_eq!(
            hex(vnc_auth_response("longpassword", &challenge)),
            "5931256585fd62106d317e09fc963baf"
        );
        assert_eq!(
            vnc_auth_response("longpass", &challenge),
            vnc_auth_response("longpassword", &challenge)
        );
    }

    #[test]
    fn protocol_versions_are_parsed_leniently_but_safely() {
        assert_eq!(parse_version(b"RFB 003.008\n").unwrap(), Version::V3_8);
        assert_eq!(parse_version(b"RFB 003.889\n").unwrap(), Version::V3_8);
        assert_eq!(parse_version(b"RFB 003.007\n").unwrap(), Version::V3_7);
        assert_eq!(parse_version(b"RFB 003.003\n").unwrap(), Version::V3_3);
        assert_eq!(parse_version(b"RFB 003.005\n").unwrap(), Version::V3_3);
        for bad in [
            b"RFB 004.000\n",
            b"RFB 003.002\n",
            b"RFB 0x3.008\n",
            b"GET / HTTP/1",
            b"RFB 003.008 ",
        ] {
            assert!(
                parse_version(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn correct_password_is_accepted_and_server_init_describes_the_demo() {
        within(async {
            let addr = start_server(Some(PASSWORD)).await;
            let (_client, init) = Client::handshake(addr, Some(PASSWORD)).await;
            assert_eq!((init.width, init.height), (WIDTH, HEIGHT));
            assert_eq!(init.name, "consolegate demo");
            assert_eq!(init.format, PixelFormat::SERVER_DEFAULT.to_bytes());
        })
        .await;
    }

    #[tokio::test]
    async fn server_announces_version_3_8() {
        within(async {
            let addr = start_server(None).await;
            let mut client = Client::connect(addr).await;
            assert_eq!(
                &client.exchange_versions(b"RFB 003.008\n").await,
                b"RFB 003.008\n"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn wrong_password_fails_with_a_reason_and_closes() {
        within(async {
            let addr = start_server(Some(PASSWORD)).await;
            let mut client = Client::connect(addr).await;
            client.exchange_versions(b"RFB 003.008\n").await;
            assert_eq!(client.security_types().await, [SECURITY_VNC_AUTH]);
            client.stream.write_all(&[SECURITY_VNC_AUTH]).await.unwrap();
            client.answer_challenge("guess").await;
            assert_eq!(
                client.security_result().await,
                Err((1, "wrong password".to_string()))
            );
            assert!(client.is_closed_by_server().await);
        })
        .await;
    }

    #[tokio::test]
    async fn without_a_password_security_type_none_is_offered() {
        within(async {
            let addr = start_server(None).await;
            let (_client, init) = Client::handshake(addr, None).await;
            assert_eq!(init.name, "consolegate demo");
        })
        .await;
    }

    #[tokio::test]
    async fn choosing_a_security_type_not_offered_is_refused_with_a_reason() {
        within(async {
            let addr = start_server(Some(PASSWORD)).await;
            let mut client = Client::connect(addr).await;
            client.exchange_versions(b"RFB 003.008\n").await;
            client.security_types().await;
            client.stream.write_all(&[SECURITY_NONE]).await.unwrap();
            let (status, _reason) = client.security_result().await.unwrap_err();
            assert_eq!(status, 1);
            assert!(client.is_closed_by_server().await);
        })
        .await;
    }

    #[tokio::test]
    async fn version_3_7_clients_get_no_security_result_after_none() {
        within(async {
            let addr = start_server(None).await;
            let mut client = Client::connect(addr).await;
            client.exchange_versions(b"RFB 003.007\n").await;
            assert_eq!(client.security_types().await, [SECURITY_NONE]);
            client.stream.write_all(&[SECURITY_NONE]).await.unwrap();
            // Straight to ClientInit / ServerInit.
            assert_eq!(client.init().await.width, WIDTH);
        })
        .await;
    }

    #[tokio::test]
    async fn version_3_3_clients_are_told_the_security_type() {
        within(async {
            let addr = start_server(Some(PASSWORD)).await;
            let mut client = Client::connect(addr).await;
            client.exchange_versions(b"RFB 003.003\n").await;
            assert_eq!(
                client.stream.read_u32().await.unwrap(),
                u32::from(SECURITY_VNC_AUTH)
            );
            client.answer_challenge(PASSWORD).await;
            assert_eq!(client.stream.read_u32().await.unwrap(), 0);
            assert_eq!(client.init().await.height, HEIGHT);
        })
        .await;
    }

    #[tokio::test]
    async fn a_full_update_request_returns_the_whole_screen_in_raw() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            client
                .request_update(
                    false,
                    Rect {
                        x: 0,
                        y: 0,
                        w: WIDTH,
                        h: HEIGHT,
                    },
                )
                .await;
            let update = client.read_update().await;
            assert_eq!(update.rects.len(), 1);
            let (rect, pixels) = &update.rects[0];
            assert_eq!(
                *rect,
                Rect {
                    x: 0,
                    y: 0,
                    w: WIDTH,
                    h: HEIGHT
                }
            );
            assert_eq!(pixels.len(), 800 * 600 * 4);
            // The top-left pixel is the white border, in the default xRGB little-endian
            // (the unused byte set: see PixelFormat::encode).
            assert_eq!(pixels[..4], [0xff, 0xff, 0xff, 0xff]);
        })
        .await;
    }

    #[tokio::test]
    async fn an_update_request_beyond_the_screen_is_clipped() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            client
                .request_update(
                    false,
                    Rect {
                        x: 790,
                        y: 590,
                        w: 1000,
                        h: 1000,
                    },
                )
                .await;
            let update = client.read_update().await;
            assert_eq!(update.rects.len(), 1);
            assert_eq!(
                update.rects[0].0,
                Rect {
                    x: 790,
                    y: 590,
                    w: 10,
                    h: 10
                }
            );
        })
        .await;
    }

    #[tokio::test]
    async fn set_pixel_format_to_16_bits_sends_two_bytes_per_pixel() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            // RGB565, big-endian.
            client
                .set_pixel_format([16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0])
                .await;
            client
                .request_update(
                    false,
                    Rect {
                        x: 0,
                        y: 0,
                        w: WIDTH,
                        h: HEIGHT,
                    },
                )
                .await;
            let update = client.read_update().await;
            assert_eq!(update.rects[0].1.len(), 800 * 600 * 2);
            assert_eq!(update.rects[0].1[..2], [0xff, 0xff], "white border");
        })
        .await;
    }

    #[tokio::test]
    async fn a_key_press_shows_up_in_the_next_update() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            client
                .request_update(
                    false,
                    Rect {
                        x: 0,
                        y: 0,
                        w: WIDTH,
                        h: HEIGHT,
                    },
                )
                .await;
            client.read_update().await;

            client.key(true, u32::from(b'q')).await;
            client.key(false, u32::from(b'q')).await;
            client
                .request_update(
                    true,
                    Rect {
                        x: 0,
                        y: 0,
                        w: WIDTH,
                        h: HEIGHT,
                    },
                )
                .await;
            let update = client.read_update().await;
            // Only small regions changed, and one of them is the keys line. (The
            // clock may have ticked too.)
            let total: usize = update.rects.iter().map(|(r, _)| r.area()).sum();
            assert!(
                total < usize::from(WIDTH) * 100,
                "{total} pixels is not a small update"
            );
            assert!(update
                .rects
                .iter()
                .any(|(r, _)| r.rows().contains(&(picture::KEYS_Y + 1))));
        })
        .await;
    }

    #[tokio::test]
    async fn an_incremental_request_with_no_change_waits_for_the_clock() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            client
                .request_update(
                    false,
                    Rect {
                        x: 0,
                        y: 0,
                        w: WIDTH,
                        h: HEIGHT,
                    },
                )
                .await;
            client.read_update().await;
            // Within about a second the clock ticks and only its line is sent.
            client
                .request_update(
                    true,
                    Rect {
                        x: 0,
                        y: 0,
                        w: WIDTH,
                        h: HEIGHT,
                    },
                )
                .await;
            let update = client.read_update().await;
            for (rect, _) in &update.rects {
                assert!(
                    rect.rows().start <= picture::CLOCK_Y + 28
                        && rect.rows().end > picture::CLOCK_Y,
                    "{rect:?}"
                );
            }
        })
        .await;
    }

    #[tokio::test]
    async fn garbage_after_the_handshake_closes_the_connection() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            client
                .stream
                .write_all(b"\xffGET / HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            assert!(client.is_closed_by_server().await);
            // The server is still there for the next client.
            Client::handshake(addr, None).await;
        })
        .await;
    }

    #[tokio::test]
    async fn oversized_cut_text_closes_the_connection() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            let mut msg = vec![6, 0, 0, 0];
            msg.extend_from_slice(&(MAX_CUT_TEXT + 1).to_be_bytes());
            client.stream.write_all(&msg).await.unwrap();
            assert!(client.is_closed_by_server().await);
        })
        .await;
    }

    #[tokio::test]
    async fn small_cut_text_and_set_encodings_are_read_in_step() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            let mut msg = vec![6, 0, 0, 0, 0, 0, 0, 5];
            msg.extend_from_slice(b"hello");
            // SetEncodings: Tight, CopyRect, Raw, DesktopSize.
            msg.extend_from_slice(&[2, 0, 0, 4]);
            for enc in [7i32, 1, 0, -223] {
                msg.extend_from_slice(&enc.to_be_bytes());
            }
            client.stream.write_all(&msg).await.unwrap();
            client
                .request_update(
                    false,
                    Rect {
                        x: 0,
                        y: 0,
                        w: 8,
                        h: 8,
                    },
                )
                .await;
            assert_eq!(client.read_update().await.rects[0].1.len(), 8 * 8 * 4);
        })
        .await;
    }

    #[tokio::test]
    async fn named_keys_and_clipboard_text_change_only_their_lines() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            let full = Rect {
                x: 0,
                y: 0,
                w: WIDTH,
                h: HEIGHT,
            };
            client.request_update(false, full).await;
            client.read_update().await;

            // Ctrl+Alt+Del, then clipboard text (Latin-1, "Grüße").
            for (down, keysym) in [
                (true, 0xffe3),
                (true, 0xffe9),
                (true, 0xffff),
                (false, 0xffff),
                (false, 0xffe9),
                (false, 0xffe3),
            ] {
                client.key(down, keysym).await;
            }
            let mut msg = vec![6, 0, 0, 0, 0, 0, 0, 5];
            msg.extend_from_slice(b"Gr\xfc\xdfe");
            client.stream.write_all(&msg).await.unwrap();

            // Both changes arrive; each rectangle lies in the keys, clipboard or
            // clock lines (the clock may tick meanwhile).
            let mut rows = Vec::new();
            while !(rows.contains(&(picture::KEYS_Y + 1))
                && rows.contains(&(picture::CLIPBOARD_Y + 1)))
            {
                client.request_update(true, full).await;
                for (rect, _) in client.read_update().await.rects {
                    assert!(
                        rect.rows().start + 16 > picture::CLOCK_Y && rect.rows().end <= 560,
                        "{rect:?} is outside the live lines"
                    );
                    rows.extend(rect.rows());
                }
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_colour_map_pixel_format_closes_the_connection() {
        within(async {
            let addr = start_server(None).await;
            let (mut client, _) = Client::handshake(addr, None).await;
            client
                .set_pixel_format([8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .await;
            assert!(client.is_closed_by_server().await);
        })
        .await;
    }

    #[tokio::test]
    async fn a_truncated_handshake_does_not_stop_the_next_client() {
        within(async {
            let addr = start_server(Some(PASSWORD)).await;
            // One client stalls midway through its version, another hangs up midway.
            let mut stalled = Client::connect(addr).await;
            stalled.stream.write_all(b"RFB 003").await.unwrap();
            let mut quitter = Client::connect(addr).await;
            quitter.exchange_versions(b"RFB 003.008\n").await;
            quitter
                .stream
                .write_all(&[SECURITY_VNC_AUTH, 1, 2, 3])
                .await
                .unwrap();
            drop(quitter);

            let (_client, init) = Client::handshake(addr, Some(PASSWORD)).await;
            assert_eq!(init.name, "consolegate demo");
            drop(stalled);
        })
        .await;
    }
}

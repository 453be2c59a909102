//! The relay: WebSocket (browser) ⇄ TCP (console server), both directions at once.
//!
//! Works on the raw upgraded connection with its own RFC 6455 framing ([`frame`]) so
//! that the down direction reads console bytes into its buffer *behind* room for a frame
//! header, writes the header in front and sends the frame with one write and no copy;
//! the up direction unmasks client payloads in place, a `u64` at a time, and writes them
//! to the console server straight from the read buffer.
//!
//! Design, in short:
//! - **One task, one hand-written poll loop** ([`Session::poll_io`]) drives the four
//!   I/O operations (client read/write, target read/write). Nothing is split, so there
//!   is no `Arc`, lock or channel, and both directions share one writer to the browser
//!   without coordination: control frames (pong, ping, close) slip in between data
//!   frames. Timers and the stop signal live in a `select!` around that loop.
//! - **Backpressure by construction**: the target is read only when the previous
//!   frame is fully written to the browser, and the browser is read only when the
//!   previous payload is fully written to the target. At most one buffer per direction
//!   is in flight, so a slow side never makes the proxy read more than that.
//! - **Memory that follows the load** ([`buffer`]): a session starts with no buffers
//!   and frees them again after [`RELEASE_AFTER`] without reads, so an idle session is
//!   just its ~1.5 KiB state. Without a buffer, reads go into a 2 KiB stack probe: a
//!   small read (a banner, a pong, a keystroke) is framed and written from the stack
//!   and never allocates; a full probe (a burst starting) or a write that cannot finish
//!   allocates a buffer and moves those bytes into it once. Buffers start at 64 KiB and
//!   grow only while reads keep filling them; each is its own memory mapping, so what a
//!   quiet session frees goes back to the kernel instead of staying in the allocator.
//! - **Close codes**: every end has a [`CloseReason`] with its code; 1005, 1006 and
//!   1015 never go on the wire. Closing is bounded by [`CLOSE_WAIT`].

mod buffer;
mod frame;
mod stats;

use buffer::{Buffer, Sizer};
use frame::{ControlFrame, Item, Parser, MAX_HEADER, OP_BINARY, OP_PING, OP_PONG};
pub use stats::SessionStats;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long closing may take: flushing what is pending, the close frame, and waiting
/// for the browser's close answer.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Extra time to shut the target down after closing (TLS targets send close_notify).
const SHUTDOWN_WAIT: Duration = Duration::from_millis(250);
/// Buffers are freed after this long without a read on either side: long enough that a
/// busy session keeps them, short enough that idle sessions hold almost nothing.
const RELEASE_AFTER: Duration = Duration::from_millis(500);
/// Stack probe used to wait for data while a direction has no buffer.
const PROBE: usize = 2048;
/// Smallest buffer accepted: it must hold a client frame header (14 bytes) and more.
const MIN_BUFFER: usize = 1024;
/// Rounds of I/O per poll before yielding, so one busy session cannot hog a worker
/// even on streams that do not take part in tokio's cooperative budget.
const MAX_ROUNDS: usize = 32;

/// Limits and timers of one session.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Heartbeat ping to the browser; `None` disables it. A browser that leaves two
    /// pings in a row unanswered is considered gone ([`CloseReason::PingTimeout`]).
    pub ping_interval: Option<Duration>,
    /// End the session when no payload moved either way for this long. Console
    /// bytes the browser does not take count as not moving: a browser that stops
    /// reading for this long ends the session even if it keeps sending (the proxy
    /// has stopped reading the console by then, so the session is stuck).
    pub idle_timeout: Option<Duration>,
    /// End the session after this long whatever happens.
    pub max_duration: Option<Duration>,
    /// Largest WebSocket message accepted from the browser (close 1009 above).
    pub max_message: usize,
    /// Largest read buffer per direction (at least 1 KiB is used). Buffers start at
    /// 64 KiB (or this, when smaller) and grow to it only while reads keep filling
    /// them; allocated only while data moves and released when the session goes quiet,
    /// so this size costs nothing idle.
    pub buffer_size: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: None,
            max_duration: None,
            max_message: 16 << 20,
            // Framebuffer bursts move in fewer, larger frames: on this project's 2-core
            // benchmark, down on one stream went from 2,021 MiB/s (64 KiB) to 2,462
            // (256 KiB); 1 MiB was slower again, 2,156 (bench/README.md).
            buffer_size: 256 << 10,
        }
    }
}

/// What the proxy asks of a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// The proxy is shutting down: close 1001.
    Drain,
    /// An operator ended the session: close 1008 with this reason.
    Kill(String),
}

/// Why a session ended.
///
/// `Display` is a short sentence used both in the log line and as the close frame's
/// reason (cut to 123 bytes on a character boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The console server closed its connection (EOF): 1000, after all its bytes.
    TargetClosed,
    /// The browser sent a close frame; its code (if any) is echoed.
    ClientClosed { code: Option<u16>, reason: String },
    /// The browser's connection ended without a close frame (EOF, reset).
    /// Nothing can be sent; [`CloseReason::code`] reports 1006.
    ClientVanished,
    /// The browser sent a text frame; the relay carries binary only: 1003.
    TextFrame,
    /// The browser broke RFC 6455 (unmasked frame, reserved bits, bad opcode,
    /// bad control frame, bad continuation): 1002.
    ProtocolError(String),
    /// A browser message exceeded `max_message`: 1009.
    MessageTooBig { limit: usize },
    /// No payload moved for `idle_timeout`: 1000, an ordinary end rather than a
    /// violation (the browser may simply reconnect).
    IdleTimeout,
    /// The session reached `max_duration`: 1008, a policy limit.
    MaxDuration,
    /// The proxy is shutting down: 1001.
    Drain,
    /// An operator ended the session: 1008 with the operator's reason.
    Killed(String),
    /// Reading from or writing to the console server failed: 1011.
    TargetError(String),
    /// Reading from or writing to the browser failed (other than a reset): nothing
    /// can be sent; [`CloseReason::code`] reports 1006.
    ClientError(String),
    /// The browser left heartbeat pings unanswered for about two intervals: 1001.
    PingTimeout,
    /// A layer between the relay and the console server ended the session with its
    /// own code and reason ([`EndSession`]: a view-only violation, a recording failure).
    Ended { code: u16, reason: String },
}

/// The error a stream layer between the relay and the console server (see
/// `crate::tap`) returns, inside an `io::Error`, to end the session with its own close
/// code and reason instead of as a console server failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct EndSession {
    pub code: u16,
    pub reason: String,
}

impl EndSession {
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

impl CloseReason {
    /// The WebSocket close code sent (or that would have been sent) to the browser.
    /// For [`ClientVanished`](Self::ClientVanished) and [`ClientError`](Self::ClientError)
    /// it is 1006, which by RFC 6455 is only ever reported, never sent.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::TargetClosed | CloseReason::IdleTimeout => 1000,
            CloseReason::ClientClosed { code, .. } => code.unwrap_or(1000),
            CloseReason::ClientVanished | CloseReason::ClientError(_) => 1006,
            CloseReason::TextFrame => 1003,
            CloseReason::ProtocolError(_) => 1002,
            CloseReason::MessageTooBig { .. } => 1009,
            CloseReason::MaxDuration | CloseReason::Killed(_) => 1008,
            CloseReason::Drain | CloseReason::PingTimeout => 1001,
            CloseReason::TargetError(_) => 1011,
            CloseReason::Ended { code, .. } => *code,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::TargetClosed => f.write_str("console server closed the connection"),
            CloseReason::ClientClosed { code: None, .. } => {
                f.write_str("browser closed the session")
            }
            CloseReason::ClientClosed {
                code: Some(c),
                reason,
            } if reason.is_empty() => {
                write!(f, "browser closed the session ({c})")
            }
            CloseReason::ClientClosed {
                code: Some(c),
                reason,
            } => {
                write!(f, "browser closed the session ({c}: {reason})")
            }
            CloseReason::ClientVanished => f.write_str("browser connection lost without a close"),
            CloseReason::TextFrame => f.write_str("text frames are not supported, send binary"),
            CloseReason::ProtocolError(e) => write!(f, "WebSocket protocol error: {e}"),
            CloseReason::MessageTooBig { limit } => {
                write!(f, "message larger than the {limit}-byte limit")
            }
            CloseReason::IdleTimeout => f.write_str("session idle for too long"),
            CloseReason::MaxDuration => f.write_str("session reached its maximum duration"),
            CloseReason::Drain => f.write_str("proxy is shutting down"),
            CloseReason::Killed(r) if r.is_empty() => f.write_str("session ended by an operator"),
            CloseReason::Killed(r) => f.write_str(r),
            CloseReason::TargetError(e) => write!(f, "console server connection failed: {e}"),
            CloseReason::Ended { reason, .. } => f.write_str(reason),
            CloseReason::ClientError(e) => write!(f, "browser connection failed: {e}"),
            CloseReason::PingTimeout => f.write_str("browser stopped answering pings"),
        }
    }
}

impl From<frame::FrameError> for CloseReason {
    fn from(e: frame::FrameError) -> Self {
        match e {
            frame::FrameError::Text => CloseReason::TextFrame,
            frame::FrameError::TooBig { limit } => CloseReason::MessageTooBig { limit },
            other => CloseReason::ProtocolError(other.to_string()),
        }
    }
}

/// Bytes moved and why the session ended.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// Browser → console server payload bytes (written to the console server).
    pub bytes_up: u64,
    /// Console server → browser payload bytes (written to the browser).
    pub bytes_down: u64,
    pub reason: CloseReason,
}

/// Relays until either side ends, a limit fires or `stop` changes from `Run`.
/// `client` is the upgraded connection after the 101 answer was sent.
pub async fn relay<C, T>(
    client: C,
    target: T,
    cfg: &RelayConfig,
    stop: watch::Receiver<Stop>,
) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    relay_counted(client, target, cfg, stop, None).await
}

/// [`relay`] that also adds the payload bytes to `stats` as they are written, so the
/// admin API and `/metrics` see a running session's bytes before it ends.
pub async fn relay_counted<C, T>(
    client: C,
    target: T,
    cfg: &RelayConfig,
    mut stop: watch::Receiver<Stop>,
    stats: Option<Arc<SessionStats>>,
) -> RelayOutcome
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut session = Session::new(client, target, cfg);
    session.stats = stats;
    let reason = session.run(cfg, &mut stop).await;
    session.finish(&reason).await;
    tracing::debug!(
        code = reason.code(),
        %reason,
        bytes_up = session.bytes_up,
        bytes_down = session.bytes_down,
        buffer_allocations = session.allocations,
        "relay ended"
    );
    RelayOutcome {
        bytes_up: session.bytes_up,
        bytes_down: session.bytes_down,
        reason,
    }
}

/// Sends a close frame with `code` and `reason` on an upgraded connection and waits
/// briefly for the browser's answer (used when a session fails after the upgrade).
/// 1005, 1006 and 1015 are replaced by 1011; the reason is cut to 123 bytes.
pub async fn close_with<C>(client: C, code: u16, reason: &str)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let cfg = RelayConfig {
        buffer_size: MIN_BUFFER,
        ..RelayConfig::default()
    };
    let mut session = Session::new(client, tokio::io::empty(), &cfg);
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        if session.send_close(code, reason).await.is_ok() {
            session.await_client_close().await;
        }
        let _ = session.client.shutdown().await;
    })
    .await;
}

/// What [`Session::poll_io`] reports to the loop around it.
enum Event {
    End(CloseReason),
    /// A buffer was allocated while the release timer was idle: arm it.
    Allocated,
}

/// Console → browser: one frame at a time, built in place.
struct Down {
    /// `MAX_HEADER` bytes of room, then up to `buffer_size` bytes of payload; empty
    /// (no allocation) while the session is quiet.
    buf: Buffer,
    /// The frame being sent is `buf[start..end]`; `start == end` when there is none.
    start: usize,
    end: usize,
    /// How far the frame has been written.
    pos: usize,
}

impl Down {
    fn pending(&self) -> bool {
        self.start < self.end
    }
    /// Part of the frame is on the wire: it must be finished before anything else.
    fn started(&self) -> bool {
        self.pending() && self.pos > self.start
    }
    fn clear(&mut self) {
        (self.start, self.end, self.pos) = (0, 0, 0);
    }
}

/// Browser → console: where things are in the up buffer (raw client bytes, parsed
/// and unmasked in place). Kept apart from the buffer so the same parsing works on
/// the stack probe.
#[derive(Clone, Copy, Default)]
struct Up {
    /// Bytes read into the buffer.
    filled: usize,
    /// Bytes the parser has consumed.
    parsed: usize,
    /// Unmasked payload waiting to be written to the target: `buf[out_start..out_end]`.
    /// Payloads of several small frames are moved together so they go in one write;
    /// a large frame's payload is written where it was read.
    out_start: usize,
    out_end: usize,
}

impl Up {
    fn out_pending(&self) -> bool {
        self.out_start < self.out_end
    }
    /// Moves an incomplete header left after parsing to the front, making room.
    fn compact(&mut self, buf: &mut [u8]) {
        buf.copy_within(self.parsed..self.filled, 0);
        self.filled -= self.parsed;
        self.parsed = 0;
        (self.out_start, self.out_end) = (0, 0);
    }
}

/// One relay session's state; all of it lives in the task's future.
struct Session<C, T> {
    client: C,
    target: T,
    buffer_size: usize,
    down: Down,
    up: Up,
    /// Up to `buffer_size` bytes; empty (no allocation) while the session is quiet.
    up_buf: Buffer,
    /// The next buffer's size each way (the down one's includes the header room),
    /// learned from the reads.
    down_size: Sizer,
    up_size: Sizer,
    parser: Parser,
    /// Control frame being written to the browser, and how far.
    ctrl: Option<(ControlFrame, usize)>,
    /// Pong owed to the browser; a newer ping replaces an unsent pong (RFC 6455 §5.5.3).
    pong: Option<ControlFrame>,
    /// A heartbeat ping is due.
    ping_queued: bool,
    /// Heartbeat pings sent since the last pong.
    pings_unanswered: u32,
    /// Bytes were written to the browser / target since the last flush (TLS buffers).
    client_flush: bool,
    target_flush: bool,
    /// Closing: client frames are parsed only to find the browser's close frame.
    discard_up: bool,
    bytes_up: u64,
    bytes_down: u64,
    /// Live counters shared with the session registry, when someone is watching.
    stats: Option<Arc<SessionStats>>,
    /// Last read on either side (drives buffer release).
    last_read: Instant,
    /// Last read of each direction: each buffer is freed after [`RELEASE_AFTER`]
    /// without reads into it, so a browser sending keystrokes does not keep a quiet
    /// screen's down buffer (and the other way round).
    last_down_read: Instant,
    last_up_read: Instant,
    /// Last payload either way (drives the idle timeout).
    last_payload: Instant,
    /// When the browser last took bytes of the pending down frame (or the frame was
    /// queued): a browser that stops reading is idle even while it sends.
    client_progress: Instant,
    release_armed: bool,
    /// Buffers allocated over the session (each quiet period frees them); logged.
    allocations: u32,
}

/// A reset or broken pipe is the browser going away, not a failure worth a message.
fn client_error(e: io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::WriteZero => CloseReason::ClientVanished,
        _ => CloseReason::ClientError(e.to_string()),
    }
}

fn target_error(e: io::Error) -> CloseReason {
    if let Some(end) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<EndSession>())
    {
        return CloseReason::Ended {
            code: end.code,
            reason: end.reason.clone(),
        };
    }
    CloseReason::TargetError(e.to_string())
}

/// A deadline for timers that are switched off (their `select!` branches are disabled).
fn far_future(now: Instant) -> Instant {
    later(now, Duration::from_secs(100 * 365 * 86_400))
}

/// `base + d` without the panic on overflow a configured `Duration::MAX` would cause.
fn later(base: Instant, d: Duration) -> Instant {
    base.checked_add(d)
        .or_else(|| base.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(base)
}

fn stop_reason(stop: &Stop) -> Option<CloseReason> {
    match stop {
        Stop::Run => None,
        Stop::Drain => Some(CloseReason::Drain),
        Stop::Kill(r) => Some(CloseReason::Killed(r.clone())),
    }
}

impl<C, T> Session<C, T>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn new(client: C, target: T, cfg: &RelayConfig) -> Self {
        let now = Instant::now();
        Session {
            client,
            target,
            buffer_size: cfg.buffer_size.max(MIN_BUFFER),
            down: Down {
                buf: Buffer::default(),
                start: 0,
                end: 0,
                pos: 0,
            },
            up: Up::default(),
            up_buf: Buffer::default(),
            // Down buffers hold the frame header too: 64 KiB at the start is one
            // 16-page mapping.
            down_size: Sizer::new(cfg.buffer_size.max(MIN_BUFFER) + MAX_HEADER),
            up_size: Sizer::new(cfg.buffer_size.max(MIN_BUFFER)),
            parser: Parser::new(cfg.max_message),
            ctrl: None,
            pong: None,
            ping_queued: false,
            pings_unanswered: 0,
            client_flush: false,
            target_flush: false,
            discard_up: false,
            bytes_up: 0,
            bytes_down: 0,
            stats: None,
            last_read: now,
            last_down_read: now,
            last_up_read: now,
            last_payload: now,
            client_progress: now,
            release_armed: false,
            allocations: 0,
        }
    }

    fn count_up(&mut self, n: u64) {
        self.bytes_up += n;
        if let Some(s) = &self.stats {
            s.add_up(n);
        }
    }

    fn count_down(&mut self, n: u64) {
        self.bytes_down += n;
        if let Some(s) = &self.stats {
            s.add_down(n);
        }
    }

    /// Relays until something ends the session; returns why.
    async fn run(&mut self, cfg: &RelayConfig, stop: &mut watch::Receiver<Stop>) -> CloseReason {
        if let Some(r) = stop_reason(&stop.borrow_and_update()) {
            return r;
        }
        let start = Instant::now();
        let at = |d: Option<Duration>| d.map_or(far_future(start), |d| later(start, d));
        let max_duration = tokio::time::sleep_until(at(cfg.max_duration));
        let ping = tokio::time::sleep_until(at(cfg.ping_interval));
        let idle = tokio::time::sleep_until(at(cfg.idle_timeout));
        let release = tokio::time::sleep_until(far_future(start));
        tokio::pin!(max_duration, ping, idle, release);
        let mut stop_open = true;
        loop {
            tokio::select! {
                biased;
                changed = stop.changed(), if stop_open => match changed {
                    Ok(()) => {
                        if let Some(r) = stop_reason(&stop.borrow_and_update()) {
                            return r;
                        }
                    }
                    // The proxy dropped its sender: no more requests will come.
                    Err(_) => stop_open = false,
                },
                () = &mut max_duration, if cfg.max_duration.is_some() => {
                    return CloseReason::MaxDuration;
                }
                event = poll_fn(|cx| self.poll_io(cx)) => match event {
                    Event::End(r) => return r,
                    Event::Allocated => {
                        self.release_armed = true;
                        release.as_mut().reset(Instant::now() + RELEASE_AFTER);
                    }
                },
                () = &mut ping, if cfg.ping_interval.is_some() => {
                    if self.pings_unanswered >= 2 {
                        return CloseReason::PingTimeout;
                    }
                    self.pings_unanswered += 1;
                    self.ping_queued = true;
                    let every = cfg.ping_interval.unwrap_or(Duration::MAX);
                    ping.as_mut().reset(later(Instant::now(), every));
                }
                () = &mut idle, if cfg.idle_timeout.is_some() => {
                    let every = cfg.idle_timeout.unwrap_or(Duration::MAX);
                    let mut due = later(self.last_payload, every);
                    if self.down.pending() {
                        due = due.min(later(self.client_progress, every));
                    }
                    if due <= Instant::now() {
                        return CloseReason::IdleTimeout;
                    }
                    idle.as_mut().reset(due);
                }
                () = &mut release, if self.release_armed => {
                    let now = Instant::now();
                    self.release_buffers(now);
                    self.release_armed = !self.down.buf.is_empty() || !self.up_buf.is_empty();
                    // The next buffer due; one still holding unsent bytes (or read
                    // from since) is looked at again later.
                    let mut next = now + RELEASE_AFTER;
                    for (held, last) in [
                        (!self.down.buf.is_empty(), self.last_down_read),
                        (!self.up_buf.is_empty(), self.last_up_read),
                    ] {
                        if held && last + RELEASE_AFTER > now {
                            next = next.min(last + RELEASE_AFTER);
                        }
                    }
                    release.as_mut().reset(next);
                }
            }
        }
    }

    /// Frees the buffers that hold nothing unsent and were not read into for
    /// [`RELEASE_AFTER`].
    fn release_buffers(&mut self, now: Instant) {
        if !self.down.pending() && self.last_down_read + RELEASE_AFTER <= now {
            self.down.buf = Buffer::default();
            self.down_size.reset();
        }
        if self.up.filled == 0 && !self.up.out_pending() && self.last_up_read + RELEASE_AFTER <= now
        {
            self.up_buf = Buffer::default();
            self.up_size.reset();
        }
    }

    /// Moves bytes both ways until every operation is blocked or the session ends.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;
            let mut allocated = false;
            if let Err(r) = self.io_round(cx, &mut progress, &mut allocated) {
                return Poll::Ready(Event::End(r));
            }
            if allocated && !self.release_armed {
                return Poll::Ready(Event::Allocated);
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One attempt at each operation, writes first so buffers free up before reads.
    fn io_round(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        self.client_out(cx, progress)?;
        self.target_out(cx, progress)?;
        self.target_in(cx, progress, allocated)?;
        self.client_in(cx, progress, allocated)
    }

    /// Writes to the browser: a started data frame first (frames go back to back), then
    /// control frames, then the next data frame, then a flush.
    fn client_out(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Result<(), CloseReason> {
        loop {
            let is_data;
            let bytes: &[u8] = if self.down.started() {
                is_data = true;
                &self.down.buf[self.down.pos..self.down.end]
            } else if let Some((frame, pos)) = &self.ctrl {
                is_data = false;
                &frame.as_bytes()[*pos..]
            } else if let Some(frame) = self.pong.take() {
                self.ctrl = Some((frame, 0));
                continue;
            } else if self.ping_queued {
                self.ping_queued = false;
                self.ctrl = Some((ControlFrame::new(OP_PING, b""), 0));
                continue;
            } else if self.down.pending() {
                is_data = true;
                &self.down.buf[self.down.pos..self.down.end]
            } else if self.client_flush {
                return match Pin::new(&mut self.client).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.client_flush = false;
                        *progress = true;
                        Ok(())
                    }
                    Poll::Ready(Err(e)) => Err(client_error(e)),
                    Poll::Pending => Ok(()),
                };
            } else {
                return Ok(());
            };
            let n = match Pin::new(&mut self.client).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => return Err(CloseReason::ClientVanished),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(client_error(e)),
                Poll::Pending => return Ok(()),
            };
            *progress = true;
            self.client_flush = true;
            if is_data {
                self.client_progress = Instant::now();
                self.down.pos += n;
                if self.down.pos >= self.down.end {
                    self.count_down((self.down.end - MAX_HEADER) as u64);
                    self.down.clear();
                }
            } else if let Some((frame, pos)) = &mut self.ctrl {
                *pos += n;
                if *pos >= frame.as_bytes().len() {
                    self.ctrl = None;
                }
            }
        }
    }

    /// Writes unmasked browser payload to the console server, then flushes.
    fn target_out(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Result<(), CloseReason> {
        loop {
            if !self.up.out_pending() {
                if !self.target_flush {
                    return Ok(());
                }
                return match Pin::new(&mut self.target).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.target_flush = false;
                        *progress = true;
                        Ok(())
                    }
                    Poll::Ready(Err(e)) => Err(target_error(e)),
                    Poll::Pending => Ok(()),
                };
            }
            let bytes = &self.up_buf[self.up.out_start..self.up.out_end];
            let n = match Pin::new(&mut self.target).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => {
                    return Err(CloseReason::TargetError(
                        "console server accepts no more data".into(),
                    ))
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(target_error(e)),
                Poll::Pending => return Ok(()),
            };
            *progress = true;
            self.target_flush = true;
            self.count_up(n as u64);
            self.up.out_start += n;
            if !self.up.out_pending() {
                self.up.compact(&mut self.up_buf);
            }
        }
    }

    /// Reads console bytes behind room for a header and makes them one frame. Only
    /// when the previous frame is fully written: that is the down backpressure.
    fn target_in(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        if self.down.pending() {
            return Ok(());
        }
        if self.down.buf.is_empty() {
            return self.target_in_unbuffered(cx, progress, allocated);
        }
        // Nothing is pending, so a buffer of another size replaces it without a copy.
        if self.down.buf.len() != self.down_size.size() {
            self.down.buf = Buffer::new(self.down_size.size());
            self.allocations += 1;
        }
        let room = self.down.buf.len() - MAX_HEADER;
        let mut rb = ReadBuf::new(&mut self.down.buf[MAX_HEADER..]);
        let n = match Pin::new(&mut self.target).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(target_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::TargetClosed);
        }
        self.down_size.read(n, room);
        *progress = true;
        self.touch_down();
        let start = frame::put_header(&mut self.down.buf, MAX_HEADER, OP_BINARY, n);
        (self.down.start, self.down.pos, self.down.end) = (start, start, MAX_HEADER + n);
        self.client_progress = self.last_read;
        Ok(())
    }

    /// [`Self::target_in`] while the session holds no down buffer: reads into a stack
    /// frame; a small read that the browser takes whole is sent from there and never
    /// allocates (banners, screen trickles). Only a full probe (a burst is starting) or
    /// a write that does not finish allocates the buffer and moves the frame into it.
    fn target_in_unbuffered(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        let mut frame = [0u8; MAX_HEADER + PROBE];
        let probe_len = PROBE.min(self.buffer_size);
        let mut rb = ReadBuf::new(&mut frame[MAX_HEADER..MAX_HEADER + probe_len]);
        let n = match Pin::new(&mut self.target).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(target_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::TargetClosed);
        }
        *progress = true;
        self.touch_down();
        let start = frame::put_header(&mut frame, MAX_HEADER, OP_BINARY, n);
        let end = MAX_HEADER + n;
        let mut pos = start;
        // Straight out only if no control frame is half written or waiting: frames
        // must not interleave, and queued control frames go first.
        let ctrl_idle = self.ctrl.is_none() && self.pong.is_none() && !self.ping_queued;
        if n < probe_len && ctrl_idle {
            match Pin::new(&mut self.client).poll_write(cx, &frame[start..end]) {
                Poll::Ready(Ok(0)) => return Err(CloseReason::ClientVanished),
                Poll::Ready(Ok(k)) => {
                    pos += k;
                    self.client_flush = true;
                }
                Poll::Ready(Err(e)) => return Err(client_error(e)),
                Poll::Pending => {}
            }
            if pos >= end {
                self.count_down(n as u64);
                return Ok(());
            }
        }
        self.down.buf = Buffer::new(self.down_size.size());
        self.allocations += 1;
        self.down.buf[start..end].copy_from_slice(&frame[start..end]);
        (self.down.start, self.down.pos, self.down.end) = (start, pos, end);
        self.client_progress = self.last_read;
        *allocated = true;
        Ok(())
    }

    /// Reads browser bytes and parses them. Only when the previous payload is fully
    /// written to the target: that is the up backpressure.
    fn client_in(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        if self.up.out_pending() {
            return Ok(());
        }
        if self.up_buf.is_empty() {
            return self.client_in_unbuffered(cx, progress, allocated);
        }
        // Nothing is waiting to go out, so only an incomplete header (compacted to the
        // front) moves to a buffer of another size.
        let want = self.up_size.size();
        if self.up_buf.len() != want && self.up.filled <= want {
            let mut bigger = Buffer::new(want);
            bigger[..self.up.filled].copy_from_slice(&self.up_buf[..self.up.filled]);
            self.up_buf = bigger;
            self.allocations += 1;
        }
        let room = self.up_buf.len() - self.up.filled;
        let mut rb = ReadBuf::new(&mut self.up_buf[self.up.filled..]);
        let n = match Pin::new(&mut self.client).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(client_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::ClientVanished);
        }
        self.up_size.read(n, room);
        *progress = true;
        self.up.filled += n;
        // Parse with the buffer moved out of `self` (a pointer swap) so the parser
        // can update the rest of the session.
        let mut buf = std::mem::take(&mut self.up_buf);
        let mut up = self.up;
        let parsed = self.parse_up(&mut buf, &mut up);
        (self.up_buf, self.up) = (buf, up);
        parsed
    }

    /// [`Self::client_in`] while the session holds no up buffer: parses a stack probe
    /// and writes its payload to the target at once; allocates the buffer only for
    /// what cannot finish now (a full probe, a split header, a blocked target).
    fn client_in_unbuffered(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        let mut probe = [0u8; PROBE];
        let probe_len = PROBE.min(self.buffer_size);
        let mut rb = ReadBuf::new(&mut probe[..probe_len]);
        let n = match Pin::new(&mut self.client).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(client_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::ClientVanished);
        }
        *progress = true;
        let mut up = Up {
            filled: n,
            ..Up::default()
        };
        // A protocol error or close still lets the payload before it reach the target
        // (the closing code flushes it), so keep going and return `parsed` last.
        let parsed = self.parse_up(&mut probe, &mut up);
        if up.out_pending() && n < probe_len {
            let bytes = &probe[up.out_start..up.out_end];
            match Pin::new(&mut self.target).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => {
                    return Err(CloseReason::TargetError(
                        "console server accepts no more data".into(),
                    ))
                }
                Poll::Ready(Ok(k)) => {
                    up.out_start += k;
                    self.count_up(k as u64);
                    self.target_flush = true;
                    if !up.out_pending() {
                        up.compact(&mut probe);
                    }
                }
                Poll::Ready(Err(e)) => return Err(target_error(e)),
                Poll::Pending => {}
            }
        }
        if up.out_pending() || up.filled > 0 || n == probe_len {
            self.up_buf = Buffer::new(self.up_size.size());
            self.allocations += 1;
            self.up_buf[..up.filled].copy_from_slice(&probe[..up.filled]);
            *allocated = true;
        }
        self.up = up;
        parsed
    }

    /// Records a console read, for the release timer and the idle timeout.
    fn touch_down(&mut self) {
        let now = Instant::now();
        (self.last_read, self.last_down_read, self.last_payload) = (now, now, now);
    }

    /// Records a browser read, for the release timer and, with payload, the idle
    /// timeout.
    fn touch(&mut self, payload: bool) {
        let now = Instant::now();
        self.last_read = now;
        self.last_up_read = now;
        if payload {
            self.last_payload = now;
        }
    }

    /// Parses everything read into `buf` so far. Data payloads are unmasked in place
    /// and gathered into the out range; control frames are answered here.
    fn parse_up(&mut self, buf: &mut [u8], up: &mut Up) -> Result<(), CloseReason> {
        let mut payload = false;
        let result = loop {
            if up.parsed >= up.filled {
                break Ok(());
            }
            let item = match self.parser.next(&mut buf[up.parsed..up.filled]) {
                Ok(item) => item,
                Err(e) => break Err(e.into()),
            };
            match item {
                Item::NeedMore => break Ok(()),
                Item::Header { used } | Item::ControlPart { used } => up.parsed += used,
                Item::Data { len } => {
                    let src = up.parsed;
                    up.parsed += len;
                    if self.discard_up {
                        continue;
                    }
                    payload = true;
                    if !up.out_pending() {
                        (up.out_start, up.out_end) = (src, src + len);
                    } else {
                        // Close the gap left by the header in between; only small
                        // frames get here, a large payload starts an empty out range.
                        if up.out_end != src {
                            buf.copy_within(src..src + len, up.out_end);
                        }
                        up.out_end += len;
                    }
                }
                Item::Ping { used } => {
                    up.parsed += used;
                    if !self.discard_up {
                        self.pong = Some(ControlFrame::new(OP_PONG, self.parser.control_payload()));
                    }
                }
                Item::Pong { used } => {
                    up.parsed += used;
                    self.pings_unanswered = 0;
                }
                Item::Close { used, code, reason } => {
                    up.parsed += used;
                    break Err(CloseReason::ClientClosed { code, reason });
                }
            }
        };
        self.touch(payload);
        if !up.out_pending() {
            up.compact(buf);
        }
        result
    }

    /// Nothing is waiting to be written to the browser.
    fn client_out_idle(&self) -> bool {
        !self.down.pending()
            && self.ctrl.is_none()
            && self.pong.is_none()
            && !self.ping_queued
            && !self.client_flush
    }

    /// Writes everything pending to the browser.
    async fn flush_client(&mut self) -> Result<(), CloseReason> {
        poll_fn(|cx| {
            let mut progress = false;
            if let Err(r) = self.client_out(cx, &mut progress) {
                return Poll::Ready(Err(r));
            }
            if self.client_out_idle() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Writes pending browser payload to the console server.
    async fn flush_target(&mut self) -> Result<(), CloseReason> {
        poll_fn(|cx| {
            let mut progress = false;
            if let Err(r) = self.target_out(cx, &mut progress) {
                return Poll::Ready(Err(r));
            }
            if !self.up.out_pending() && !self.target_flush {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Sends a close frame: finishes a data frame already begun (the stream must stay
    /// well-formed), drops data frames and pongs not yet begun, then the close.
    async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), CloseReason> {
        if !self.down.started() {
            self.down.clear();
        }
        self.pong = None;
        self.ping_queued = false;
        self.flush_client().await?;
        self.ctrl = Some((ControlFrame::close(code, reason), 0));
        self.flush_client().await
    }

    /// Reads the browser until its close frame, EOF or an error; everything else it
    /// sends now is discarded.
    async fn await_client_close(&mut self) {
        self.discard_up = true;
        (self.up.out_start, self.up.out_end) = (0, 0);
        poll_fn(|cx| loop {
            let mut progress = false;
            let mut allocated = false;
            match self.client_in(cx, &mut progress, &mut allocated) {
                Err(_) => return Poll::Ready(()),
                Ok(()) if !progress => return Poll::Pending,
                Ok(()) => {}
            }
        })
        .await;
    }

    /// Ends the session on both sides according to `reason`, within [`CLOSE_WAIT`].
    async fn finish(&mut self, reason: &CloseReason) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            match reason {
                CloseReason::ClientVanished | CloseReason::ClientError(_) => {
                    // What the browser sent before it went is still delivered.
                    let _ = self.flush_target().await;
                }
                CloseReason::ClientClosed { code, .. } => {
                    if self.send_close(code.unwrap_or(1000), "").await.is_ok() {
                        let _ = self.client.shutdown().await;
                    }
                    let _ = self.flush_target().await;
                }
                CloseReason::TargetClosed => {
                    // All console bytes reach the browser before the close.
                    if self.flush_client().await.is_ok()
                        && self
                            .send_close(reason.code(), &reason.to_string())
                            .await
                            .is_ok()
                    {
                        self.await_client_close().await;
                        let _ = self.client.shutdown().await;
                    }
                }
                _ => {
                    if self
                        .send_close(reason.code(), &reason.to_string())
                        .await
                        .is_ok()
                    {
                        self.await_client_close().await;
                        let _ = self.client.shutdown().await;
                    }
                }
            }
        })
        .await;
        // Whatever happened above, the console server learns the session is over.
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, self.target.shutdown()).await;
    }
}

/// Most tests relay over loopback TCP, as in production. Tests of timers (heartbeat,
/// idle timeout, maximum duration, buffer release) and of "nothing more happens" run
/// on tokio's paused clock over in-memory pipes: the clock jumps to the next timer
/// only once every task is waiting, so they neither sleep nor flake on a loaded
/// machine. (Real sockets and a paused clock mix badly: the clock may jump while a
/// byte is still in the kernel.)
#[cfg(test)]
mod tests {
    use super::*;
    use frame::tests::masked as masked_with_key;
    use futures_util::{SinkExt, StreamExt};
    use std::future::Future;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    /// Fails the test instead of hanging it. Generous: on real sockets a loaded
    /// machine may be slow, and on the paused clock the bound costs nothing.
    async fn within<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("timed out")
    }

    /// Two connected loopback TCP sockets.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// Two connected in-memory pipes' ends, with room for 64 KiB each way.
    fn pipe_pair() -> (DuplexStream, DuplexStream) {
        tokio::io::duplex(64 << 10)
    }

    /// A relay with the browser's raw connection and the console end.
    struct Raw<S> {
        browser: S,
        console: S,
        stop: watch::Sender<Stop>,
        relay: JoinHandle<RelayOutcome>,
    }

    /// Relays between `(browser, proxy_client)` and `(proxy_target, console)`.
    fn relay_between<S>(client: (S, S), target: (S, S), cfg: RelayConfig) -> Raw<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ((browser, proxy_client), (proxy_target, console)) = (client, target);
        let (stop, stop_rx) = watch::channel(Stop::Run);
        let relay =
            tokio::spawn(async move { relay(proxy_client, proxy_target, &cfg, stop_rx).await });
        Raw {
            browser,
            console,
            stop,
            relay,
        }
    }

    /// Over loopback TCP.
    async fn start_raw(cfg: RelayConfig) -> Raw<TcpStream> {
        relay_between(tcp_pair().await, tcp_pair().await, cfg)
    }

    /// Over in-memory pipes, for tests on the paused clock.
    fn start_raw_in_memory(cfg: RelayConfig) -> Raw<DuplexStream> {
        relay_between(pipe_pair(), pipe_pair(), cfg)
    }

    /// The same with tokio-tungstenite as the browser.
    struct Ws<S> {
        ws: WebSocketStream<S>,
        console: S,
        stop: watch::Sender<Stop>,
        relay: JoinHandle<RelayOutcome>,
    }

    async fn with_tungstenite<S>(raw: Raw<S>) -> Ws<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        Ws {
            ws: WebSocketStream::from_raw_socket(raw.browser, Role::Client, None).await,
            console: raw.console,
            stop: raw.stop,
            relay: raw.relay,
        }
    }

    /// Over loopback TCP.
    async fn start(cfg: RelayConfig) -> Ws<TcpStream> {
        with_tungstenite(start_raw(cfg).await).await
    }

    /// Over in-memory pipes, for tests on the paused clock.
    async fn start_in_memory(cfg: RelayConfig) -> Ws<DuplexStream> {
        with_tungstenite(start_raw_in_memory(cfg)).await
    }

    fn quiet() -> RelayConfig {
        RelayConfig {
            ping_interval: None,
            ..RelayConfig::default()
        }
    }

    /// A masked client frame.
    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        masked_with_key(first, payload, [0x5A, 0x17, 0xC3, 0x81])
    }

    /// Reads until the close frame, answers it (tungstenite queues the answer and sends
    /// it on the next poll) and returns its code and reason.
    async fn expect_close<S>(ws: &mut WebSocketStream<S>) -> (u16, String)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (code, reason) = within(async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                        break (u16::from(code), reason.to_string())
                    }
                    Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                    Some(Ok(_)) => {}
                    other => panic!("connection ended before a close frame: {other:?}"),
                }
            }
        })
        .await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {}
        (code, reason)
    }

    /// Sends `frame` raw, then reads the relay's close with tungstenite.
    async fn close_code_after_raw(frame: &[u8], cfg: RelayConfig) -> (u16, CloseReason) {
        let mut raw = start_raw(cfg).await;
        raw.browser.write_all(frame).await.unwrap();
        let mut ws = WebSocketStream::from_raw_socket(raw.browser, Role::Client, None).await;
        let (code, _) = expect_close(&mut ws).await;
        let outcome = within(raw.relay).await.unwrap();
        assert_eq!(outcome.reason.code(), code);
        (code, outcome.reason)
    }

    /// Byte `i` of the test streams: position-dependent so loss or reordering shows.
    fn pattern(i: u64, seed: u64) -> u8 {
        ((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    }

    #[tokio::test]
    async fn relays_64_mib_each_way_at_once_byte_exact() {
        const TOTAL: u64 = 64 << 20;
        let Ws {
            ws, console, relay, ..
        } = start(quiet()).await;
        let (mut ws_tx, mut ws_rx) = ws.split();
        let (mut con_rx, mut con_tx) = console.into_split();

        let up_send = async {
            let mut sent = 0u64;
            while sent < TOTAL {
                // Odd sizes so frames and reads never line up.
                let n = (TOTAL - sent).min(100_003);
                let chunk: Vec<u8> = (sent..sent + n).map(|i| pattern(i, 1)).collect();
                ws_tx.send(Message::binary(chunk)).await.unwrap();
                sent += n;
            }
            ws_tx
        };
        let up_recv = async {
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            while got < TOTAL {
                let n = con_rx.read(&mut buf).await.unwrap();
                assert!(n > 0, "console saw EOF after {got} bytes");
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, pattern(got + k as u64, 1), "up byte {}", got + k as u64);
                }
                got += n as u64;
            }
        };
        let down_send = async {
            let mut sent = 0u64;
            while sent < TOTAL {
                let n = (TOTAL - sent).min(70_001);
                let chunk: Vec<u8> = (sent..sent + n).map(|i| pattern(i, 2)).collect();
                con_tx.write_all(&chunk).await.unwrap();
                sent += n;
            }
        };
        let down_recv = async {
            let mut got = 0u64;
            while got < TOTAL {
                match ws_rx.next().await {
                    Some(Ok(Message::Binary(data))) => {
                        for (k, b) in data.iter().enumerate() {
                            assert_eq!(*b, pattern(got + k as u64, 2), "down byte");
                        }
                        got += data.len() as u64;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        };
        let (mut ws_tx, (), (), ()) =
            within(async { tokio::join!(up_send, up_recv, down_send, down_recv) }).await;
        ws_tx.send(Message::Close(None)).await.unwrap();
        let outcome = within(relay).await.unwrap();
        assert_eq!(outcome.bytes_up, TOTAL);
        assert_eq!(outcome.bytes_down, TOTAL);
        assert_eq!(
            outcome.reason,
            CloseReason::ClientClosed {
                code: None,
                reason: String::new()
            }
        );
    }

    #[tokio::test]
    async fn a_text_frame_closes_with_1003() {
        let Ws {
            mut ws,
            relay,
            console: _console,
            ..
        } = start(quiet()).await;
        ws.send(Message::text("hello")).await.unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, 1003);
        assert!(reason.contains("binary"), "{reason}");
        assert_eq!(within(relay).await.unwrap().reason, CloseReason::TextFrame);
    }

    #[tokio::test]
    async fn an_unmasked_frame_closes_with_1002() {
        let (code, reason) = close_code_after_raw(&[0x82, 0x02, b'h', b'i'], quiet()).await;
        assert_eq!(code, 1002);
        assert!(matches!(reason, CloseReason::ProtocolError(e) if e.contains("not masked")));
    }

    #[tokio::test]
    async fn reserved_bits_unknown_opcodes_and_bad_control_frames_close_with_1002() {
        let cases = [
            masked(0xC2, b"compressed?"),         // RSV1 without an extension
            masked(0x83, b"opcode 3"),            // reserved data opcode
            masked(0x8C, b""),                    // reserved control opcode
            masked(0x09, b"fragmented"),          // ping without FIN
            masked(0x89, &[0; 126]),              // ping longer than 125
            masked(0x80, b"continuation"),        // continuation with nothing to continue
            masked(0x88, &1006u16.to_be_bytes()), // close code that may not be sent
        ];
        for frame in cases {
            let (code, _) = close_code_after_raw(&frame, quiet()).await;
            assert_eq!(code, 1002, "frame starting {:#04x}", frame[0]);
        }
    }

    #[tokio::test]
    async fn a_message_over_max_message_closes_with_1009_even_when_fragmented() {
        let cfg = RelayConfig {
            max_message: 1000,
            ..quiet()
        };
        let (code, reason) = close_code_after_raw(&masked(0x82, &[1; 1001]), cfg.clone()).await;
        assert_eq!(
            (code, reason),
            (1009, CloseReason::MessageTooBig { limit: 1000 })
        );

        let mut two = masked(0x02, &[1; 600]);
        two.extend(masked(0x80, &[2; 600]));
        let (code, _) = close_code_after_raw(&two, cfg.clone()).await;
        assert_eq!(code, 1009);

        // Exactly at the limit is fine, and the next message starts from zero.
        let mut ok = masked(0x02, &[1; 500]);
        ok.extend(masked(0x80, &[2; 500]));
        ok.extend(masked(0x82, &[3; 1000]));
        let mut raw = start_raw(cfg).await;
        raw.browser.write_all(&ok).await.unwrap();
        let mut got = vec![0u8; 2000];
        within(raw.console.read_exact(&mut got)).await.unwrap();
        assert!(got[..500].iter().all(|b| *b == 1) && got[1000..].iter().all(|b| *b == 3));
    }

    #[tokio::test]
    async fn fragmented_messages_are_relayed_as_they_come_with_control_frames_between() {
        let mut raw = start_raw(quiet()).await;
        let mut frames = masked(0x02, b"abc");
        frames.extend(masked(0x89, b"mid")); // ping inside the message
        frames.extend(masked(0x00, b"def"));
        frames.extend(masked(0x80, b"ghi"));
        frames.extend(masked(0x82, b"!"));
        raw.browser.write_all(&frames).await.unwrap();
        let mut got = [0u8; 10];
        within(raw.console.read_exact(&mut got)).await.unwrap();
        assert_eq!(&got, b"abcdefghi!");
        // The ping was answered: pong frame 0x8A with "mid".
        let mut pong = [0u8; 5];
        within(raw.browser.read_exact(&mut pong)).await.unwrap();
        assert_eq!(&pong, b"\x8a\x03mid");
    }

    #[tokio::test]
    async fn frames_trickling_in_a_byte_at_a_time_are_relayed() {
        let mut raw = start_raw(quiet()).await;
        let mut frames = masked(0x82, b"slow");
        frames.extend(masked(0x89, b"p"));
        frames.extend(masked(0x82, &[3u8; 300]));
        for b in &frames {
            raw.browser.write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let mut got = [0u8; 304];
        within(raw.console.read_exact(&mut got)).await.unwrap();
        assert_eq!(&got[..4], b"slow");
        assert!(got[4..].iter().all(|b| *b == 3));
        let mut pong = [0u8; 3];
        within(raw.browser.read_exact(&mut pong)).await.unwrap();
        assert_eq!(&pong, b"\x8a\x01p");
    }

    #[tokio::test]
    async fn a_ping_is_answered_with_a_pong_carrying_its_payload() {
        let Ws {
            mut ws,
            console: _console,
            ..
        } = start(quiet()).await;
        ws.send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        let msg = within(ws.next()).await.unwrap().unwrap();
        assert_eq!(msg, Message::Pong(b"are you there".to_vec().into()));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_pings_arrive_every_interval() {
        let cfg = RelayConfig {
            ping_interval: Some(Duration::from_millis(100)),
            ..RelayConfig::default()
        };
        let Ws {
            mut ws,
            relay,
            console: _console,
            ..
        } = start_in_memory(cfg).await;
        for _ in 0..4 {
            // tungstenite answers each ping, so the session stays up.
            let msg = within(ws.next()).await.unwrap().unwrap();
            assert!(matches!(msg, Message::Ping(_)), "{msg:?}");
        }
        assert!(!relay.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_browser_that_never_answers_pings_is_dropped_after_two_intervals() {
        let cfg = RelayConfig {
            ping_interval: Some(Duration::from_millis(100)),
            ..RelayConfig::default()
        };
        let mut raw = start_raw_in_memory(cfg);
        let started = Instant::now();
        // Read raw frames without answering until the close arrives, then hang up.
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !seen.contains(&0x88) {
            let n = within(raw.browser.read(&mut buf)).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        drop(raw.browser);
        let outcome = within(raw.relay).await.unwrap();
        assert_eq!(outcome.reason, CloseReason::PingTimeout);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(&seen[..4], b"\x89\x00\x89\x00", "two pings came first");
    }

    #[tokio::test]
    async fn target_close_delivers_every_byte_then_closes_with_1000() {
        let Ws {
            mut ws,
            mut console,
            relay,
            ..
        } = start(quiet()).await;
        let data: Vec<u8> = (0..1_000_000).map(|i| pattern(i, 3)).collect();
        console.write_all(&data).await.unwrap();
        drop(console);
        let mut got = Vec::new();
        let (code, reason) = within(async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
                    Some(Ok(Message::Close(Some(f)))) => break (u16::from(f.code), f.reason),
                    other => panic!("{other:?}"),
                }
            }
        })
        .await;
        assert_eq!(got, data);
        assert_eq!(
            (code, reason.as_str()),
            (1000, "console server closed the connection")
        );
        let _ = ws.next().await; // sends tungstenite's close answer
        let outcome = within(relay).await.unwrap();
        assert_eq!(outcome.reason, CloseReason::TargetClosed);
        assert_eq!(outcome.bytes_down, data.len() as u64);
    }

    #[tokio::test]
    async fn client_close_is_echoed_and_the_target_sees_eof_after_the_data() {
        let Ws {
            mut ws,
            mut console,
            relay,
            ..
        } = start(quiet()).await;
        ws.send(Message::binary(b"last words".to_vec()))
            .await
            .unwrap();
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "tab closed".into(),
        })))
        .await
        .unwrap();
        let mut got = Vec::new();
        within(console.read_to_end(&mut got)).await.unwrap();
        assert_eq!(got, b"last words");
        // tungstenite reports the echo as the end of the stream.
        let echo = within(ws.next()).await;
        assert!(
            matches!(&echo, Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1001)
                || echo.is_none(),
            "{echo:?}"
        );
        let outcome = within(relay).await.unwrap();
        assert_eq!(
            outcome.reason,
            CloseReason::ClientClosed {
                code: Some(1001),
                reason: "tab closed".into()
            }
        );
        assert_eq!(outcome.reason.code(), 1001);
    }

    #[tokio::test]
    async fn a_vanished_browser_closes_the_target() {
        let mut raw = start_raw(quiet()).await;
        raw.browser
            .write_all(&masked(0x82, b"typed"))
            .await
            .unwrap();
        drop(raw.browser);
        let mut got = Vec::new();
        within(raw.console.read_to_end(&mut got)).await.unwrap();
        assert_eq!(got, b"typed");
        let outcome = within(raw.relay).await.unwrap();
        assert_eq!(outcome.reason, CloseReason::ClientVanished);
        assert_eq!(outcome.bytes_up, 5);
    }

    #[tokio::test]
    async fn drain_closes_with_1001() {
        let Ws {
            mut ws,
            mut console,
            stop,
            relay,
        } = start(quiet()).await;
        stop.send(Stop::Drain).unwrap();
        assert_eq!(
            expect_close(&mut ws).await,
            (1001, "proxy is shutting down".to_owned())
        );
        assert_eq!(within(relay).await.unwrap().reason, CloseReason::Drain);
        let mut rest = Vec::new();
        within(console.read_to_end(&mut rest)).await.unwrap();
    }

    #[tokio::test]
    async fn kill_closes_with_1008_and_the_operator_reason_cut_on_a_char_boundary() {
        let Ws {
            mut ws,
            stop,
            relay,
            console: _console,
        } = start(quiet()).await;
        stop.send(Stop::Kill("access revoked".into())).unwrap();
        assert_eq!(
            expect_close(&mut ws).await,
            (1008, "access revoked".to_owned())
        );
        assert_eq!(
            within(relay).await.unwrap().reason,
            CloseReason::Killed("access revoked".into())
        );

        let Ws {
            mut ws,
            stop,
            relay,
            console: _console,
        } = start(quiet()).await;
        stop.send(Stop::Kill("ü".repeat(100))).unwrap(); // 200 bytes
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!((code, reason.len()), (1008, 122));
        within(relay).await.unwrap();
    }

    #[tokio::test]
    async fn a_session_killed_before_it_starts_closes_at_once() {
        let raw = start_raw(quiet()).await;
        raw.stop.send(Stop::Kill("too late".into())).unwrap();
        let mut ws = WebSocketStream::from_raw_socket(raw.browser, Role::Client, None).await;
        assert_eq!(expect_close(&mut ws).await.0, 1008);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_waits_for_quiet_then_closes_with_1000() {
        let cfg = RelayConfig {
            idle_timeout: Some(Duration::from_millis(300)),
            ..quiet()
        };
        let Ws {
            mut ws,
            mut console,
            relay,
            ..
        } = start_in_memory(cfg).await;
        let started = Instant::now();
        // Traffic every 100 ms for 600 ms keeps the session alive past the timeout.
        for _ in 0..6 {
            ws.send(Message::binary(b"k".to_vec())).await.unwrap();
            let mut b = [0u8; 1];
            within(console.read_exact(&mut b)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!relay.is_finished());
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!((code, reason.as_str()), (1000, "session idle for too long"));
        assert!(started.elapsed() >= Duration::from_millis(800));
        assert_eq!(
            within(relay).await.unwrap().reason,
            CloseReason::IdleTimeout
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_duration_ends_a_busy_session_with_1008() {
        let cfg = RelayConfig {
            max_duration: Some(Duration::from_millis(300)),
            ..quiet()
        };
        let Ws {
            mut ws,
            mut console,
            relay,
            ..
        } = start_in_memory(cfg).await;
        let started = Instant::now();
        let chatter = tokio::spawn(async move {
            while console.write_all(b"frame").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(
            (code, reason.as_str()),
            (1008, "session reached its maximum duration")
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            within(relay).await.unwrap().reason,
            CloseReason::MaxDuration
        );
        within(chatter).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_browser_that_stops_reading_bounds_what_is_read_from_the_console() {
        const PIPE: usize = 64 << 10;
        let cfg = quiet();
        let (_browser, proxy_client) = tokio::io::duplex(PIPE);
        let (proxy_target, mut console) = tokio::io::duplex(PIPE);
        let (_stop, stop_rx) = watch::channel(Stop::Run);
        let bound = PIPE + cfg.buffer_size + MAX_HEADER + PIPE;
        let relay =
            tokio::spawn(async move { relay(proxy_client, proxy_target, &cfg, stop_rx).await });
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = written.clone();
        let writer = tokio::spawn(async move {
            let chunk = [7u8; 4096];
            while let Ok(n) = console.write(&chunk).await {
                count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // The paused clock moves on only once the writer, the relay and this task all
        // wait: each read below sees everything that could move by then.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_300 = written.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_600 = written.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            at_600 <= bound,
            "console wrote {at_600} bytes, bound {bound}"
        );
        assert_eq!(at_300, at_600, "the relay kept reading");
        assert!(at_600 > PIPE, "the relay read something");
        relay.abort();
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_console_that_stops_reading_bounds_what_is_read_from_the_browser() {
        const PIPE: usize = 64 << 10;
        let cfg = RelayConfig {
            max_message: usize::MAX,
            ..quiet()
        };
        let (mut browser, proxy_client) = tokio::io::duplex(PIPE);
        let (proxy_target, _console) = tokio::io::duplex(PIPE);
        let (_stop, stop_rx) = watch::channel(Stop::Run);
        let bound = PIPE + cfg.buffer_size + PIPE;
        let relay =
            tokio::spawn(async move { relay(proxy_client, proxy_target, &cfg, stop_rx).await });
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = written.clone();
        let writer = tokio::spawn(async move {
            // One endless frame: a header announcing 2^62 bytes, then payload forever.
            let mut header = vec![0x82, 0xFF];
            header.extend_from_slice(&(1u64 << 62).to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4]);
            browser.write_all(&header).await.unwrap();
            let chunk = [7u8; 4096];
            while let Ok(n) = browser.write(&chunk).await {
                count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // The paused clock moves on only once the writer, the relay and this task all
        // wait: each read below sees everything that could move by then.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_300 = written.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_600 = written.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            at_600 <= bound,
            "browser wrote {at_600} bytes, bound {bound}"
        );
        assert_eq!(at_300, at_600, "the relay kept reading");
        relay.abort();
        writer.abort();
    }

    #[tokio::test]
    async fn the_outcome_counts_payload_bytes_each_way() {
        let Ws {
            mut ws,
            mut console,
            relay,
            ..
        } = start(quiet()).await;
        for n in [1usize, 125, 126, 65_535, 65_536, 200_000] {
            ws.send(Message::binary(vec![9u8; n])).await.unwrap();
        }
        let up: u64 = 1 + 125 + 126 + 65_535 + 65_536 + 200_000;
        let mut got = vec![0u8; up as usize];
        within(console.read_exact(&mut got)).await.unwrap();
        console.write_all(&[5u8; 12_345]).await.unwrap();
        drop(console);
        let (code, _) = expect_close(&mut ws).await;
        assert_eq!(code, 1000);
        let outcome = within(relay).await.unwrap();
        assert_eq!((outcome.bytes_up, outcome.bytes_down), (up, 12_345));
    }

    #[tokio::test]
    async fn close_with_sends_code_and_reason_and_returns_on_the_answer() {
        let (browser, proxy_client) = tcp_pair().await;
        // 1011 rather than 1014 here: tungstenite 0.26 refuses 1014, browsers accept it.
        let closer = tokio::spawn(async move {
            close_with(proxy_client, 1011, "console server unreachable").await;
        });
        let mut ws = WebSocketStream::from_raw_socket(browser, Role::Client, None).await;
        assert_eq!(
            expect_close(&mut ws).await,
            (1011, "console server unreachable".to_owned())
        );
        within(closer).await.unwrap();
    }

    #[test]
    fn an_idle_session_without_buffers_is_small() {
        let (_c, client) = tokio::io::duplex(1);
        let (_t, target) = tokio::io::duplex(1);
        let (_stop, stop_rx) = watch::channel(Stop::Run);
        let cfg = RelayConfig::default();
        let fut = relay(client, target, &cfg, stop_rx);
        // The whole per-session state of the relay while no buffer is allocated.
        let size = std::mem::size_of_val(&fut);
        assert!(size < 4096, "relay future is {size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_release_their_buffers_after_a_burst_or_a_banner() {
        for burst in [12usize, 1 << 20] {
            // Pipes with room for the whole burst, as loopback TCP's buffers have: the
            // peers below move it one direction after the other.
            let (browser, proxy_client) = tokio::io::duplex(2 << 20);
            let (proxy_target, console) = tokio::io::duplex(2 << 20);
            let mut session = Session::new(proxy_client, proxy_target, &quiet());
            let (_stop, mut stop_rx) = watch::channel(Stop::Run);
            let cfg = quiet();
            let peers = async {
                let (mut con_rx, mut con_tx) = tokio::io::split(console);
                let mut ws = WebSocketStream::from_raw_socket(browser, Role::Client, None).await;
                let up = vec![1u8; burst];
                ws.send(Message::binary(up)).await.unwrap();
                con_tx.write_all(&vec![2u8; burst]).await.unwrap();
                let mut got = vec![0u8; burst];
                con_rx.read_exact(&mut got).await.unwrap();
                let mut down = 0;
                while down < burst {
                    if let Some(Ok(Message::Binary(b))) = ws.next().await {
                        down += b.len();
                    }
                }
                tokio::time::sleep(RELEASE_AFTER * 3).await;
                (ws, con_rx, con_tx)
            };
            // Run the session while the peers move their burst and then go quiet;
            // dropping `run` leaves the session intact for inspection.
            let (_peers, reason) = within(async {
                tokio::join!(
                    peers,
                    tokio::time::timeout(RELEASE_AFTER * 4, session.run(&cfg, &mut stop_rx))
                )
            })
            .await;
            assert!(reason.is_err(), "session ended: {reason:?}");
            assert_eq!(session.bytes_up, burst as u64);
            assert_eq!(session.bytes_down, burst as u64);
            assert_eq!(session.down.buf.capacity(), 0, "after {burst} bytes");
            if burst < PROBE {
                assert_eq!(session.allocations, 0, "small reads go out from the stack");
            }
            assert_eq!(session.up_buf.capacity(), 0, "after {burst} bytes");
        }
    }
}

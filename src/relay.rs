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
mod close;
mod frame;
mod pump;
mod stats;

use buffer::{Buffer, Sizer};
pub use close::{CloseReason, EndSession, Stop};
use frame::{ControlFrame, Parser};
pub use stats::SessionStats;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
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
/// even on streams that do not take part in tokio's cooperative budget. Few rounds
/// keep a keystroke's wait short on a host full of busy consoles: with 32 (up to 2 MiB
/// moved per poll) the busy host's input round trip was 3–25 ms at p50, with 4 it was
/// 0.6–3.8 ms, at the same CPU per GiB and single-stream speed (bench/README.md).
const MAX_ROUNDS: usize = 4;

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

#[cfg(test)]
mod tests;

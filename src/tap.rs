//! The tap: a stream layer between the relay and the console server, for sessions
//! whose ticket asks the proxy to look at the bytes, and only for those.
//!
//! - **View only** (`view` claim): the browser's input never reaches the console
//!   server. For VNC the tap follows the RFB handshake ([`crate::rfb::handshake`]),
//!   forces ClientInit's `shared` flag to 1 (an exclusive ClientInit would make QEMU
//!   disconnect the user being watched), and passes client messages through the
//!   view-only filter ([`crate::rfb::view`]); for a serial console every browser byte
//!   is dropped. Unknown or malformed input ends the session (fail closed).
//! - **Observation** (recording): an [`Observer`] is given the console server's bytes
//!   as they are read (exactly what the browser will see) and the browser's bytes as
//!   they are forwarded (after filtering, so a view-only session records no input),
//!   each labelled with what it is, so the VNC authentication response can be kept
//!   out of a recording.
//!
//! The relay knows nothing of this: to it the tap is the console server. A tap error
//! travels inside an `io::Error` as a [`EndSession`], which the relay turns into a
//! close with the tap's code and reason rather than "console server failed".
//!
//! Sessions without `view` or an observer get no tap at all, so the common path costs
//! nothing. With a tap, browser bytes go through one small copy (up is keystrokes and
//! pointer moves: little data); console bytes are only looked at, never copied here.

use crate::relay::EndSession;
use crate::rfb::handshake::{Handshake, HandshakeError, UpKind};
use crate::rfb::view::{ViewError, ViewOnlyFilter};
use crate::ticket::Kind;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Close code for a browser that broke the view-only rules or the RFB handshake:
/// policy violation.
const CLOSE_POLICY: u16 = 1008;
/// Close code for a failure on the proxy's side (an observer that cannot go on).
const CLOSE_SERVER_ERROR: u16 = 1011;

/// Watches a session's bytes (the recorder). Called on the relay's task, between a
/// read and the write it feeds: it must not block (hand bytes to a bounded queue and
/// return). An error ends the session with close 1011 and the error as the reason.
pub trait Observer: Send {
    /// Console server → browser bytes, as read from the console server.
    fn down(&mut self, bytes: &[u8]) -> Result<(), ObserverError>;
    /// Browser → console server bytes, as forwarded to the console server. For VNC,
    /// `kind` says what they are ([`UpKind::AuthResponse`] must never be kept); for
    /// serial consoles it is always [`UpKind::Messages`].
    fn up(&mut self, kind: UpKind, bytes: &[u8]) -> Result<(), ObserverError>;
}

/// Why an observer cannot go on; its text is the close reason the browser sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ObserverError(pub String);

/// Why the tap ends a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Observer(#[from] ObserverError),
}

impl TapError {
    pub fn close_code(&self) -> u16 {
        match self {
            TapError::Handshake(_) | TapError::View(_) => CLOSE_POLICY,
            TapError::Observer(_) => CLOSE_SERVER_ERROR,
        }
    }

    fn into_io(self) -> io::Error {
        EndSession {
            code: self.close_code(),
            reason: self.to_string(),
        }
        .into_io()
    }
}

/// A `view` ticket for a kind of console whose input the tap cannot filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a {} console cannot be watched view-only: this proxy does not filter its input \
     (keyboard, mouse, clipboard), so it refuses the view ticket rather than let input through",
    .0.as_str().to_uppercase()
)]
pub struct ViewUnsupported(pub Kind);

/// Whether the tap can enforce a `view` ticket for `kind`: VNC (the view-only filter)
/// and serial (every browser byte dropped) yes; SPICE no, since its input travels on
/// channels of its own (inputs, the agent's clipboard on the main channel) that the
/// proxy does not parse. Checked at admission, before the 101 and before a single-use
/// ticket's use is taken, so a view ticket never becomes a session with input.
pub fn check_view(kind: Kind, view: bool) -> Result<(), ViewUnsupported> {
    match (view, kind) {
        (true, Kind::Spice) => Err(ViewUnsupported(kind)),
        _ => Ok(()),
    }
}

/// What the tap does for one session.
pub struct TapOptions {
    pub kind: Kind,
    /// Forward no input (the ticket's `view` claim).
    pub view: bool,
    pub observer: Option<Box<dyn Observer>>,
}

impl TapOptions {
    /// True when the session needs a tap at all.
    pub fn needed(&self) -> bool {
        self.view || self.observer.is_some()
    }
}

/// The console server's stream, as the relay sees it for a tapped session.
pub struct Tap<S> {
    inner: S,
    view: bool,
    /// Follows the RFB handshake (VNC sessions).
    rfb: Option<Handshake>,
    /// Filters client messages (VNC view-only sessions).
    filter: Option<ViewOnlyFilter>,
    /// Browser bytes dropped without a filter (serial view-only sessions).
    dropped_bytes: u64,
    observer: Option<Box<dyn Observer>>,
    /// Browser bytes accepted from the relay and not yet written to the console
    /// server: at most one `poll_write`'s worth, since it is written out before the
    /// next one is accepted.
    pending: Vec<u8>,
    written: usize,
    /// Once the tap has failed, every later call fails the same way.
    failed: Option<TapError>,
}

impl<S> Tap<S> {
    pub fn new(inner: S, options: TapOptions) -> Tap<S> {
        let vnc = options.kind == Kind::Vnc;
        Tap {
            inner,
            view: options.view,
            rfb: vnc.then(Handshake::new),
            filter: (vnc && options.view).then(ViewOnlyFilter::new),
            dropped_bytes: 0,
            observer: options.observer,
            pending: Vec::new(),
            written: 0,
            failed: None,
        }
    }

    /// Input dropped so far, for the session's end log line: for VNC the messages the
    /// view-only filter dropped (keys, pointer, clipboard, control), for a serial
    /// console the bytes.
    pub fn dropped(&self) -> u64 {
        self.filter
            .as_ref()
            .map_or(self.dropped_bytes, |f| f.dropped().total())
    }

    fn fail(&mut self, e: TapError) -> io::Error {
        self.failed = Some(e.clone());
        e.into_io()
    }

    /// Browser bytes pass straight through: no filtering, nothing left to follow, and
    /// no observer. An observer must see bytes before they reach the console server,
    /// so that a recording that cannot take them stops them (nothing reaches the VM
    /// unrecorded); those sessions always go through the queue.
    fn pass_through(&self) -> bool {
        !self.view
            && self.observer.is_none()
            && self.rfb.as_ref().map_or(true, Handshake::in_messages)
    }

    /// Classifies, filters and observes `buf`, queueing what is forwarded.
    fn take_up(&mut self, buf: &[u8]) -> Result<(), TapError> {
        let Tap {
            view,
            rfb,
            filter,
            dropped_bytes,
            observer,
            pending,
            ..
        } = self;
        let mut rest = buf;
        while !rest.is_empty() {
            let (kind, n) = match rfb {
                Some(h) => h.next_up(rest)?,
                None => (UpKind::Messages, rest.len()),
            };
            let (seg, tail) = rest.split_at(n);
            rest = tail;
            let start = pending.len();
            match kind {
                // Shared, whatever the browser asked: a watcher must never push the
                // user it watches off the console.
                UpKind::ClientInit if *view => pending.push(1),
                UpKind::Messages if *view => {
                    match filter.as_mut() {
                        Some(f) => f.push(seg, pending)?,
                        // A serial console has no filter: every byte is input.
                        None => *dropped_bytes += seg.len() as u64,
                    }
                }
                _ => pending.extend_from_slice(seg),
            }
            if let Some(o) = observer.as_mut() {
                if pending.len() > start {
                    if let Err(e) = o.up(kind, &pending[start..]) {
                        // What the observer could not take is not forwarded either.
                        pending.truncate(start);
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> Tap<S> {
    /// Writes out what is pending; ready once nothing is.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = &this.failed {
            return Poll::Ready(Err(e.clone().into_io()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if let Some(h) = this.rfb.as_mut() {
            if let Err(e) = h.observe_down(new) {
                return Poll::Ready(Err(this.fail(e.into())));
            }
        }
        if let Some(o) = this.observer.as_mut() {
            if let Err(e) = o.down(new) {
                return Poll::Ready(Err(this.fail(e.into())));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = &this.failed {
            return Poll::Ready(Err(e.clone().into_io()));
        }
        ready!(this.poll_drain(cx))?;
        if this.pass_through() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if let Err(e) = this.take_up(buf) {
            return Poll::Ready(Err(this.fail(e)));
        }
        // Start writing now; what does not go is written before the next call's bytes
        // are taken, or by the flush the relay asks for after every write.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Log = Arc<Mutex<Vec<(&'static str, UpKind, Vec<u8>)>>>;

    struct Recorder(Log);

    impl Observer for Recorder {
        fn down(&mut self, bytes: &[u8]) -> Result<(), ObserverError> {
            self.0
                .lock()
                .unwrap()
                .push(("down", UpKind::Messages, bytes.to_vec()));
            Ok(())
        }
        fn up(&mut self, kind: UpKind, bytes: &[u8]) -> Result<(), ObserverError> {
            self.0.lock().unwrap().push(("up", kind, bytes.to_vec()));
            Ok(())
        }
    }

    const V38: &[u8] = b"RFB 003.008\n";

    /// A browser side speaking RFB 3.8 with VNC authentication through a tap to a
    /// console server; returns what the server received.
    async fn vnc_session(view: bool, observer: Option<Box<dyn Observer>>) -> Vec<u8> {
        let (tap_side, mut server) = tokio::io::duplex(1 << 16);
        let mut tap = Tap::new(
            tap_side,
            TapOptions {
                kind: Kind::Vnc,
                view,
                observer,
            },
        );
        let mut buf = [0u8; 64];
        server.write_all(V38).await.unwrap();
        assert_eq!(tap.read(&mut buf).await.unwrap(), 12);
        tap.write_all(V38).await.unwrap();
        server.write_all(&[1, 2]).await.unwrap();
        tap.read_exact(&mut buf[..2]).await.unwrap();
        tap.write_all(&[2]).await.unwrap();
        server.write_all(&[9; 16]).await.unwrap();
        tap.read_exact(&mut buf[..16]).await.unwrap();
        // Response, ClientInit (exclusive), then a key, a pointer move and an update
        // request in one write.
        let mut rest = vec![0xAA; 16];
        rest.push(0);
        rest.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61]);
        rest.extend_from_slice(&[5, 0, 0, 1, 0, 1]);
        rest.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 8, 0, 8]);
        tap.write_all(&rest).await.unwrap();
        tap.flush().await.unwrap();
        tap.shutdown().await.unwrap();
        drop(tap);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_view_only_session_forwards_no_input_and_asks_to_share() {
        let got = vnc_session(true, None).await;
        let mut expected = V38.to_vec();
        expected.push(2);
        expected.extend_from_slice(&[0xAA; 16]);
        expected.push(1);
        expected.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 8, 0, 8]);
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn without_view_every_byte_passes_and_the_observer_sees_what_it_is() {
        let log = Log::default();
        let got = vnc_session(false, Some(Box::new(Recorder(log.clone())))).await;
        assert_eq!(got.len(), 12 + 1 + 16 + 1 + 8 + 6 + 10);
        assert_eq!(got[29], 0, "ClientInit as the browser sent it");
        let log = log.lock().unwrap();
        let ups: Vec<(UpKind, usize)> = log
            .iter()
            .filter(|(dir, _, _)| *dir == "up")
            .map(|(_, k, b)| (*k, b.len()))
            .collect();
        assert_eq!(
            ups,
            vec![
                (UpKind::Handshake, 12),
                (UpKind::Handshake, 1),
                (UpKind::AuthResponse, 16),
                (UpKind::ClientInit, 1),
                (UpKind::Messages, 24),
            ]
        );
        let down: usize = log
            .iter()
            .filter(|(dir, _, _)| *dir == "down")
            .map(|(_, _, b)| b.len())
            .sum();
        assert_eq!(down, 12 + 2 + 16);
    }

    #[tokio::test]
    async fn an_unknown_message_in_a_view_session_ends_it_with_a_policy_close() {
        let (tap_side, mut server) = tokio::io::duplex(1 << 16);
        let mut tap = Tap::new(
            tap_side,
            TapOptions {
                kind: Kind::Vnc,
                view: true,
                observer: None,
            },
        );
        let mut buf = [0u8; 64];
        server.write_all(V38).await.unwrap();
        tap.read_exact(&mut buf[..12]).await.unwrap();
        tap.write_all(V38).await.unwrap();
        server.write_all(&[1, 1]).await.unwrap();
        tap.read_exact(&mut buf[..2]).await.unwrap();
        tap.write_all(&[1, 0]).await.unwrap();
        let err = tap.write_all(&[77, 0, 0]).await.unwrap_err();
        let end = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<EndSession>())
            .expect("an EndSession");
        assert_eq!(end.code, 1008);
        assert!(end.reason.contains("77"), "{}", end.reason);
        // And it stays failed.
        assert!(tap.write_all(&[3]).await.is_err());
    }

    #[tokio::test]
    async fn a_view_only_serial_session_forwards_nothing_but_shows_everything() {
        let (tap_side, mut server) = tokio::io::duplex(1 << 16);
        let mut tap = Tap::new(
            tap_side,
            TapOptions {
                kind: Kind::Serial,
                view: true,
                observer: None,
            },
        );
        tap.write_all(b"reboot\n").await.unwrap();
        server.write_all(b"login: ").await.unwrap();
        let mut buf = [0u8; 16];
        let n = tap.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"login: ");
        tap.shutdown().await.unwrap();
        drop(tap);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn an_observer_failure_ends_the_session_with_its_reason() {
        struct Full;
        impl Observer for Full {
            fn down(&mut self, _: &[u8]) -> Result<(), ObserverError> {
                Err(ObserverError("recording cannot keep up".into()))
            }
            fn up(&mut self, _: UpKind, _: &[u8]) -> Result<(), ObserverError> {
                Ok(())
            }
        }
        let (tap_side, mut server) = tokio::io::duplex(1 << 16);
        let mut tap = Tap::new(
            tap_side,
            TapOptions {
                kind: Kind::Serial,
                view: false,
                observer: Some(Box::new(Full)),
            },
        );
        server.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 4];
        let err = tap.read(&mut buf).await.unwrap_err();
        let end = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<EndSession>())
            .unwrap();
        assert_eq!(
            (end.code, end.reason.as_str()),
            (1011, "recording cannot keep up")
        );
    }

    #[tokio::test]
    async fn input_a_recording_cannot_take_never_reaches_the_console() {
        struct NoInput;
        impl Observer for NoInput {
            fn down(&mut self, _: &[u8]) -> Result<(), ObserverError> {
                Ok(())
            }
            fn up(&mut self, _: UpKind, _: &[u8]) -> Result<(), ObserverError> {
                Err(ObserverError("recording cannot keep up".into()))
            }
        }
        let (tap_side, mut server) = tokio::io::duplex(1 << 16);
        let mut tap = Tap::new(
            tap_side,
            TapOptions {
                kind: Kind::Serial,
                view: false,
                observer: Some(Box::new(NoInput)),
            },
        );
        assert!(tap.write_all(b"shutdown -h now\n").await.is_err());
        let _ = tap.shutdown().await;
        drop(tap);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
    }
}

//! How a session ends: what the proxy asks of a running session ([`Stop`]), why it
//! ended ([`CloseReason`]: its close code and the sentence for the log and the close
//! frame), and the error a layer between the relay and the console server returns to
//! end the session with its own code and reason ([`EndSession`]).

use super::frame;
use std::io;

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

/// A reset or broken pipe is the browser going away, not a failure worth a message.
pub(super) fn client_error(e: io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::WriteZero => CloseReason::ClientVanished,
        _ => CloseReason::ClientError(e.to_string()),
    }
}

pub(super) fn target_error(e: io::Error) -> CloseReason {
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

pub(super) fn stop_reason(stop: &Stop) -> Option<CloseReason> {
    match stop {
        Stop::Run => None,
        Stop::Drain => Some(CloseReason::Drain),
        Stop::Kill(r) => Some(CloseReason::Killed(r.clone())),
    }
}

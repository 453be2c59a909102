//! The relay: WebSocket (browser) ⇄ TCP (console server), both directions at once.
//!
//! Works on the raw upgraded connection with its own RFC 6455 framing so that a frame
//! is written straight from the read buffer (header in front of the payload, no copy).

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// Limits and timers of one session.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Heartbeat ping to the browser; `None` disables it.
    pub ping_interval: Option<Duration>,
    /// End the session when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// End the session after this long whatever happens.
    pub max_duration: Option<Duration>,
    /// Largest WebSocket message accepted from the browser (close 1009 above).
    pub max_message: usize,
    /// Read buffer per direction.
    pub buffer_size: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: None,
            max_duration: None,
            max_message: 16 << 20,
            buffer_size: 64 << 10,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    Todo,
}

impl CloseReason {
    /// The WebSocket close code sent (or that would have been sent) to the browser.
    pub fn code(&self) -> u16 {
        todo!()
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Bytes moved and why the session ended.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// Browser → console server payload bytes.
    pub bytes_up: u64,
    /// Console server → browser payload bytes.
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
    let _ = (client, target, cfg, stop);
    todo!()
}

/// Sends a close frame with `code` and `reason` on an upgraded connection and waits
/// briefly for the browser's answer (used when a session fails after the upgrade).
pub async fn close_with<C>(client: C, code: u16, reason: &str)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let _ = (client, code, reason);
    todo!()
}

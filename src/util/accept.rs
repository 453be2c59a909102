//! The accept loop's hard cases, shared by the browsers' listener, the admin listener
//! and the demo console server: `accept` failing, and a connection accepted only to be
//! turned away ([`TurnAway`]).
//!
//! Running out of file descriptors (EMFILE/ENFILE) is transient, so a failed accept
//! is not the end of the server: [`Acceptor::accept`] backs off (10 ms doubling to
//! 1 s), retries, and logs at most once a second with the count of failures, so
//! neither the CPU nor the log spins while the process is at its limit. No crate does
//! just this (tokio's listener returns the error; retry crates are built for calls
//! that give up), and it is a few lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::warn;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Shortest wait, after the first failure.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// At most one "accept failed" line this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A listener whose `accept` never fails.
pub struct Acceptor {
    listener: TcpListener,
    /// Which listener this is, for the log line.
    name: &'static str,
    backoff: Duration,
    /// Failures since the last log line.
    failures: u64,
    last_log: Option<Instant>,
}

impl Acceptor {
    pub fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            name,
            backoff: Duration::ZERO,
            failures: 0,
            last_log: None,
        }
    }

    /// The next connection, however many accepts fail first. Cancel-safe: dropping
    /// the future loses no connection (tokio's `accept` is cancel-safe) and keeps
    /// the backoff.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = Duration::ZERO;
                    return accepted;
                }
                Err(e) => {
                    self.failures += 1;
                    if self.last_log.map_or(true, |t| t.elapsed() >= LOG_EVERY) {
                        warn!(listener = self.name, cause = %e, failures = self.failures, "accept failed; backing off");
                        self.last_log = Some(Instant::now());
                        self.failures = 0;
                    }
                    self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }
}

/// How long a turned-away connection is read and discarded after its answer.
const LINGER: Duration = Duration::from_millis(500);
/// Most bytes read and discarded from a turned-away connection.
const LINGER_BYTES: usize = 64 << 10;
/// Turned-away connections lingering at once; beyond, they are closed at once.
const MAX_LINGERING: usize = 64;

/// Answers connections a listener will not serve (it is at its cap) without reading
/// their request, so that turning one away costs a write and a close, never a wait
/// on the client.
///
/// The answer, a complete short HTTP response, fits the fresh socket's send buffer,
/// so writing it never waits on the client. The sending side is then shut, and what
/// the client had sent is read and thrown away for a moment ([`LINGER`],
/// [`LINGER_BYTES`]): closing a socket with unread bytes makes the kernel reset the
/// connection, and the client could lose the answer under the reset. At most
/// [`MAX_LINGERING`] connections are being turned away at once (each holds a
/// descriptor); past that a connection gets one non-blocking attempt at the answer
/// and is closed, so a flood cannot turn the refusals themselves into the exhaustion
/// they prevent.
#[derive(Clone)]
pub struct TurnAway {
    lingering: Arc<Semaphore>,
}

impl Default for TurnAway {
    fn default() -> Self {
        TurnAway {
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
        }
    }
}

impl TurnAway {
    /// Writes `answer` (if any; `None` just closes, as for a TLS listener, where
    /// plain text would be garbage) and closes the connection.
    pub fn send(&self, stream: TcpStream, answer: Option<Vec<u8>>) {
        let Some(answer) = answer else {
            return;
        };
        let Ok(permit) = self.lingering.clone().try_acquire_owned() else {
            let _ = stream.try_write(&answer);
            return;
        };
        tokio::spawn(async move {
            let mut stream = stream;
            let written = tokio::time::timeout(LINGER, stream.write_all(&answer)).await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            let mut read = 0;
            let _ = tokio::time::timeout(LINGER, async {
                while read < LINGER_BYTES {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
            })
            .await;
            drop(permit);
        });
    }
}

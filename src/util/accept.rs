//! The accept loop's one hard case, shared by the browsers' listener, the admin
//! listener and the demo console server: `accept` failing.
//!
//! Running out of file descriptors (EMFILE/ENFILE) is transient, so a failed accept
//! is not the end of the server: [`Acceptor::accept`] backs off (10 ms doubling to
//! 1 s), retries, and logs at most once a second with the count of failures, so
//! neither the CPU nor the log spins while the process is at its limit. No crate does
//! just this (tokio's listener returns the error; retry crates are built for calls
//! that give up), and it is a few lines.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
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

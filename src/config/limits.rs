//! `[limits]`: how many sessions, how long each step may take, what one client
//! address may do, and how many connections may be unfinished (not yet a session) at
//! once.
//!
//! The caps on unfinished connections default to shares of the process's open-file
//! limit (`RLIMIT_NOFILE`, read at start): a connection that has not become a session
//! holds one descriptor, a session two (browser and console server), and the admin
//! listener and the process itself need some, so the unfinished ones may take a
//! quarter of what is left after a reserve, and one client address a quarter of that
//! ([`pending_defaults`]).

use super::value::{pick_duration, pick_required_duration, DurationValue};
use super::{ConfigError, ServeArgs};
use crate::limits::ClientLimitsConfig;
use crate::relay::RelayConfig;
use serde::Deserialize;
use std::time::Duration;

const DEFAULT_MAX_SESSIONS: usize = 10_000;
const DEFAULT_HANDSHAKE_TIMEOUT: &str = "10s";
const DEFAULT_IDLE_TIMEOUT: &str = "off";
const DEFAULT_MAX_DURATION: &str = "off";
const DEFAULT_PING_INTERVAL: &str = "30s";
const DEFAULT_GRACE: &str = "30s";
const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
const DEFAULT_MAX_SESSIONS_PER_CLIENT: usize = 100;
const DEFAULT_HANDSHAKES_PER_SECOND_PER_CLIENT: f64 = 20.0;
const DEFAULT_HANDSHAKE_BURST_PER_CLIENT: f64 = 40.0;
/// Descriptors kept back from the default caps: the admin listener's 32 connections,
/// the listeners, the log, key and recording files, DNS.
const FD_RESERVE: u64 = 64;

/// `[limits]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    max_sessions: Option<usize>,
    handshake_timeout: Option<DurationValue>,
    idle_timeout: Option<DurationValue>,
    max_duration: Option<DurationValue>,
    ping_interval: Option<DurationValue>,
    grace: Option<DurationValue>,
    max_message: Option<usize>,
    max_sessions_per_client: Option<usize>,
    handshakes_per_second_per_client: Option<f64>,
    handshake_burst_per_client: Option<f64>,
    max_pending: Option<usize>,
    max_pending_per_client: Option<usize>,
}

/// The proxy's limits.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Concurrent sessions in all, then 503.
    pub max_sessions: usize,
    /// Time from a connection's accept until it is a session: its PROXY header, TLS
    /// and every HTTP request with its body, keep-alive pauses included (and a
    /// console server's TLS).
    pub handshake_timeout: Duration,
    /// Drain time on SIGTERM before sessions are closed with 1001.
    pub grace: Duration,
    /// Per session: heartbeat, idle and duration limits, largest message.
    pub relay: RelayConfig,
    /// Per client address: concurrent sessions and handshake rate.
    pub per_client: ClientLimitsConfig,
    /// Connections that have not become sessions yet, in all; at the cap a new one
    /// gets a fast 503. 0: no cap.
    pub max_pending: usize,
    /// The same per client address (an IPv6 client is its /64); a fast 429 over it.
    /// 0: no cap.
    pub max_pending_per_client: usize,
}

/// The default caps on unfinished connections for a process allowed `nofile` open
/// files (`None`: unlimited): (in all, per client address). See the module's doc.
pub fn pending_defaults(nofile: Option<u64>) -> (usize, usize) {
    let nofile = nofile.unwrap_or(1 << 20);
    let usable = nofile.saturating_sub(FD_RESERVE.min(nofile / 4));
    let total = (usable / 4).clamp(8, 4096);
    let per_client = (total / 4).clamp(2, 256);
    (total as usize, per_client as usize)
}

/// The process's open-file limit (the soft one, which is what `accept` runs into).
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

pub(super) fn merge(f: LimitsFile, a: &ServeArgs) -> Result<LimitsConfig, ConfigError> {
    let max_sessions = a
        .max_sessions
        .or(f.max_sessions)
        .unwrap_or(DEFAULT_MAX_SESSIONS);
    if max_sessions == 0 {
        return Err(ConfigError::Zero {
            option: "limits.max_sessions",
        });
    }
    let relay = RelayConfig {
        ping_interval: pick_duration(
            "limits.ping_interval",
            &a.ping_interval,
            f.ping_interval,
            DEFAULT_PING_INTERVAL,
        )?,
        idle_timeout: pick_duration(
            "limits.idle_timeout",
            &a.idle_timeout,
            f.idle_timeout,
            DEFAULT_IDLE_TIMEOUT,
        )?,
        max_duration: pick_duration(
            "limits.max_duration",
            &a.max_duration,
            f.max_duration,
            DEFAULT_MAX_DURATION,
        )?,
        max_message: a
            .max_message
            .or(f.max_message)
            .unwrap_or(DEFAULT_MAX_MESSAGE),
        ..RelayConfig::default()
    };
    let rate = |option: &'static str, v: Option<f64>, default: f64| match v {
        None => Ok(default),
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Some(x) => Err(ConfigError::Rate { option, value: x }),
    };
    let per_client = ClientLimitsConfig {
        max_sessions_per_client: a
            .max_sessions_per_client
            .or(f.max_sessions_per_client)
            .unwrap_or(DEFAULT_MAX_SESSIONS_PER_CLIENT),
        handshakes_per_second: rate(
            "limits.handshakes_per_second_per_client",
            a.handshakes_per_second_per_client
                .or(f.handshakes_per_second_per_client),
            DEFAULT_HANDSHAKES_PER_SECOND_PER_CLIENT,
        )?,
        handshake_burst: rate(
            "limits.handshake_burst_per_client",
            a.handshake_burst_per_client
                .or(f.handshake_burst_per_client),
            DEFAULT_HANDSHAKE_BURST_PER_CLIENT,
        )?,
    };
    let (default_pending, default_pending_per_client) = pending_defaults(open_file_limit());
    Ok(LimitsConfig {
        max_pending: a.max_pending.or(f.max_pending).unwrap_or(default_pending),
        max_pending_per_client: a
            .max_pending_per_client
            .or(f.max_pending_per_client)
            .unwrap_or(default_pending_per_client),
        max_sessions,
        handshake_timeout: pick_required_duration(
            "limits.handshake_timeout",
            &a.handshake_timeout,
            f.handshake_timeout,
            DEFAULT_HANDSHAKE_TIMEOUT,
        )?,
        grace: pick_duration("limits.grace", &a.grace, f.grace, DEFAULT_GRACE)?.unwrap_or_default(),
        relay,
        per_client,
    })
}

#[cfg(test)]
mod tests {
    use super::pending_defaults;

    #[test]
    fn the_pending_caps_leave_most_descriptors_to_sessions_and_admin() {
        // (open-file limit) → (in all, per client)
        assert_eq!(pending_defaults(Some(100)), (18, 4));
        assert_eq!(pending_defaults(Some(1024)), (240, 60));
        assert_eq!(pending_defaults(Some(65536)), (4096, 256));
        assert_eq!(pending_defaults(None), (4096, 256));
        assert_eq!(pending_defaults(Some(16)), (8, 2));
        for nofile in [64, 100, 256, 1024, 4096, 20_000] {
            let (total, per_client) = pending_defaults(Some(nofile));
            assert!(total as u64 <= nofile / 4, "{nofile}: {total}");
            assert!(
                per_client < total,
                "{nofile}: one client could fill the cap"
            );
        }
    }
}

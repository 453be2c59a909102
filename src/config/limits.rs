//! `[limits]`: how many sessions, how long each step may take, and what one client
//! address may do.

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
}

/// The proxy's limits.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Concurrent sessions in all, then 503.
    pub max_sessions: usize,
    /// Time for the TLS handshake and the HTTP request (and a console server's TLS).
    pub handshake_timeout: Duration,
    /// Drain time on SIGTERM before sessions are closed with 1001.
    pub grace: Duration,
    /// Per session: heartbeat, idle and duration limits, largest message.
    pub relay: RelayConfig,
    /// Per client address: concurrent sessions and handshake rate.
    pub per_client: ClientLimitsConfig,
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
    Ok(LimitsConfig {
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

//! Metrics: the proxy's Prometheus registry and the small calls the request path makes.
//!
//! The front calls [`Metrics::refused`] and [`Metrics::handshake_done`], admission
//! [`Metrics::backend_connected`]; everything that is state rather than an event (live
//! sessions, sessions opened, bytes relayed, trusted keys) is read from its owner at
//! scrape time by a collector, so it cannot drift from the truth and costs nothing
//! on the request path. Bytes come from the sessions' live counters
//! ([`crate::session::SessionStats`]), so the byte counters grow while sessions run.
//!
//! Names (OpenMetrics text, served at the admin listener's `/metrics`):
//!
//! | name | type | what |
//! | --- | --- | --- |
//! | `consolegate_sessions_live` | gauge | sessions relaying now |
//! | `consolegate_sessions_total` | counter | sessions opened since start |
//! | `consolegate_refusals_total{code}` | counter | requests refused, by refusal code |
//! | `consolegate_bytes_total{direction="up"\|"down"}` | counter | payload bytes relayed (up: browser → console) |
//! | `consolegate_handshake_duration_seconds` | histogram | request arrival → 101 answer, sessions that opened |
//! | `consolegate_backend_connect_duration_seconds` | histogram | TCP connect to the console server, successful |
//! | `consolegate_trusted_key_age_seconds{kid}` | gauge | seconds since the key file's modification time |
//! | `consolegate_deny_list_rules{kind="jti"\|"sub"}` | gauge | rules in the deny list in force |
//! | `consolegate_recordings_started_total` | counter | session recordings started (file created) |
//! | `consolegate_recordings_failed_total` | counter | recordings that could not be created (session refused) or failed mid-session (session ended) |
//! | `consolegate_recordings_active` | gauge | recordings being written now |
//! | `consolegate_recording_bytes_total` | counter | bytes written to recording files |
//! | `consolegate_recordings_pruned_total` | counter | recordings removed by retention |
//! | `consolegate_reload_success{part}` | gauge | 1 when the part loaded at start or its last SIGHUP reload, 0 when that failed ([`crate::reload`]) |
//! | `consolegate_reload_timestamp_seconds{part}` | gauge | Unix time of that load |
//! | `consolegate_build_info{version}` | info | the running version |

use crate::denylist::DenyList;
use crate::keys::KeySet;
use crate::recording::RecordingStats;
use crate::session::Sessions;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type CodeLabel = [(&'static str, &'static str); 1];

/// A trusted key's id and its file's modification time.
type KeyAge = (String, Option<SystemTime>);

/// The proxy's metrics. One per proxy: no global registry, so tests
/// running several proxies in one process each see their own numbers.
pub struct Metrics {
    registry: Registry,
    refusals: Family<CodeLabel, Counter>,
    handshake: Histogram,
    connect: Histogram,
    /// Written on load and reload, read by the collector at scrape time.
    keys: Arc<Mutex<Vec<KeyAge>>>,
    /// Per reload part: 1 loaded, 0 failed.
    reload_success: Family<PartLabel, Gauge>,
    /// Per reload part: when it was last loaded or tried.
    reload_time: Family<PartLabel, Gauge<f64, AtomicU64>>,
}

type PartLabel = [(&'static str, &'static str); 1];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry reading live state from `sessions`, `deny` and `recording` at each
    /// scrape.
    pub fn new(sessions: Sessions, deny: Arc<DenyList>, recording: Arc<RecordingStats>) -> Metrics {
        let mut registry = Registry::default();
        let refusals = Family::<CodeLabel, Counter>::default();
        registry.register(
            "consolegate_refusals",
            "Requests refused before the upgrade, by refusal code",
            refusals.clone(),
        );
        // 1 ms .. ~16 s: a loopback connect is sub-millisecond, a TLS handshake over a
        // bad link or a slow DNS answer takes seconds.
        let handshake = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register_with_unit(
            "consolegate_handshake_duration",
            "Time from the request's arrival to the 101 answer, for sessions that opened",
            Unit::Seconds,
            handshake.clone(),
        );
        let connect = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        registry.register_with_unit(
            "consolegate_backend_connect_duration",
            "Time to connect to the console server, successful connects",
            Unit::Seconds,
            connect.clone(),
        );
        registry.register(
            "consolegate_build",
            "The running consolegate version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let reload_success = Family::<PartLabel, Gauge>::default();
        registry.register(
            "consolegate_reload_success",
            "1 when the part loaded at start or its last reload, 0 when that failed",
            reload_success.clone(),
        );
        let reload_time = Family::<PartLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "consolegate_reload_timestamp",
            "Unix time the part was last loaded or tried",
            Unit::Seconds,
            reload_time.clone(),
        );
        let keys = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(Live {
            sessions,
            deny,
            keys: keys.clone(),
            recording,
        }));
        Metrics {
            registry,
            refusals,
            handshake,
            connect,
            keys,
            reload_success,
            reload_time,
        }
    }

    /// A part of the configuration was loaded (`ok`) or failed to load, now.
    pub fn reloaded(&self, part: &'static str, ok: bool) {
        let label = [("part", part)];
        self.reload_success.get_or_create(&label).set(i64::from(ok));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.reload_time.get_or_create(&label).set(now);
    }

    /// A request was refused with this code (before the upgrade).
    pub fn refused(&self, code: &'static str) {
        self.refusals.get_or_create(&[("code", code)]).inc();
    }

    /// A session opened `d` after its request arrived.
    pub fn handshake_done(&self, d: Duration) {
        self.handshake.observe(d.as_secs_f64());
    }

    /// The console server answered a connect after `d`.
    pub fn backend_connected(&self, d: Duration) {
        self.connect.observe(d.as_secs_f64());
    }

    /// The trusted keys now in force (start and every reload).
    pub fn keys_loaded(&self, keys: &KeySet) {
        let ages = keys
            .iter()
            .map(|(kid, _)| (kid.to_string(), keys.modified(kid)))
            .collect();
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = ages;
    }

    /// The OpenMetrics text of every metric ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error would come from a collector
        // bug, and a partial page is still better than none.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(cause = %e, "metrics encoding failed");
        }
        out
    }
}

/// State read at scrape time.
struct Live {
    sessions: Sessions,
    deny: Arc<DenyList>,
    keys: Arc<Mutex<Vec<KeyAge>>>,
    recording: Arc<RecordingStats>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for Live {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = ConstGauge::new(i64::try_from(self.sessions.live_count()).unwrap_or(i64::MAX));
        live.encode(enc.encode_descriptor(
            "consolegate_sessions_live",
            "Sessions relaying now",
            None,
            live.metric_type(),
        )?)?;

        let opened = ConstCounter::new(self.sessions.opened_total());
        opened.encode(enc.encode_descriptor(
            "consolegate_sessions",
            "Sessions opened since start",
            None,
            opened.metric_type(),
        )?)?;

        let (up, down) = self.sessions.bytes_total();
        let mut bytes = enc.encode_descriptor(
            "consolegate_bytes",
            "Payload bytes relayed, live sessions included (up: browser to console server)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (direction, n) in [("up", up), ("down", down)] {
            ConstCounter::new(n).encode(bytes.encode_family(&[("direction", direction)])?)?;
        }

        let now = SystemTime::now();
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut ages = enc.encode_descriptor(
            "consolegate_trusted_key_age",
            "Seconds since each trusted key's file was last modified",
            Some(&Unit::Seconds),
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kid, modified) in &keys {
            let Some(t) = modified else { continue };
            let age = now.duration_since(*t).map(|d| d.as_secs()).unwrap_or(0);
            ConstGauge::new(i64::try_from(age).unwrap_or(i64::MAX))
                .encode(ages.encode_family(&[("kid", kid.as_str())])?)?;
        }

        let (jti, sub) = self.deny.rules().len();
        let mut deny = enc.encode_descriptor(
            "consolegate_deny_list_rules",
            "Rules in the deny list in force, by kind",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, n) in [("jti", jti), ("sub", sub)] {
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                .encode(deny.encode_family(&[("kind", kind)])?)?;
        }

        let r = &self.recording;
        for (name, help, n) in [
            (
                "consolegate_recordings_started",
                "Session recordings started",
                r.started(),
            ),
            (
                "consolegate_recordings_failed",
                "Recordings that could not be created or failed mid-session",
                r.failed(),
            ),
            (
                "consolegate_recording_bytes",
                "Bytes written to recording files",
                r.bytes_written(),
            ),
            (
                "consolegate_recordings_pruned",
                "Recordings removed by retention",
                r.pruned(),
            ),
        ] {
            let c = ConstCounter::new(n);
            c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let active = ConstGauge::new(i64::try_from(r.active()).unwrap_or(i64::MAX));
        active.encode(enc.encode_descriptor(
            "consolegate_recordings_active",
            "Recordings being written now",
            None,
            active.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric() {
        let m = Metrics::new(
            Sessions::new(4),
            Arc::new(DenyList::default()),
            Arc::default(),
        );
        m.refused("expired");
        m.refused("expired");
        m.handshake_done(Duration::from_millis(3));
        m.backend_connected(Duration::from_micros(300));
        let text = m.render();
        for needle in [
            "consolegate_sessions_live 0\n",
            "consolegate_sessions_total 0\n",
            "consolegate_refusals_total{code=\"expired\"} 2\n",
            "consolegate_bytes_total{direction=\"up\"} 0\n",
            "consolegate_bytes_total{direction=\"down\"} 0\n",
            "consolegate_handshake_duration_seconds_count 1\n",
            "consolegate_backend_connect_duration_seconds_count 1\n",
            "consolegate_deny_list_rules{kind=\"jti\"} 0\n",
            "consolegate_recordings_started_total 0\n",
            "consolegate_recordings_failed_total 0\n",
            "consolegate_recording_bytes_total 0\n",
            "consolegate_recordings_pruned_total 0\n",
            "consolegate_recordings_active 0\n",
            "consolegate_build_info{version=\"",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}

//! Abuse limits that the global session limit cannot express: per client address
//! (concurrent sessions, handshakes per second), per ticket (concurrent sessions of
//! one `jti`), and a rate limiter for refusal log lines so a storm of bad requests
//! cannot fill the disk.
//!
//! Everything here is in the proxy's own memory and bounded: the per-client table is
//! pruned of entries that hold nothing, the per-ticket table only holds live
//! sessions (bounded by `max_sessions`), and the refusal log keeps one window per
//! refusal code (a fixed set of `&'static str`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The per-client limits, as configured (`[limits]`). Zero switches a limit off.
/// The per-ticket limit ([`TicketSessions`]) and the refusal log's rate
/// ([`RefusalLog`]) are single numbers from `[tickets]` and `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLimitsConfig {
    /// Concurrent sessions of one client address (an IPv6 client is its /64).
    pub max_sessions_per_client: usize,
    /// Sustained WebSocket handshakes per second from one client address.
    pub handshakes_per_second: f64,
    /// Handshakes one client may make at once before the rate applies.
    pub handshake_burst: f64,
}

/// Why a client was refused by its own limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "too many console sessions from your address (limit {limit}); close some and try again"
    )]
    TooManySessions { limit: usize },
    #[error("too many connection attempts from your address; try again in a moment")]
    TooManyHandshakes,
}

/// The key a client's limits are kept under: its address, with an IPv6 client
/// reduced to its /64 (one host usually owns a whole /64, and counting single v6
/// addresses would make the limit free to dodge).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(o.into())
        }
        v4 => v4,
    }
}

/// Most client entries kept before pruning; a flood from more distinct addresses
/// than this still costs bounded memory (see [`ClientLimits::handshake`]).
const MAX_CLIENT_ENTRIES: usize = 100_000;

struct ClientState {
    sessions: usize,
    tokens: f64,
    refilled: Instant,
}

/// Per-client-address session counts and handshake token buckets.
pub struct ClientLimits {
    cfg: ClientLimitsConfig,
    table: Mutex<HashMap<IpAddr, ClientState>>,
}

/// A session's place in its client's count; dropping it gives the place back.
pub struct ClientSlot {
    limits: Arc<ClientLimits>,
    key: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut t = self.limits.lock();
        if let Some(s) = t.get_mut(&self.key) {
            s.sessions = s.sessions.saturating_sub(1);
        }
    }
}

impl ClientLimits {
    pub fn new(cfg: ClientLimitsConfig) -> Self {
        ClientLimits {
            cfg,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, ClientState>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one handshake token for `ip`, or refuses when its bucket is empty.
    pub fn handshake(&self, ip: IpAddr, now: Instant) -> Result<(), LimitError> {
        let rate = self.cfg.handshakes_per_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = self.cfg.handshake_burst.max(1.0);
        let key = client_key(ip);
        let mut t = self.lock();
        if t.len() >= MAX_CLIENT_ENTRIES && !t.contains_key(&key) {
            prune(&mut t, rate, burst, now);
            if t.len() >= MAX_CLIENT_ENTRIES {
                // Fail open on the rate (the global session limit still holds)
                // rather than grow without bound or refuse strangers wholesale.
                return Ok(());
            }
        }
        let s = t.entry(key).or_insert(ClientState {
            sessions: 0,
            tokens: burst,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(burst);
        s.refilled = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            Err(LimitError::TooManyHandshakes)
        }
    }

    /// Counts a new session of `ip`, or refuses when the client is at its limit.
    pub fn session(self: &Arc<Self>, ip: IpAddr) -> Result<Option<ClientSlot>, LimitError> {
        let limit = self.cfg.max_sessions_per_client;
        if limit == 0 {
            return Ok(None);
        }
        let key = client_key(ip);
        let mut t = self.lock();
        let s = t.entry(key).or_insert(ClientState {
            sessions: 0,
            tokens: self.cfg.handshake_burst.max(1.0),
            refilled: Instant::now(),
        });
        if s.sessions >= limit {
            return Err(LimitError::TooManySessions { limit });
        }
        s.sessions += 1;
        Ok(Some(ClientSlot {
            limits: self.clone(),
            key,
        }))
    }

    /// Live sessions counted for `ip` (for tests and the admin view).
    pub fn sessions_of(&self, ip: IpAddr) -> usize {
        self.lock().get(&client_key(ip)).map_or(0, |s| s.sessions)
    }

    /// Entries in the table (for tests: it must stay bounded).
    pub fn entries(&self) -> usize {
        self.lock().len()
    }

    /// Drops entries that hold nothing: no live session and a full bucket.
    pub fn prune(&self, now: Instant) {
        let rate = self.cfg.handshakes_per_second;
        let burst = self.cfg.handshake_burst.max(1.0);
        prune(&mut self.lock(), rate, burst, now);
    }
}

fn prune(t: &mut HashMap<IpAddr, ClientState>, rate: f64, burst: f64, now: Instant) {
    t.retain(|_, s| {
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.sessions > 0 || (rate > 0.0 && s.tokens + elapsed * rate < burst)
    });
}

/// Live sessions per ticket, to enforce `max_sessions_per_ticket`.
///
/// When a ticket is over its limit the *oldest* session is replaced rather than the
/// new one refused: the common cause is a person reconnecting (a reload, noVNC's
/// reconnect after a network blip) while the old session has not noticed it is
/// dead yet, and refusing would lock them out until the heartbeat gives up. It also
/// means a stolen ticket cannot lock its owner out; the owner's reconnect pushes
/// the intruder off, and both ends are logged.
pub struct TicketSessions {
    max: usize,
    table: Mutex<HashMap<String, VecDeque<u64>>>,
}

/// A session's place in its ticket's list; dropping it removes the session.
pub struct TicketSlot {
    owner: Arc<TicketSessions>,
    key: String,
    id: u64,
}

impl Drop for TicketSlot {
    fn drop(&mut self) {
        let mut t = self.owner.lock();
        if let Some(ids) = t.get_mut(&self.key) {
            ids.retain(|i| *i != self.id);
            if ids.is_empty() {
                t.remove(&self.key);
            }
        }
    }
}

impl TicketSessions {
    pub fn new(max: usize) -> Self {
        TicketSessions {
            max,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<u64>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records session `id` of the ticket `key`; returns its slot and the ids of the
    /// older sessions it replaces (the caller stops them). `connections_per_client` is
    /// how many connections one console client opens with a ticket: 1, or SPICE's one
    /// per channel, so the limit counts clients (browser tabs), not sockets.
    pub fn add(
        self: &Arc<Self>,
        key: String,
        id: u64,
        connections_per_client: usize,
    ) -> (Option<TicketSlot>, Vec<u64>) {
        if self.max == 0 {
            return (None, Vec::new());
        }
        let limit = self.max.saturating_mul(connections_per_client.max(1));
        let mut t = self.lock();
        let ids = t.entry(key.clone()).or_default();
        ids.push_back(id);
        let mut replaced = Vec::new();
        while ids.len() > limit {
            if let Some(old) = ids.pop_front() {
                replaced.push(old);
            }
        }
        drop(t);
        let slot = TicketSlot {
            owner: self.clone(),
            key,
            id,
        };
        (Some(slot), replaced)
    }

    /// Tickets with live sessions (for tests: the table must empty out).
    pub fn tickets(&self) -> usize {
        self.lock().len()
    }
}

/// Decides which refusal log lines are written: at most `per_second` per refusal
/// code in each one-second window; the rest are counted and reported in one
/// "suppressed" line per code and window.
pub struct RefusalLog {
    per_second: u32,
    windows: Mutex<HashMap<&'static str, Window>>,
}

struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one refusal's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogVerdict {
    /// Write this refusal's line.
    pub log: bool,
    /// Before it, report this many refusals of the same code suppressed in the
    /// window that just ended (0: nothing to report).
    pub suppressed_before: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl RefusalLog {
    /// `per_second` 0 logs every refusal.
    pub fn new(per_second: u32) -> Self {
        RefusalLog {
            per_second,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn note(&self, code: &'static str, now: Instant) -> LogVerdict {
        if self.per_second == 0 {
            return LogVerdict {
                log: true,
                suppressed_before: 0,
            };
        }
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let win = w.entry(code).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        let mut suppressed_before = 0;
        if now.saturating_duration_since(win.start) >= WINDOW {
            suppressed_before = win.suppressed;
            *win = Window {
                start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if win.logged < self.per_second {
            win.logged += 1;
            LogVerdict {
                log: true,
                suppressed_before,
            }
        } else {
            win.suppressed += 1;
            LogVerdict {
                log: false,
                suppressed_before,
            }
        }
    }

    /// Takes the counts of windows that have ended with suppressed refusals (called
    /// once a second, so a storm that stops still gets its summary).
    pub fn flush(&self, now: Instant) -> Vec<(&'static str, u64)> {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        w.retain(|code, win| {
            if now.saturating_duration_since(win.start) < WINDOW {
                return true;
            }
            if win.suppressed > 0 {
                out.push((*code, win.suppressed));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ClientLimitsConfig {
        ClientLimitsConfig {
            max_sessions_per_client: 2,
            handshakes_per_second: 10.0,
            handshake_burst: 3.0,
        }
    }

    #[test]
    fn the_handshake_bucket_allows_a_burst_then_the_rate() {
        let l = ClientLimits::new(cfg());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.handshake(ip, t0), Ok(()));
        }
        assert_eq!(l.handshake(ip, t0), Err(LimitError::TooManyHandshakes));
        // Another client is not affected.
        assert_eq!(l.handshake("192.0.2.2".parse().unwrap(), t0), Ok(()));
        // 100 ms at 10/s is one token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.handshake(ip, t1), Ok(()));
        assert_eq!(l.handshake(ip, t1), Err(LimitError::TooManyHandshakes));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let l = Arc::new(ClientLimits::new(cfg()));
        let a = l.session("2001:db8::1".parse().unwrap()).unwrap();
        let b = l.session("2001:db8::2".parse().unwrap()).unwrap();
        assert!(l.session("2001:db8::3".parse().unwrap()).is_err());
        assert!(l.session("2001:db8:0:1::3".parse().unwrap()).is_ok());
        drop((a, b));
        assert_eq!(l.sessions_of("2001:db8::1".parse().unwrap()), 0);
    }

    #[test]
    fn the_client_table_forgets_clients_that_hold_nothing() {
        let l = ClientLimits::new(cfg());
        let t0 = Instant::now();
        for i in 0..50u8 {
            l.handshake(IpAddr::from([10, 0, 0, i]), t0).unwrap();
        }
        assert_eq!(l.entries(), 50);
        l.prune(t0 + Duration::from_secs(1));
        assert_eq!(l.entries(), 0);
    }

    #[test]
    fn a_third_session_of_a_ticket_replaces_the_oldest() {
        let t = Arc::new(TicketSessions::new(2));
        let (a, r) = t.add("j".into(), 1, 1);
        assert!(r.is_empty());
        let (_b, r) = t.add("j".into(), 2, 1);
        assert!(r.is_empty());
        let (_c, r) = t.add("j".into(), 3, 1);
        assert_eq!(r, vec![1]);
        drop(a); // the replaced session ends later; nothing breaks
        let (_d, r) = t.add("j".into(), 4, 1);
        assert_eq!(r, vec![2]);
    }

    #[test]
    fn a_spice_client_counts_as_one_client_however_many_channels_it_opens() {
        // Two SPICE tabs of 16 channels each fit a limit of 2 clients; the 33rd
        // connection replaces the oldest channel.
        let t = Arc::new(TicketSessions::new(2));
        let slots: Vec<_> = (1..=32)
            .map(|id| {
                let (slot, r) = t.add("s".into(), id, 16);
                assert!(r.is_empty(), "connection {id} replaced {r:?}");
                slot
            })
            .collect();
        let (_extra, r) = t.add("s".into(), 33, 16);
        assert_eq!(r, vec![1]);
        drop(slots);
    }

    #[test]
    fn refusal_lines_are_capped_per_code_and_summarised() {
        let log = RefusalLog::new(5);
        let t0 = Instant::now();
        let logged = (0..100).filter(|_| log.note("bad_sig", t0).log).count();
        assert_eq!(logged, 5);
        assert!(log.note("origin", t0).log, "codes have separate windows");
        let v = log.note("bad_sig", t0 + Duration::from_millis(1500));
        assert_eq!(
            v,
            LogVerdict {
                log: true,
                suppressed_before: 95
            }
        );
        let t2 = t0 + Duration::from_secs(5);
        assert!(log.flush(t2).is_empty());
        for _ in 0..7 {
            log.note("bad_sig", t2);
        }
        assert_eq!(log.flush(t2 + Duration::from_secs(2)), vec![("bad_sig", 2)]);
    }
}

//! Sessions: the limit on concurrent sessions, the registry of live ones, and drain.
//!
//! A session holds a [`SessionGuard`] for its whole life; dropping it (however the
//! task ends) frees the slot and removes the entry, so the count can never leak.
//!
//! Each session also carries [`SessionStats`], byte counters the relay bumps as it
//! writes, so the admin API shows live byte counts and `/metrics` totals grow while
//! sessions run, not only when they end.

pub use crate::relay::SessionStats;
use crate::relay::Stop;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// What is known about a live session (for listing and killing).
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: u64,
    pub client: SocketAddr,
    pub target: SocketAddr,
    pub sub: Option<String>,
    pub jti: Option<String>,
    pub kid: String,
    pub started: SystemTime,
    /// Payload bytes so far, shared with the relay that updates them.
    pub stats: Arc<SessionStats>,
}

struct Entry {
    info: SessionInfo,
    stop: watch::Sender<Stop>,
}

struct Inner {
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    /// Woken whenever a session ends, for drain to notice the last one.
    ended: Notify,
    /// Bytes of the sessions that ended (up, down). Changed under the `live` lock
    /// together with the removal, so live + ended never counts a session twice or
    /// not at all, and the `/metrics` byte counters never go backwards.
    ended_bytes: Mutex<(u64, u64)>,
}

/// The registry of live sessions, shared by all connections.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

/// A reserved slot, taken before the console server is dialled so a full proxy
/// refuses quickly (503) instead of opening connections it cannot serve.
pub struct Slot {
    permit: OwnedSemaphorePermit,
}

/// Held by a running session; its drop ends the session's registration.
pub struct SessionGuard {
    inner: Arc<Inner>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl SessionGuard {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = live.remove(&self.id) {
            let mut ended = self
                .inner
                .ended_bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            ended.0 = ended.0.saturating_add(e.info.stats.up());
            ended.1 = ended.1.saturating_add(e.info.stats.down());
        }
        drop(live);
        self.inner.ended.notify_waiters();
    }
}

impl Sessions {
    pub fn new(max_sessions: usize) -> Self {
        Sessions {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(max_sessions.min(Semaphore::MAX_PERMITS))),
                live: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                ended: Notify::new(),
                ended_bytes: Mutex::new((0, 0)),
            }),
        }
    }

    /// A slot for a new session, or `None` when the limit is reached.
    pub fn reserve(&self) -> Option<Slot> {
        self.inner
            .slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| Slot { permit })
    }

    /// Registers a session in a reserved slot; returns its guard and the channel the
    /// relay watches for drain and kill.
    pub fn register(
        &self,
        slot: Slot,
        mut info: SessionInfo,
    ) -> (SessionGuard, watch::Receiver<Stop>) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        info.id = id;
        let (stop, stop_rx) = watch::channel(Stop::Run);
        let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(id, Entry { info, stop });
        drop(live);
        (
            SessionGuard {
                inner: self.inner.clone(),
                id,
                _permit: slot.permit,
            },
            stop_rx,
        )
    }

    pub fn live_count(&self) -> usize {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Sessions registered since start (the `/metrics` sessions counter).
    pub fn opened_total(&self) -> u64 {
        self.inner.next_id.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Payload bytes (up, down) of every session since start, live ones included.
    pub fn bytes_total(&self) -> (u64, u64) {
        let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        let (mut up, mut down) = *self
            .inner
            .ended_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for e in live.values() {
            up = up.saturating_add(e.info.stats.up());
            down = down.saturating_add(e.info.stats.down());
        }
        (up, down)
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<SessionInfo> = live.values().map(|e| e.info.clone()).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Asks every session matching `pred` to stop; returns how many were asked.
    pub fn stop_where(&self, stop: Stop, pred: impl Fn(&SessionInfo) -> bool) -> usize {
        let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for e in live.values().filter(|e| pred(&e.info)) {
            let _ = e.stop.send(stop.clone());
            n += 1;
        }
        n
    }

    /// Waits until no session is live or `deadline` passes; true when none is left.
    pub async fn wait_empty(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let ended = self.inner.ended.notified();
            tokio::pin!(ended);
            // Register interest before looking, so an end between the look and the
            // wait is not missed.
            ended.as_mut().enable();
            if self.live_count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, ended).await.is_err() {
                return self.live_count() == 0;
            }
        }
    }

    /// Drain: sessions get `grace` to end by themselves, then are closed with 1001,
    /// and get a few seconds more to say goodbye.
    pub async fn drain(&self, grace: Duration) -> bool {
        if self.wait_empty(grace).await {
            return true;
        }
        self.stop_where(Stop::Drain, |_| true);
        self.wait_empty(Duration::from_secs(5)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SessionInfo {
        SessionInfo {
            id: 0,
            client: "127.0.0.1:1".parse().unwrap(),
            target: "127.0.0.1:5900".parse().unwrap(),
            sub: Some("alice".into()),
            jti: None,
            kid: "k".into(),
            started: SystemTime::now(),
            stats: Arc::default(),
        }
    }

    #[test]
    fn the_limit_frees_a_slot_when_a_session_ends() {
        let s = Sessions::new(1);
        let slot = s.reserve().unwrap();
        assert!(s.reserve().is_none());
        let (guard, _rx) = s.register(slot, info());
        assert_eq!(s.live_count(), 1);
        assert!(s.reserve().is_none());
        drop(guard);
        assert_eq!(s.live_count(), 0);
        assert!(s.reserve().is_some());
    }

    // Paused clock: the grace period passes exactly, however slow the machine.
    #[tokio::test(start_paused = true)]
    async fn drain_closes_sessions_that_outlive_the_grace_period() {
        let s = Sessions::new(10);
        let (guard, mut rx) = s.register(s.reserve().unwrap(), info());
        let task = tokio::spawn(async move {
            rx.changed().await.unwrap();
            assert_eq!(*rx.borrow(), Stop::Drain);
            drop(guard);
        });
        assert!(s.drain(Duration::from_millis(50)).await);
        task.await.unwrap();
    }

    #[test]
    fn kill_by_subject_reaches_only_that_users_sessions() {
        let s = Sessions::new(10);
        let (_a, rx_a) = s.register(s.reserve().unwrap(), info());
        let (_b, rx_b) = s.register(
            s.reserve().unwrap(),
            SessionInfo {
                sub: Some("bob".into()),
                ..info()
            },
        );
        let n = s.stop_where(Stop::Kill("revoked".into()), |i| {
            i.sub.as_deref() == Some("alice")
        });
        assert_eq!(n, 1);
        assert_eq!(*rx_a.borrow(), Stop::Kill("revoked".into()));
        assert_eq!(*rx_b.borrow(), Stop::Run);
    }

    #[test]
    fn byte_totals_include_live_sessions_and_keep_those_that_ended() {
        let s = Sessions::new(10);
        let a = info();
        let (guard_a, _) = s.register(s.reserve().unwrap(), a.clone());
        let b = info();
        let (_guard_b, _) = s.register(s.reserve().unwrap(), b.clone());
        a.stats.add_up(10);
        a.stats.add_down(100);
        b.stats.add_down(1);
        assert_eq!(s.bytes_total(), (10, 101));
        drop(guard_a);
        b.stats.add_up(5);
        assert_eq!(s.bytes_total(), (15, 101));
        assert_eq!(s.opened_total(), 2);
    }
}

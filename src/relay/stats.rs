//! A session's live byte counters. The relay owns them (it is the only writer), the
//! session registry shares them so the admin API and `/metrics` see a running
//! session's bytes; defined here, next to their writer, so that the registry depends
//! on the relay and never the other way round.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live byte counters of one session. Written only by its relay (one relaxed add per
/// frame: an uncontended cache line, no measurable cost) and read by the admin API.
#[derive(Debug, Default)]
pub struct SessionStats {
    up: AtomicU64,
    down: AtomicU64,
}

impl SessionStats {
    /// Browser → console server payload bytes written.
    pub fn add_up(&self, n: u64) {
        self.up.fetch_add(n, Ordering::Relaxed);
    }
    /// Console server → browser payload bytes written.
    pub fn add_down(&self, n: u64) {
        self.down.fetch_add(n, Ordering::Relaxed);
    }
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

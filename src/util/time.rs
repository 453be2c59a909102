//! The wall clock as the ticket rules read it: whole Unix seconds. Ticket code takes
//! the time as an argument (it stays pure and testable); this is where the proxy, the
//! signer and the legacy sources get it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 if the clock is set before 1970.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

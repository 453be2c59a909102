//! Connections that have not become sessions yet ("pending"): counted in all and per
//! client address, and capped, so that clients that open connections and never finish
//! their requests cannot take the descriptors that sessions and new clients need.
//!
//! Every connection the listener accepts takes a [`PendingSlot`] before anything is
//! read from it, and gives it back when it ends or becomes a session (the slot lives
//! for the connection's pre-upgrade life in [`super::listener`]). At a cap the
//! connection is turned away at once (`too_many_connections`, 503, or
//! `too_many_client_connections`, 429; see [`crate::refusal`]), which costs a write
//! and a close. Together with the handshake deadline, which ends every pending
//! connection within `limits.handshake_timeout` of its accept (plus the time its last
//! answer takes), this bounds what unfinished connections can hold.
//!
//! Whose connection it is: the peer's address, counted by [`client_key`] (an IPv6
//! client by its /64). A trusted balancer's own address is not capped per client (all
//! its clients share it); when its PROXY header names the client, the connection
//! counts against that client from then on. Behind a balancer that names clients only
//! in `X-Forwarded-For` (per request, not per connection), only the total cap applies
//! and the balancer's own limits do the rest.

use crate::limits::client_key;
use crate::refusal::{Code, Refusal};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which cap a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Over {
    #[error(
        "too many unfinished connections to this proxy (limit {limit}); try again in a moment"
    )]
    Total { limit: usize },
    #[error(
        "too many unfinished connections from your address (limit {limit}); finish or close some and try again"
    )]
    Client { limit: usize },
}

impl Over {
    /// The refusal the turned-away connection gets.
    pub fn refusal(self) -> Refusal {
        let code = match self {
            Over::Total { .. } => Code::TooManyConnections,
            Over::Client { .. } => Code::TooManyClientConnections,
        };
        Refusal::new(code, self.to_string())
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only clients with at least one pending connection: the table is bounded by
    /// the total cap (or by the descriptors, without one).
    per_client: HashMap<IpAddr, usize>,
}

/// The pending connections, in all and per client.
pub struct Pending {
    /// In all; 0: no cap.
    max_total: usize,
    /// Per client key; 0: no cap.
    max_per_client: usize,
    counts: Mutex<Counts>,
}

/// One pending connection's place in the counts; dropping it gives the place back.
pub struct PendingSlot {
    pending: Arc<Pending>,
    /// The client key it is counted under, if any (not a trusted balancer's own).
    client: Option<IpAddr>,
}

impl Pending {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Pending> {
        Arc::new(Pending {
            max_total,
            max_per_client,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection, under `client` unless it is `None` (a trusted
    /// balancer), or says which cap it is over.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<PendingSlot, Over> {
        let key = client.map(client_key);
        let mut c = self.lock();
        if self.max_total > 0 && c.total >= self.max_total {
            return Err(Over::Total {
                limit: self.max_total,
            });
        }
        if let Some(key) = key {
            let n = c.per_client.get(&key).copied().unwrap_or(0);
            if self.max_per_client > 0 && n >= self.max_per_client {
                return Err(Over::Client {
                    limit: self.max_per_client,
                });
            }
            c.per_client.insert(key, n + 1);
        }
        c.total += 1;
        Ok(PendingSlot {
            pending: self.clone(),
            client: key,
        })
    }

    /// Connections pending now, in all.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Connections pending now of `ip`'s client key.
    pub fn of(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_client
            .get(&client_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

impl PendingSlot {
    /// A trusted balancer's PROXY header named the client behind this connection:
    /// from now on it counts against that client, or it is over the client's cap.
    pub fn name_client(&mut self, client: IpAddr) -> Result<(), Over> {
        let key = client_key(client);
        if self.client == Some(key) {
            return Ok(());
        }
        let pending = self.pending.clone();
        let mut c = pending.lock();
        let n = c.per_client.get(&key).copied().unwrap_or(0);
        if pending.max_per_client > 0 && n >= pending.max_per_client {
            return Err(Over::Client {
                limit: pending.max_per_client,
            });
        }
        c.per_client.insert(key, n + 1);
        if let Some(old) = self.client.replace(key) {
            release(&mut c, old);
        }
        Ok(())
    }
}

fn release(c: &mut Counts, key: IpAddr) {
    if let Some(n) = c.per_client.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            c.per_client.remove(&key);
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut c = self.pending.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(key) = self.client {
            release(&mut c, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_caps_hold_per_client_and_in_all_and_slots_give_their_place_back() {
        let p = Pending::new(4, 2);
        let a1 = p.admit(Some(ip("192.0.2.1"))).unwrap();
        let a2 = p.admit(Some(ip("192.0.2.1"))).unwrap();
        assert_eq!(
            p.admit(Some(ip("192.0.2.1"))).err(),
            Some(Over::Client { limit: 2 })
        );
        // An IPv6 client counts by its /64.
        let b1 = p.admit(Some(ip("2001:db8::1"))).unwrap();
        let b2 = p.admit(Some(ip("2001:db8::2"))).unwrap();
        assert!(p.admit(Some(ip("2001:db8::3"))).is_err());
        assert_eq!(p.total(), 4);
        assert_eq!(p.admit(None).err(), Some(Over::Total { limit: 4 }));
        drop((a1, b1));
        assert_eq!(p.of(ip("192.0.2.1")), 1);
        let _balancer = p.admit(None).unwrap();
        drop((a2, b2));
        assert_eq!(p.total(), 1);
        assert_eq!(p.of(ip("192.0.2.1")), 0);
        assert_eq!(p.lock().per_client.len(), 0, "empty entries are dropped");
    }

    #[test]
    fn a_client_named_by_a_balancer_is_counted_and_capped() {
        let p = Pending::new(0, 1);
        let mut via = p.admit(None).unwrap();
        via.name_client(ip("198.51.100.9")).unwrap();
        assert_eq!(p.of(ip("198.51.100.9")), 1);
        let mut again = p.admit(None).unwrap();
        assert_eq!(
            again.name_client(ip("198.51.100.9")),
            Err(Over::Client { limit: 1 })
        );
        again.name_client(ip("198.51.100.10")).unwrap();
        drop(via);
        assert_eq!(p.of(ip("198.51.100.9")), 0);
        assert_eq!(p.total(), 1);
        drop(again);
        assert_eq!(p.total(), 0);
        // Zero is no cap.
        let open = Pending::new(0, 0);
        let slots: Vec<_> = (0..100)
            .map(|_| open.admit(Some(ip("192.0.2.1"))).unwrap())
            .collect();
        assert_eq!(open.total(), 100);
        drop(slots);
    }
}

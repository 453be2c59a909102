//! The proxy's own listeners, which no ticket may name as its console server, whatever
//! the target policy allows.
//!
//! The default policy (loopback, ports 5900–6923) contains the proxy's own listener
//! (127.0.0.1:6100) and its admin listener (127.0.0.1:6101). A ticket naming either
//! made the proxy connect to itself: through the WebSocket the browser read the admin
//! listener's `/metrics`, and a looped connection came from 127.0.0.1, which defeats the
//! per-client limits and, where 127.0.0.1 is a trusted balancer, `X-Forwarded-For`
//! trust. So every address a ticket's host resolves to is checked against the addresses
//! the process is listening on (the browsers' and the admin listener, recorded when
//! each is bound, so port 0 in tests counts too, plus the configured addresses):
//!
//! - the same address and port is refused;
//! - a listener bound to an unspecified address (`0.0.0.0`, `::`) is reached through any
//!   address of this host on its port: loopback, the host's interface addresses, and the
//!   unspecified address itself (connecting to `0.0.0.0` reaches the local host). An
//!   address is "of this host" when a socket can be bound to it, asked of the kernel at
//!   the time of the check, so interface addresses added later count, and a host that
//!   allows binding to any address (`ip_nonlocal_bind`) is treated as owning them all:
//!   the conservative side.
//!
//! The check costs nothing unless a resolved port equals one of the listeners' ports.

use crate::policy::PolicyError;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::RwLock;

/// The addresses this process listens on.
#[derive(Debug, Default)]
pub struct OwnListeners {
    addrs: RwLock<Vec<SocketAddr>>,
}

impl OwnListeners {
    /// Records a listener's address (a configured one, or the one a socket was bound
    /// to). Port 0 is not an address anyone can connect to and is skipped.
    pub fn add(&self, addr: SocketAddr) {
        if addr.port() == 0 {
            return;
        }
        let mut addrs = self.addrs.write().unwrap_or_else(|p| p.into_inner());
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// The addresses recorded so far.
    pub fn list(&self) -> Vec<SocketAddr> {
        self.addrs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Refuses any of `targets` through which a connection would reach one of this
    /// process's listeners.
    pub fn check(&self, targets: &[SocketAddr]) -> Result<(), PolicyError> {
        let own = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        for target in targets {
            if own.iter().any(|l| reaches(*l, *target)) {
                return Err(PolicyError::OwnListener(*target));
            }
        }
        Ok(())
    }
}

/// Whether connecting to `target` reaches the listener bound to `listener`.
fn reaches(listener: SocketAddr, target: SocketAddr) -> bool {
    if listener.port() != target.port() {
        return false;
    }
    let (own, ip) = (listener.ip().to_canonical(), target.ip().to_canonical());
    if own == ip {
        return true;
    }
    // 0.0.0.0 and :: as a destination mean this host: on Linux they reach a listener
    // bound to loopback as well as one bound to the unspecified address.
    if ip.is_unspecified() {
        return own.is_loopback() || own.is_unspecified();
    }
    own.is_unspecified() && of_this_host(ip)
}

/// Whether `ip` is an address of this host: loopback, or one a socket can be bound to.
/// An error other than "address not available" (an IPv6 link-local address without a
/// scope, say) cannot tell, and counts as this host's.
fn of_this_host(ip: IpAddr) -> bool {
    if ip.is_loopback() {
        return true;
    }
    match UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::AddrNotAvailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn own(addrs: &[&str]) -> OwnListeners {
        let o = OwnListeners::default();
        for a in addrs {
            o.add(sa(a));
        }
        o
    }

    #[test]
    fn the_listeners_own_addresses_are_refused_and_other_ports_are_not() {
        let o = own(&["127.0.0.1:6100", "127.0.0.1:6101"]);
        for t in [
            "127.0.0.1:6100",
            "127.0.0.1:6101",
            "[::ffff:127.0.0.1]:6101",
        ] {
            assert_eq!(
                o.check(&[sa(t)]),
                Err(PolicyError::OwnListener(sa(t))),
                "{t}"
            );
        }
        assert!(o
            .check(&[sa("127.0.0.1:5901"), sa("127.0.0.2:6100")])
            .is_ok());
        assert!(
            o.check(&[sa("0.0.0.0:6100")]).is_err(),
            "0.0.0.0 is this host"
        );
        assert!(o.check(&[sa("[::]:6101")]).is_err());
        // One bad address among good ones refuses the lot.
        assert!(o
            .check(&[sa("127.0.0.1:5901"), sa("127.0.0.1:6100")])
            .is_err());
    }

    #[test]
    fn a_listener_on_the_unspecified_address_is_reached_through_any_local_address() {
        let o = own(&["0.0.0.0:6100", "[::]:6101"]);
        for t in [
            "127.0.0.1:6100",
            "127.9.8.7:6100",
            "0.0.0.0:6100",
            "[::1]:6101",
            "127.0.0.1:6101",
        ] {
            assert!(o.check(&[sa(t)]).is_err(), "{t}");
        }
        // A documentation address is no interface of this host.
        assert!(o.check(&[sa("192.0.2.77:6100")]).is_ok());
        assert!(o.check(&[sa("127.0.0.1:5900")]).is_ok());
    }

    #[test]
    fn the_hosts_interface_addresses_count_as_local() {
        // Whatever address this host routes out of is one of its own.
        let probe = UdpSocket::bind("0.0.0.0:0").unwrap();
        if probe.connect("192.0.2.1:9").is_err() {
            return; // no route: nothing to learn here
        }
        let mine = probe.local_addr().unwrap().ip();
        let o = own(&["0.0.0.0:6100"]);
        assert!(o.check(&[SocketAddr::new(mine, 6100)]).is_err(), "{mine}");
    }

    #[test]
    fn port_zero_is_never_recorded() {
        let o = own(&["127.0.0.1:0"]);
        assert!(o.list().is_empty());
    }
}

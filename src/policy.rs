//! Policy: which console servers a ticket may reach (rule 8), which web origins may
//! open a session, and the single-use record (rule 7).
//!
//! A signed ticket is not a licence to reach anything: the target policy is the
//! operator's fence around the private network, checked on every resolved address.
//! Everything here is plain data and arithmetic; DNS resolution happens in `front`.

use crate::ticket::Kind;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;

/// Why the policy refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("target {0} is outside the allowed targets")]
    TargetNotAllowed(SocketAddr),
    #[error("target port {0} is outside the allowed ports")]
    PortNotAllowed(u16),
    /// The port is allowed, but for other console kinds: a `serial` ticket naming a
    /// VNC port (or the reverse) is a mistake in the engine, or an attempt.
    #[error(
        "target port {port} is not allowed for {kind} consoles (it is allowed for {allowed_for})"
    )]
    PortNotAllowedForKind {
        kind: Kind,
        port: u16,
        allowed_for: String,
    },
    #[error("target host {host} resolves to {addr}, which is outside the allowed targets")]
    ResolvesOutside { host: String, addr: SocketAddr },
    /// The ticket names the proxy itself: its browsers' or its admin listener.
    #[error("target {0} is this proxy's own listener")]
    OwnListener(SocketAddr),
    #[error("origin {0} is not allowed")]
    OriginNotAllowed(String),
    #[error("origin {origin} does not match the proxy's address {host}")]
    OriginMismatch { origin: String, host: String },
    #[error("this proxy requires single-use tickets, and the ticket has no jti")]
    JtiRequired,
    #[error("ticket {0} was already used")]
    Replayed(String),
}

/// Why a policy setting could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicySyntaxError {
    #[error("{0:?} is not an address range (expected e.g. 10.0.0.0/8 or ::1/128)")]
    Cidr(String),
    #[error("{0:?} is not a port range (expected e.g. 5900-6923 or 5901)")]
    Ports(String),
    #[error("{0:?} is not an origin (expected scheme://host[:port], e.g. https://engine.example)")]
    Origin(String),
}

/// An address range such as `10.0.0.0/8` (a bare address is its /32 or /128).
///
/// Kept by hand rather than taken from `ipnet`: that crate reads `010.0.0.0/8` as
/// 10.0.0.0/8 (where `inet_aton` reads octal 8.0.0.0; std's parser, used here, refuses
/// it), wants a prefix on every entry, and compares an IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`) with an IPv4 range as never inside it; the mapped forms are the
/// fuzz finding below, so the wrapper around it would be as long as this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is the IPv4 host it maps to;
        // without this a ticket could dodge an IPv4 rule by writing the v6 form.
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    // Both sides must have the whole prefix: a prefix longer than the address would
    // otherwise compare two missing slices as equal and match every address.
    match (a.get(..full), b.get(..full)) {
        (Some(x), Some(y)) if x == y => {}
        _ => return false,
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

impl FromStr for Cidr {
    type Err = PolicySyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PolicySyntaxError::Cidr(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let written: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if written.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        // An IPv4-mapped range (::ffff:10.0.0.0/104) is the IPv4 range it maps to, so
        // its prefix is counted in IPv4 bits; one shorter than /96 reaches beyond the
        // mapped space and has no IPv4 meaning, so it is refused.
        let network = written.to_canonical();
        let prefix = if network.is_ipv4() && written.is_ipv6() {
            prefix.checked_sub(96).ok_or_else(err)?
        } else {
            prefix
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An inclusive port range such as `5900-6923`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = PolicySyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PolicySyntaxError::Ports(s.to_string());
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| err())?;
        let last: u16 = b.trim().parse().map_err(|_| err())?;
        if first == 0 || first > last {
            return Err(err());
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The console servers tickets may reach: address ranges × port ranges, the port
/// ranges per console kind, so a `serial` ticket cannot reach a VNC port by accident
/// and the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow: Vec<Cidr>,
    /// Ports for `vnc` tickets.
    pub vnc_ports: Vec<PortRange>,
    /// Ports for `spice` tickets.
    pub spice_ports: Vec<PortRange>,
    /// Ports for `serial` tickets: none unless configured.
    pub serial_ports: Vec<PortRange>,
}

/// QEMU's VNC displays :0..:1023, and where libvirt puts SPICE ports too.
const CONSOLE_PORTS: PortRange = PortRange {
    first: 5900,
    last: 6923,
};

impl Default for TargetPolicy {
    /// A per-host proxy reaching the local QEMU: loopback, VNC/SPICE console ports,
    /// no serial ports.
    fn default() -> Self {
        TargetPolicy {
            allow: vec![
                Cidr {
                    network: IpAddr::from([127, 0, 0, 0]),
                    prefix: 8,
                },
                Cidr {
                    network: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
                    prefix: 128,
                },
            ],
            vnc_ports: vec![CONSOLE_PORTS],
            spice_ports: vec![CONSOLE_PORTS],
            serial_ports: Vec::new(),
        }
    }
}

impl TargetPolicy {
    /// The port ranges tickets of `kind` may reach.
    pub fn ports(&self, kind: Kind) -> &[PortRange] {
        match kind {
            Kind::Vnc => &self.vnc_ports,
            Kind::Spice => &self.spice_ports,
            Kind::Serial => &self.serial_ports,
        }
    }

    /// Checked before any resolution, so a forbidden port costs no DNS query.
    pub fn check_port(&self, kind: Kind, port: u16) -> Result<(), PolicyError> {
        if self.ports(kind).iter().any(|r| r.contains(port)) {
            return Ok(());
        }
        let others: Vec<&str> = [Kind::Vnc, Kind::Spice, Kind::Serial]
            .into_iter()
            .filter(|k| *k != kind && self.ports(*k).iter().any(|r| r.contains(port)))
            .map(Kind::as_str)
            .collect();
        if others.is_empty() {
            Err(PolicyError::PortNotAllowed(port))
        } else {
            Err(PolicyError::PortNotAllowedForKind {
                kind,
                port,
                allowed_for: others.join(" and "),
            })
        }
    }

    /// Whether a `kind` ticket may reach `target`. The unspecified address (`0.0.0.0`,
    /// `::`) is never a console server: as a destination it means this host, so an
    /// `allow` of `0.0.0.0/0` would otherwise open every loopback port.
    pub fn check(&self, kind: Kind, target: SocketAddr) -> Result<(), PolicyError> {
        self.check_port(kind, target.port())?;
        if target.ip().to_canonical().is_unspecified() {
            return Err(PolicyError::TargetNotAllowed(target));
        }
        if self.allow.iter().any(|c| c.contains(target.ip())) {
            Ok(())
        } else {
            Err(PolicyError::TargetNotAllowed(target))
        }
    }

    /// Every address a name resolves to must be allowed: a name that resolves to one
    /// good and one forbidden address is refused rather than raced.
    pub fn check_resolved(
        &self,
        kind: Kind,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Result<(), PolicyError> {
        for addr in addrs {
            if let Err(e) = self.check(kind, *addr) {
                if !matches!(e, PolicyError::TargetNotAllowed(_)) {
                    return Err(e);
                }
                if host.parse::<IpAddr>().is_ok() {
                    return Err(PolicyError::TargetNotAllowed(*addr));
                }
                return Err(PolicyError::ResolvesOutside {
                    host: host.to_string(),
                    addr: *addr,
                });
            }
        }
        Ok(())
    }
}

/// A web origin, normalised: lower-case scheme and host, default port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl FromStr for Origin {
    type Err = PolicySyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PolicySyntaxError::Origin(s.to_string());
        let (scheme, rest) = s.split_once("://").ok_or_else(err)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return Err(err()),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(err());
        }
        let (host, port) = split_host_port(rest).ok_or_else(err)?;
        let port = port.unwrap_or(default_port);
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Splits `host[:port]`, `[v6][:port]`; `None` when the port is not a number.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => Some((s, None)), // a bare IPv6 literal
        None => Some((s, None)),
    }
}

/// Which web pages may open WebSocket sessions (cross-site WebSocket hijacking,
/// nova's CVE-2015-0259). A request without `Origin` is not from a browser and is
/// allowed: the ticket is its credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Empty: the Origin must be the proxy's own address (its `Host` header).
    pub allow: Vec<Origin>,
}

impl OriginPolicy {
    /// `host` is the request's `Host` header; `tls` whether the browser reached us
    /// over TLS (directly or through a trusted TLS-terminating balancer).
    pub fn check(
        &self,
        origin: Option<&str>,
        host: Option<&str>,
        tls: bool,
    ) -> Result<(), PolicyError> {
        let Some(raw) = origin else { return Ok(()) };
        let refused = || PolicyError::OriginNotAllowed(raw.chars().take(200).collect());
        let parsed: Origin = raw.parse().map_err(|_| refused())?;
        if !self.allow.is_empty() {
            return if self.allow.contains(&parsed) {
                Ok(())
            } else {
                Err(refused())
            };
        }
        let want_scheme = if tls { "https" } else { "http" };
        let own = host.and_then(|h| format!("{want_scheme}://{h}").parse::<Origin>().ok());
        match own {
            Some(own) if own == parsed => Ok(()),
            _ => Err(PolicyError::OriginMismatch {
                origin: raw.chars().take(200).collect(),
                host: host.unwrap_or("(none)").chars().take(200).collect(),
            }),
        }
    }
}

/// How often one single-use ticket may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uses {
    /// Connections the ticket may open in all.
    pub max: u32,
    /// Seconds after the first connection in which the others must open.
    pub window_secs: i64,
}

impl Uses {
    /// VNC and serial: one connection.
    pub const ONCE: Uses = Uses {
        max: 1,
        window_secs: 0,
    };
    /// SPICE: the client opens one WebSocket per channel (main, display, inputs,
    /// cursor, playback, record, usbredir, port, webdav…) to the same URL, all within
    /// a moment of the main channel's answer. One "use" of a SPICE ticket is that
    /// burst: at most 16 connections, within 20 s of the first.
    pub const SPICE_CHANNELS: Uses = Uses {
        max: 16,
        window_secs: 20,
    };

    pub fn for_kind(kind: Kind) -> Uses {
        match kind {
            Kind::Spice => Uses::SPICE_CHANNELS,
            Kind::Vnc | Kind::Serial => Uses::ONCE,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Forgotten after this (the ticket's expiry plus leeway).
    until: i64,
    /// When the first connection was admitted.
    first: i64,
    uses: u32,
}

impl Seen {
    fn refuses(&self, allowed: Uses, now: i64) -> bool {
        self.until > now
            && (self.uses >= allowed.max || now > self.first.saturating_add(allowed.window_secs))
    }
}

/// Rule 7: the tickets already used, each kept until it expires, by issuer and `jti`:
/// the key id for an Ed25519 ticket, the engine certificate for an oVirt ticket, the
/// token source for a websockify token. Two engines (or two keys) that happen to pick
/// the same `jti` do not use up each other's tickets. Lives in this proxy's memory
/// only: a per-host proxy needs no shared store, and a pool routes each ticket to one
/// proxy (docs/deployment.md).
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

/// The record's key: issuer, then ticket id.
fn replay_key(issuer: &str, jti: &str) -> (String, String) {
    (issuer.to_string(), jti.to_string())
}

impl ReplayCache {
    /// Records `jti` of `issuer` as used until `forget_after` (Unix seconds, the
    /// ticket's expiry plus leeway), or refuses it if it was used before.
    pub fn use_once(
        &self,
        issuer: &str,
        jti: Option<&str>,
        forget_after: i64,
        now: i64,
    ) -> Result<(), PolicyError> {
        self.use_ticket(issuer, jti, Uses::ONCE, forget_after, now)
    }

    /// Records one more connection of `jti` of `issuer`, or refuses it when the
    /// ticket has used up its `allowed` connections or their window.
    pub fn use_ticket(
        &self,
        issuer: &str,
        jti: Option<&str>,
        allowed: Uses,
        forget_after: i64,
        now: i64,
    ) -> Result<(), PolicyError> {
        let jti = jti.ok_or(PolicyError::JtiRequired)?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Amortised pruning: the map never holds more than twice its live entries.
        if seen.len() >= 1024 && seen.len().is_power_of_two() {
            seen.retain(|_, s| s.until > now);
        }
        let key = replay_key(issuer, jti);
        match seen.get_mut(&key) {
            Some(s) if s.refuses(allowed, now) => Err(PolicyError::Replayed(jti.to_string())),
            Some(s) if s.until > now => {
                s.uses += 1;
                Ok(())
            }
            _ => {
                seen.insert(
                    key,
                    Seen {
                        until: forget_after,
                        first: now,
                        uses: 1,
                    },
                );
                Ok(())
            }
        }
    }

    /// Whether `jti` of `issuer` would be refused now, without recording it (the
    /// console page's pre-flight check must not consume a single-use ticket).
    pub fn check(&self, issuer: &str, jti: Option<&str>, now: i64) -> Result<(), PolicyError> {
        self.check_uses(issuer, jti, Uses::ONCE, now)
    }

    /// [`ReplayCache::check`] for a ticket allowed `allowed` connections.
    pub fn check_uses(
        &self,
        issuer: &str,
        jti: Option<&str>,
        allowed: Uses,
        now: i64,
    ) -> Result<(), PolicyError> {
        let jti = jti.ok_or(PolicyError::JtiRequired)?;
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&replay_key(issuer, jti)) {
            Some(s) if s.refuses(allowed, now) => Err(PolicyError::Replayed(jti.to_string())),
            _ => Ok(()),
        }
    }

    /// Gives one connection back when its session could not start (the console
    /// server was unreachable), so the person can retry with the same link.
    pub fn forget(&self, issuer: &str, jti: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = replay_key(issuer, jti);
        if let Some(s) = seen.get_mut(&key) {
            s.uses = s.uses.saturating_sub(1);
            if s.uses == 0 {
                seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_allows_local_vnc_ports_only() {
        let p = TargetPolicy::default();
        assert!(p.check(Kind::Vnc, sa("127.0.0.1:5900")).is_ok());
        assert!(p.check(Kind::Vnc, sa("[::1]:5901")).is_ok());
        assert_eq!(
            p.check(Kind::Vnc, sa("127.0.0.1:22")),
            Err(PolicyError::PortNotAllowed(22))
        );
        assert!(p.check(Kind::Vnc, sa("10.0.0.9:5900")).is_err());
        assert!(p.check(Kind::Vnc, sa("[::2]:5900")).is_err());
    }

    #[test]
    fn the_unspecified_address_is_refused_even_when_allow_covers_it() {
        let p = TargetPolicy {
            allow: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            ..TargetPolicy::default()
        };
        assert!(p.check(Kind::Vnc, sa("10.1.2.3:5900")).is_ok());
        for t in ["0.0.0.0:5900", "[::]:5900", "[::ffff:0.0.0.0]:5900"] {
            assert_eq!(
                p.check(Kind::Vnc, sa(t)),
                Err(PolicyError::TargetNotAllowed(sa(t))),
                "{t}"
            );
        }
    }

    #[test]
    fn ports_are_per_console_kind_and_serial_has_none_by_default() {
        let mut p = TargetPolicy::default();
        assert!(p.check(Kind::Spice, sa("127.0.0.1:5930")).is_ok());
        assert_eq!(
            p.check_port(Kind::Serial, 5901),
            Err(PolicyError::PortNotAllowedForKind {
                kind: Kind::Serial,
                port: 5901,
                allowed_for: "vnc and spice".into()
            })
        );
        assert_eq!(
            p.check_port(Kind::Serial, 7000),
            Err(PolicyError::PortNotAllowed(7000))
        );
        p.serial_ports = vec!["7000-7099".parse().unwrap()];
        p.spice_ports = vec!["6000-6099".parse().unwrap()];
        p.vnc_ports = vec!["5900-5999".parse().unwrap()];
        assert!(p.check(Kind::Serial, sa("127.0.0.1:7000")).is_ok());
        let e = p.check(Kind::Vnc, sa("127.0.0.1:7000")).unwrap_err();
        assert!(
            matches!(e, PolicyError::PortNotAllowedForKind { .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "target port 7000 is not allowed for vnc consoles (it is allowed for serial)"
        );
        assert!(p.check(Kind::Spice, sa("127.0.0.1:5901")).is_err());
        assert!(p.check(Kind::Vnc, sa("127.0.0.1:6001")).is_err());
        // A name resolving to a port of another kind says so, not "outside".
        assert!(matches!(
            p.check_resolved(Kind::Vnc, "localhost", &[sa("127.0.0.1:7000")]),
            Err(PolicyError::PortNotAllowedForKind { .. })
        ));
    }

    #[test]
    fn an_ipv4_mapped_range_means_the_ipv4_range_not_every_ipv4_address() {
        // Found while writing the config_toml fuzz target (its round-trip check guards
        // it now): /104 was kept as a 104-bit prefix of a 32-bit address, and the
        // comparison then matched every IPv4 address.
        let p = TargetPolicy {
            allow: vec!["::ffff:10.0.0.0/104".parse().unwrap()],
            vnc_ports: vec!["1-65535".parse().unwrap()],
            spice_ports: vec![],
            serial_ports: vec![],
        };
        let v = Kind::Vnc;
        assert!(p.check(v, sa("10.1.2.3:5900")).is_ok());
        assert!(p.check(v, sa("[::ffff:10.1.2.3]:5900")).is_ok());
        assert!(p.check(v, sa("192.168.1.1:5900")).is_err());
        assert!(p.check(v, sa("169.254.169.254:80")).is_err());
        let host: Cidr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(host, "10.0.0.1/32".parse().unwrap());
        assert_eq!(host.to_string().parse::<Cidr>(), Ok(host));
        assert!("::ffff:10.0.0.0/95".parse::<Cidr>().is_err());
    }

    #[test]
    fn ipv4_mapped_ipv6_is_checked_as_ipv4() {
        let p = TargetPolicy {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            vnc_ports: vec!["1-65535".parse().unwrap()],
            spice_ports: vec![],
            serial_ports: vec![],
        };
        let v = Kind::Vnc;
        assert!(p.check(v, sa("[::ffff:10.1.2.3]:5900")).is_ok());
        assert!(p.check(v, sa("[::ffff:192.168.1.1]:5900")).is_err());
        let local = TargetPolicy::default();
        assert!(local.check(v, sa("[::ffff:127.0.0.1]:5900")).is_ok());
        assert!(local.check(v, sa("[::ffff:169.254.169.254]:5900")).is_err());
    }

    #[test]
    fn cidr_prefixes_match_bit_by_bit() {
        let c: Cidr = "192.168.4.0/22".parse().unwrap();
        assert!(c.contains("192.168.7.255".parse().unwrap()));
        assert!(!c.contains("192.168.8.0".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert_eq!(
            "10.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/32"
        );
    }

    #[test]
    fn port_ranges_parse_and_refuse_nonsense() {
        assert_eq!(
            "5900-6923".parse::<PortRange>().unwrap(),
            PortRange {
                first: 5900,
                last: 6923
            }
        );
        assert_eq!(
            "5901".parse::<PortRange>().unwrap(),
            PortRange {
                first: 5901,
                last: 5901
            }
        );
        assert!("0".parse::<PortRange>().is_err());
        assert!("6000-5900".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
    }

    #[test]
    fn a_name_resolving_to_any_forbidden_address_is_refused() {
        let p = TargetPolicy::default();
        let addrs = [sa("127.0.0.1:5900"), sa("10.0.0.1:5900")];
        assert!(matches!(
            p.check_resolved(Kind::Vnc, "console.example", &addrs),
            Err(PolicyError::ResolvesOutside { .. })
        ));
        assert!(p
            .check_resolved(Kind::Vnc, "localhost", &addrs[..1])
            .is_ok());
    }

    #[test]
    fn without_an_allow_list_the_origin_must_be_the_proxy_itself() {
        let p = OriginPolicy::default();
        assert!(p.check(None, Some("proxy:6100"), true).is_ok());
        assert!(p
            .check(Some("https://proxy:6100"), Some("proxy:6100"), true)
            .is_ok());
        assert!(p
            .check(Some("https://PROXY:6100/"), Some("proxy:6100"), true)
            .is_ok());
        assert!(p
            .check(Some("https://proxy"), Some("proxy:443"), true)
            .is_ok());
        assert!(
            p.check(Some("http://proxy:6100"), Some("proxy:6100"), true)
                .is_err(),
            "scheme mismatch"
        );
        assert!(p
            .check(Some("https://evil.example"), Some("proxy:6100"), true)
            .is_err());
        assert!(p.check(Some("null"), Some("proxy:6100"), true).is_err());
        assert!(p.check(Some("https://proxy:6100"), None, true).is_err());
    }

    #[test]
    fn an_allow_list_matches_whole_origins_not_prefixes() {
        let p = OriginPolicy {
            allow: vec!["https://engine.example".parse().unwrap()],
        };
        assert!(p
            .check(Some("https://engine.example"), Some("proxy:6100"), true)
            .is_ok());
        assert!(p
            .check(Some("https://engine.example:443"), Some("proxy:6100"), true)
            .is_ok());
        assert!(p
            .check(
                Some("https://engine.example.evil.test"),
                Some("proxy:6100"),
                true
            )
            .is_err());
        assert!(p
            .check(Some("http://engine.example"), Some("proxy:6100"), true)
            .is_err());
        assert!(p.check(Some("null"), Some("proxy:6100"), true).is_err());
    }

    #[test]
    fn single_use_tickets_are_refused_the_second_time_until_they_expire() {
        let r = ReplayCache::default();
        assert_eq!(r.use_once("k", None, 100, 0), Err(PolicyError::JtiRequired));
        assert!(r.use_once("k", Some("a"), 100, 0).is_ok());
        assert!(r.check("k", Some("a"), 50).is_err());
        assert_eq!(
            r.use_once("k", Some("a"), 100, 50),
            Err(PolicyError::Replayed("a".into()))
        );
        assert!(
            r.use_once("k", Some("a"), 200, 101).is_ok(),
            "forgotten once expired"
        );
        r.forget("k", "a");
        assert!(r.check("k", Some("a"), 150).is_ok());
    }

    #[test]
    fn a_spice_ticket_opens_its_channels_in_one_burst_and_then_no_more() {
        let r = ReplayCache::default();
        let spice = Uses::SPICE_CHANNELS;
        for _ in 0..spice.max {
            assert!(r.use_ticket("k", Some("s"), spice, 600, 100).is_ok());
        }
        assert_eq!(
            r.use_ticket("k", Some("s"), spice, 600, 101),
            Err(PolicyError::Replayed("s".into())),
            "more channels than SPICE has"
        );
        r.forget("k", "s");
        assert!(
            r.check_uses("k", Some("s"), spice, 101).is_ok(),
            "one given back"
        );
        assert!(r.use_ticket("k", Some("t"), spice, 600, 100).is_ok());
        assert!(r.use_ticket("k", Some("t"), spice, 600, 120).is_ok());
        assert!(
            r.use_ticket("k", Some("t"), spice, 600, 121).is_err(),
            "later than the window after the first channel"
        );
        // A SPICE burst does not make the same jti usable once more as VNC.
        assert!(r.use_ticket("k", Some("u"), spice, 600, 100).is_ok());
        assert!(r.use_once("k", Some("u"), 600, 100).is_err());
    }

    #[test]
    fn the_same_jti_from_two_issuers_is_two_tickets() {
        let r = ReplayCache::default();
        assert!(r.use_once("key-a", Some("1"), 600, 100).is_ok());
        assert!(
            r.use_once("key-b", Some("1"), 600, 100).is_ok(),
            "another issuer's 1"
        );
        assert!(r.use_once("key-a", Some("1"), 600, 101).is_err());
        assert!(r.check("key-b", Some("1"), 101).is_err());
        r.forget("key-b", "1");
        assert!(r.check("key-b", Some("1"), 101).is_ok());
        assert!(r.check("key-a", Some("1"), 101).is_err(), "untouched");
    }
}

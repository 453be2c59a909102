//! The real client address behind a balancer: the PROXY protocol (v1 text and v2
//! binary, as HAProxy and nginx send it before any TLS byte), `X-Forwarded-For` and
//! `X-Forwarded-Proto`.
//!
//! All three are claims made by whoever opened the TCP connection, so each is
//! believed only from an address in `[clients] trusted_proxies`:
//! - PROXY protocol on (`proxy_protocol = true`): a trusted peer must send a valid
//!   header first, or the connection is closed (a balancer that forgot it would
//!   otherwise make every client look like the balancer). An untrusted peer's bytes
//!   are not parsed as a PROXY header at all; they are read as the request itself,
//!   which a forged `PROXY …` line then fails as bad HTTP (400) or bad TLS. So a
//!   stranger cannot choose its own address, and direct clients still work.
//! - `X-Forwarded-For`: read right to left, skipping trusted proxies; the first
//!   untrusted address is the client. Entries left of it were written by the client
//!   and are ignored.
//! - `X-Forwarded-Proto`: from a trusted proxy only, decides whether the browser
//!   used https (for the Origin check behind a TLS-terminating balancer).
//!
//! The address found is used in logs (`client=`), per-client limits and the session
//! registry.

use crate::policy::Cidr;
use hyper::header::HeaderMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// Who may speak for clients, and whether the balancer sends PROXY headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientsConfig {
    /// Balancers believed about the client's address and scheme.
    pub trusted_proxies: Vec<Cidr>,
    /// Trusted peers open each connection with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Sessions only through a trusted balancer: in a pool, the balancer routes each
    /// ticket to the proxy holding its single-use record, and a browser reaching a
    /// proxy directly would bypass that.
    pub balancer_only: bool,
}

impl ClientsConfig {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

/// Why a trusted peer's connection was closed before HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before a complete PROXY protocol header")]
    Closed,
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(&'static str),
    #[error("reading the PROXY protocol header failed: {0}")]
    Io(std::io::Error),
}

// Not `#[from]`: the message carries the cause, so it is not also `source()`.
impl From<std::io::Error> for ProxyHeaderError {
    fn from(e: std::io::Error) -> Self {
        ProxyHeaderError::Io(e)
    }
}

/// The v2 signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 line is at most 107 bytes with its CRLF.
const V1_MAX: usize = 107;
/// Longest v2 header accepted (16 fixed bytes + addresses + TLVs). HAProxy's TLVs
/// (ALPN, authority, SSL details) fit easily; more is not a balancer we know.
const V2_MAX: usize = 16 + 1024;

/// Result of looking at the first bytes of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A header of `len` bytes; `addr` is the client, or `None` for v2 LOCAL and v1
    /// UNKNOWN (a balancer's own health check: the peer is the client).
    Done {
        len: usize,
        addr: Option<SocketAddr>,
    },
}

/// Parses a PROXY protocol v1 or v2 header at the start of `buf`.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let invalid = ProxyHeaderError::Invalid;
    let sig_len = buf.len().min(V2_SIG.len());
    if buf.get(..sig_len) == V2_SIG.get(..sig_len) && !buf.is_empty() && buf[0] == b'\r' {
        return parse_v2(buf);
    }
    let prefix = b"PROXY ";
    let n = buf.len().min(prefix.len());
    if buf.get(..n) != prefix.get(..n) {
        return Err(invalid("neither a v1 nor a v2 header"));
    }
    let Some(end) = buf.windows(2).take(V1_MAX).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(invalid("v1 line longer than 107 bytes"))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| invalid("v1 line is not ASCII"))?;
    let mut parts = line.split(' ');
    let _proxy = parts.next();
    let addr = match parts.next() {
        Some("UNKNOWN") => None,
        Some(fam @ ("TCP4" | "TCP6")) => {
            let src: IpAddr = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(invalid("v1 source address"))?;
            let _dst: IpAddr = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(invalid("v1 destination address"))?;
            let sport: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(invalid("v1 source port"))?;
            let _dport: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(invalid("v1 destination port"))?;
            if parts.next().is_some() {
                return Err(invalid("v1 line has extra fields"));
            }
            if (fam == "TCP4") != src.is_ipv4() {
                return Err(invalid("v1 address family mismatch"));
            }
            Some(SocketAddr::new(src, sport))
        }
        _ => return Err(invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Done { len: end + 2, addr })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let invalid = ProxyHeaderError::Invalid;
    let Some(fixed) = buf.get(..16) else {
        return Ok(Parsed::Incomplete);
    };
    let ver_cmd = fixed[12];
    let fam = fixed[13];
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if ver_cmd >> 4 != 2 {
        return Err(invalid("v2 version is not 2"));
    }
    if 16 + len > V2_MAX {
        return Err(invalid("v2 header longer than 1040 bytes"));
    }
    let Some(body) = buf.get(16..16 + len) else {
        return Ok(Parsed::Incomplete);
    };
    let addr = match ver_cmd & 0x0f {
        0 => None, // LOCAL: the balancer's own connection
        1 => match fam {
            0x11 => {
                let a = body.get(..12).ok_or(invalid("v2 TCP4 addresses short"))?;
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
            }
            0x21 => {
                let a = body.get(..36).ok_or(invalid("v2 TCP6 addresses short"))?;
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[..16]);
                let ip = Ipv6Addr::from(o);
                Some(SocketAddr::new(
                    ip.into(),
                    u16::from_be_bytes([a[32], a[33]]),
                ))
            }
            0x00 => None, // UNSPEC: unknown origin, use the peer
            _ => return Err(invalid("v2 family is not TCP over IPv4 or IPv6")),
        },
        _ => return Err(invalid("v2 command is not LOCAL or PROXY")),
    };
    Ok(Parsed::Done {
        len: 16 + len,
        addr,
    })
}

/// Reads the PROXY header a trusted balancer sends first, consuming exactly its
/// bytes (by peeking, so nothing after it is lost). `Ok(None)`: LOCAL/UNKNOWN.
pub async fn read_proxy_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let work = async {
        let mut buf = [0u8; V2_MAX];
        loop {
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Err(ProxyHeaderError::Closed);
            }
            match parse_proxy_header(&buf[..n])? {
                Parsed::Done { len, addr } => {
                    use tokio::io::AsyncReadExt;
                    let mut sink = [0u8; V2_MAX];
                    stream.read_exact(&mut sink[..len]).await?;
                    return Ok(addr);
                }
                // The rest is on its way; peek returns at once while any byte is
                // queued, so wait a little instead of spinning.
                Parsed::Incomplete => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProxyHeaderError::Timeout(timeout))?
}

/// The client behind `hop` (the address that sent this request): from a trusted
/// hop, the rightmost untrusted `X-Forwarded-For` entry; otherwise `hop` itself.
pub fn forwarded_client(hop: SocketAddr, headers: &HeaderMap, cfg: &ClientsConfig) -> SocketAddr {
    if !cfg.trusts(hop.ip()) {
        return hop;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = hop;
    // Bounded: a header list is bounded by hyper's header buffer.
    for entry in entries.iter().rev() {
        let Some(addr) = parse_forwarded_addr(entry) else {
            // Garbage where an address should be: trust nothing to its left.
            return client;
        };
        client = addr;
        if !cfg.trusts(addr.ip()) {
            return client;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`; port 0 when absent.
fn parse_forwarded_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    s.parse::<SocketAddr>().ok()
}

/// Whether the browser reached the proxy over TLS: directly, or (from a trusted
/// hop only) as its balancer says in `X-Forwarded-Proto`.
pub fn browser_used_tls(
    hop: SocketAddr,
    headers: &HeaderMap,
    cfg: &ClientsConfig,
    tls: bool,
) -> bool {
    if tls || !cfg.trusts(hop.ip()) {
        return tls;
    }
    // The rightmost value is the one the nearest (trusted) balancer wrote.
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back()
        .is_some_and(|p| p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("wss"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (usize, Option<SocketAddr>) {
        match parse_proxy_header(buf).unwrap() {
            Parsed::Done { len, addr } => (len, addr),
            Parsed::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn v1_headers_give_the_source_address() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(done(h), (41, Some("192.0.2.7:40000".parse().unwrap())));
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n";
        assert_eq!(done(h).1, Some("[2001:db8::7]:40000".parse().unwrap()));
        assert_eq!(done(b"PROXY UNKNOWN\r\n"), (15, None));
        assert_eq!(
            parse_proxy_header(b"PROXY TCP4 1.2").unwrap(),
            Parsed::Incomplete
        );
        assert_eq!(parse_proxy_header(b"PRO").unwrap(), Parsed::Incomplete);
    }

    #[test]
    fn malformed_v1_headers_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 192.0.2.7 10.0.0.1 40000\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 99999 443\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n",
            &[b'P', b'R', b'O', b'X', b'Y', b' ', b'x', 0xff, b'\r', b'\n'][..],
        ] {
            assert!(
                parse_proxy_header(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'A'; 200]].concat();
        assert!(parse_proxy_header(&long).is_err());
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend((body.len() as u16).to_be_bytes());
        h.extend(body);
        h
    }

    #[test]
    fn v2_headers_give_the_source_address_and_skip_tlvs() {
        let mut body = vec![192, 0, 2, 9, 10, 0, 0, 1];
        body.extend(50000u16.to_be_bytes());
        body.extend(443u16.to_be_bytes());
        body.extend([0x01, 0x00, 0x02, b'h', b'2']); // an ALPN TLV
        let h = v2(1, 0x11, &body);
        assert_eq!(
            done(&h),
            (h.len(), Some("192.0.2.9:50000".parse().unwrap()))
        );
        let mut body6 = vec![0x20, 0x01, 0x0d, 0xb8];
        body6.extend([0; 11]);
        body6.push(9);
        body6.extend([0; 16]);
        body6.extend(1234u16.to_be_bytes());
        body6.extend(443u16.to_be_bytes());
        assert_eq!(
            done(&v2(1, 0x21, &body6)).1,
            Some("[2001:db8::9]:1234".parse().unwrap())
        );
        assert_eq!(done(&v2(0, 0, &[])), (16, None));
        assert_eq!(parse_proxy_header(&h[..20]).unwrap(), Parsed::Incomplete);
        assert_eq!(parse_proxy_header(&h[..5]).unwrap(), Parsed::Incomplete);
    }

    #[test]
    fn malformed_v2_headers_are_refused() {
        assert!(parse_proxy_header(&v2(1, 0x11, &[1, 2, 3])).is_err());
        assert!(parse_proxy_header(&v2(2, 0x11, &[0; 12])).is_err());
        assert!(parse_proxy_header(&v2(1, 0x31, &[0; 216])).is_err());
        let mut h = v2(1, 0x11, &[0; 12]);
        h[12] = 0x11; // version 1 in a v2 signature
        assert!(parse_proxy_header(&h).is_err());
        let mut h = V2_SIG.to_vec();
        h.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(parse_proxy_header(&h).is_err(), "oversize length");
    }

    fn cfg() -> ClientsConfig {
        ClientsConfig {
            trusted_proxies: vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            proxy_protocol: false,
            balancer_only: false,
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn x_forwarded_for_is_read_right_to_left_from_trusted_hops_only() {
        let trusted: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let c = cfg();
        let h = xff(&["6.6.6.6, 203.0.113.5, 10.1.1.1"]);
        assert_eq!(
            forwarded_client(trusted, &h, &c).ip().to_string(),
            "203.0.113.5"
        );
        assert_eq!(forwarded_client(stranger, &h, &c), stranger);
        let h = xff(&["6.6.6.6", "203.0.113.5:7000"]);
        assert_eq!(
            forwarded_client(trusted, &h, &c),
            "203.0.113.5:7000".parse().unwrap()
        );
        let h = xff(&["203.0.113.5, garbage"]);
        assert_eq!(forwarded_client(trusted, &h, &c), trusted);
        let h = xff(&["10.0.0.9"]);
        assert_eq!(
            forwarded_client(trusted, &h, &c).ip().to_string(),
            "10.0.0.9"
        );
        assert_eq!(forwarded_client(trusted, &HeaderMap::new(), &c), trusted);
    }

    #[test]
    fn x_forwarded_proto_counts_only_from_trusted_hops() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let c = cfg();
        assert!(browser_used_tls(
            "127.0.0.1:1".parse().unwrap(),
            &h,
            &c,
            false
        ));
        assert!(!browser_used_tls(
            "198.51.100.1:1".parse().unwrap(),
            &h,
            &c,
            false
        ));
        assert!(!browser_used_tls(
            "127.0.0.1:1".parse().unwrap(),
            &HeaderMap::new(),
            &c,
            false
        ));
    }
}

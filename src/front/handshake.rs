//! The WebSocket handshake of RFC 6455 §4.2.1: is this request an upgrade, is it a
//! well-formed one, and the 101 answer.
//!
//! The subprotocols the browser offers may carry the ticket: `binary` and
//! `ticket.<ticket>` (the ticket's base64url characters and dots are all token
//! characters, so it fits `Sec-WebSocket-Protocol` as it is), so that it appears in no
//! URL and no access log. The proxy then answers `binary` only: the ticket is never
//! echoed, and this header is never logged. A `ticket.` offer without `binary` is
//! refused: RFC 6455 lets a server answer only a protocol the browser offered, and
//! answering `ticket.<ticket>` would send the credential back.

use crate::refusal::{Code, Refusal};
use crate::util::http::Body;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// Whether the request asks for a WebSocket (then it is a session, never a page).
pub fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    header_has_token(h, header::UPGRADE, "websocket")
}

/// The prefix of the subprotocol that carries a ticket.
pub const TICKET_PROTOCOL: &str = "ticket.";

/// A well-formed handshake, ready to be answered.
pub struct Handshake {
    accept_key: String,
    /// The browser offered the `binary` subprotocol (noVNC before 1.2, the console
    /// page, any client sending the ticket as a subprotocol).
    binary: bool,
    /// The ticket offered as `ticket.<ticket>`, if any. Never logged, never echoed.
    ticket: Option<String>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("binary", &self.binary)
            .field("ticket", &self.ticket.as_ref().map(|_| "(offered)"))
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Checks `Connection: Upgrade`, version 13 and the key.
    pub fn read(h: &HeaderMap) -> Result<Handshake, Refusal> {
        if !header_has_token(h, header::CONNECTION, "upgrade") {
            return Err(Refusal::new(
                Code::BadHandshake,
                "WebSocket handshake without Connection: Upgrade",
            ));
        }
        if header_str(h, header::SEC_WEBSOCKET_VERSION).map(str::trim) != Some("13") {
            return Err(Refusal::new(
                Code::WebsocketVersion,
                "unsupported WebSocket version (13 expected)",
            ));
        }
        let key = header_str(h, header::SEC_WEBSOCKET_KEY)
            .map(str::trim)
            .unwrap_or("");
        use base64::Engine as _;
        match base64::engine::general_purpose::STANDARD.decode(key) {
            Ok(raw) if raw.len() == 16 => {}
            _ => {
                return Err(Refusal::new(
                    Code::BadHandshake,
                    "missing or invalid Sec-WebSocket-Key",
                ))
            }
        }
        let binary = header_has_token(h, header::SEC_WEBSOCKET_PROTOCOL, "binary");
        let ticket = protocol_ticket(h, binary)?;
        Ok(Handshake {
            accept_key: tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                key.as_bytes(),
            ),
            binary,
            ticket,
        })
    }

    /// The ticket offered as a subprotocol, if any.
    pub fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref()
    }

    /// The 101 answer: `binary` chosen when offered, none otherwise; never the ticket.
    pub fn accept(&self) -> Response<Body> {
        let mut resp = Response::new(Body::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&self.accept_key) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if self.binary {
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static("binary"),
            );
        }
        resp
    }
}

/// The `ticket.<ticket>` subprotocol's ticket: at most one, and only with `binary`
/// offered alongside.
///
/// Strict where a balancer must see what the proxy sees: a balancer routes each ticket
/// to one proxy by hashing it (single use across a pool, docs/deployment.md), so an
/// offer it would read differently is refused rather than read another way. The prefix
/// is `ticket.` exactly (subprotocol names are case-sensitive), and the offer comes in
/// one `Sec-WebSocket-Protocol` header line, as browsers send it: a balancer reading
/// one line (HAProxy's `req.fhdr`, nginx's `$http_…`) cannot be shown another.
fn protocol_ticket(h: &HeaderMap, binary: bool) -> Result<Option<String>, Refusal> {
    let lines: Vec<&str> = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut tickets = lines
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().strip_prefix(TICKET_PROTOCOL));
    let Some(first) = tickets.next() else {
        return Ok(None);
    };
    if tickets.next().is_some() {
        return Err(Refusal::new(
            Code::AmbiguousTicket,
            "more than one ticket.<ticket> subprotocol offered; send one ticket",
        ));
    }
    if lines.len() > 1 {
        return Err(Refusal::new(
            Code::BadHandshake,
            "a ticket.<ticket> subprotocol must come in one Sec-WebSocket-Protocol header",
        ));
    }
    if !binary {
        return Err(Refusal::new(
            Code::BadHandshake,
            "a ticket.<ticket> subprotocol needs binary offered with it (the proxy answers binary)",
        ));
    }
    Ok(Some(first.to_string()))
}

pub(super) fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(protocols: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        for p in protocols {
            h.append(header::SEC_WEBSOCKET_PROTOCOL, p.parse().unwrap());
        }
        h
    }

    fn answered(h: &Handshake) -> Option<String> {
        h.accept()
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn a_ticket_subprotocol_is_taken_and_only_binary_is_answered() {
        let h = Handshake::read(&offered(&["binary, ticket.aaa.bbb.ccc"])).unwrap();
        assert_eq!(h.ticket(), Some("aaa.bbb.ccc"));
        assert_eq!(answered(&h).as_deref(), Some("binary"));
        // Either order; the ticket never shows in a debug print.
        let h = Handshake::read(&offered(&["ticket.x.y.z,binary"])).unwrap();
        assert_eq!(h.ticket(), Some("x.y.z"));
        assert!(!format!("{h:?}").contains("x.y.z"));
        // Another case is another protocol, as a balancer hashing `ticket.` reads it.
        let h = Handshake::read(&offered(&["binary, Ticket.x.y.z"])).unwrap();
        assert_eq!(h.ticket(), None);
        let h = Handshake::read(&offered(&["binary"])).unwrap();
        assert_eq!(
            (h.ticket(), answered(&h).as_deref()),
            (None, Some("binary"))
        );
        let h = Handshake::read(&offered(&[])).unwrap();
        assert_eq!((h.ticket(), answered(&h)), (None, None));
    }

    #[test]
    fn two_tickets_or_a_ticket_without_binary_are_refused() {
        let e = Handshake::read(&offered(&["binary, ticket.a.b.c, ticket.d.e.f"])).unwrap_err();
        assert_eq!(e.code, Code::AmbiguousTicket);
        let e = Handshake::read(&offered(&["ticket.a.b.c"])).unwrap_err();
        assert_eq!(e.code, Code::BadHandshake);
        assert!(!e.reason.contains("a.b.c"), "{}", e.reason);
        // Split over two header lines: a balancer reading one line sees another offer.
        let e = Handshake::read(&offered(&["ticket.a.b.c", "binary"])).unwrap_err();
        assert_eq!(e.code, Code::BadHandshake);
        assert!(
            e.reason.contains("one Sec-WebSocket-Protocol header"),
            "{}",
            e.reason
        );
    }
}

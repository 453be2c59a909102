//! The WebSocket handshake of RFC 6455 §4.2.1: is this request an upgrade, is it a
//! well-formed one, and the 101 answer.

use crate::refusal::{Code, Refusal};
use crate::util::http::Body;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// Whether the request asks for a WebSocket (then it is a session, never a page).
pub fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    header_has_token(h, header::UPGRADE, "websocket")
}

/// A well-formed handshake, ready to be answered.
pub struct Handshake {
    accept_key: String,
    /// The browser offered the `binary` subprotocol (noVNC before 1.2).
    binary: bool,
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
        Ok(Handshake {
            accept_key: tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                key.as_bytes(),
            ),
            binary: header_has_token(h, header::SEC_WEBSOCKET_PROTOCOL, "binary"),
        })
    }

    /// The 101 answer: `binary` chosen when offered, none otherwise.
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

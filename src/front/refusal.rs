//! Refusals as the front sends them: the HTTP answer (status, one-line reason,
//! `Retry-After` where waiting helps), and one log line each, capped per code so a
//! storm of bad requests cannot fill the disk. The codes themselves and what they
//! mean are the contract in [`crate::refusal`].

use super::pending::Over;
use super::Proxy;
use crate::admission::{log_fields, Rejected};
use crate::refusal::Refusal;
use crate::util::http::{self, Body};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpStream;
use tracing::warn;

impl Proxy {
    /// Logs, counts and answers a refusal.
    pub(super) fn refused(&self, client: SocketAddr, rejected: Rejected) -> Response<Body> {
        self.log_refusal(client, &rejected);
        self.gate.metrics().refused(rejected.refusal.code.as_str());
        response(&rejected.refusal)
    }

    /// A connection over a cap on unfinished connections: logged and counted as a
    /// refusal, answered without reading its request (with TLS on, closed: plain
    /// text would be garbage to a TLS client, and a handshake is what the cap saves).
    pub(super) fn turn_away(&self, stream: TcpStream, client: SocketAddr, over: Over) {
        let r = over.refusal();
        let answer = self
            .serving
            .tls_acceptor()
            .is_none()
            .then(|| raw_answer(&r));
        let rejected = Rejected::from(r);
        self.log_refusal(client, &rejected);
        self.gate.metrics().refused(rejected.refusal.code.as_str());
        self.serving.turn_away.send(stream, answer);
    }

    /// One log line per refusal, at most `refusals_per_second` a second per code; the
    /// rest are counted and summarised (here or by [`Proxy::log_suppressed`]).
    pub(super) fn log_refusal(&self, client: SocketAddr, rejected: &Rejected) {
        let r = &rejected.refusal;
        let code = r.code.as_str();
        let verdict = self.serving.refusal_log.note(code, Instant::now());
        if verdict.suppressed_before > 0 {
            let n = verdict.suppressed_before;
            warn!(
                code,
                suppressed = n,
                "suppressed {n} refusals (reason: {code})"
            );
        }
        if !verdict.log {
            return;
        }
        let (sub, jti, kid) = log_fields(rejected.ticket.as_deref());
        warn!(client = %client, status = r.code.status(), code, sub, jti, kid, reason = %r.reason, "refused");
    }

    /// Once a second: summaries of suppressed refusal lines, so a storm that stops
    /// still gets its count.
    pub(super) fn log_suppressed(&self, now: Instant) {
        for (code, n) in self.serving.refusal_log.flush(now) {
            warn!(
                code,
                suppressed = n,
                "suppressed {n} refusals (reason: {code})"
            );
        }
    }
}

/// The HTTP answer to a refusal before the upgrade.
fn response(r: &Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(r.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = http::text(status, &r.reason);
    let h = resp.headers_mut();
    if let Some(secs) = r.code.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UPGRADE_REQUIRED {
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    resp
}

/// The whole HTTP answer to a refusal, as bytes to write on a connection that is not
/// served: status, `Retry-After` where the code has one, the reason.
fn raw_answer(r: &Refusal) -> Vec<u8> {
    let status = StatusCode::from_u16(r.code.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    http::raw_text(status, r.code.retry_after(), &r.reason)
}

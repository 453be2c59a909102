//! `POST /consolegate/check`: the console page's pre-flight. A browser cannot read the
//! HTTP status of a refused WebSocket upgrade, only a close code, so the page asks
//! here first and shows the refusal's sentence. The check takes nothing: a single-use
//! ticket is only looked at ([`Gate::check`](crate::admission::Gate::check)).
//!
//! The body (the ticket) must arrive by the connection's handshake deadline, however
//! it comes (a `Content-Length` never met, a chunked body trickled a byte at a time):
//! past it the answer is 408 `request_timeout` and the connection is closed.

use super::Proxy;
use crate::admission::Rejected;
use crate::refusal::{Code, Refusal};
use crate::util::http::{self, Body};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;

/// Largest request body accepted (the ticket).
const MAX_BODY: usize = 16 << 10;

impl Proxy {
    pub(super) async fn check_endpoint(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Response<Body> {
        // The pre-flight verifies a ticket too: same bucket as handshakes.
        if let Err(r) = self.gate.throttle(client.ip()) {
            return self.refused(client, Rejected::from(r));
        }
        let body = Limited::new(req.into_body(), MAX_BODY).collect();
        let body = match tokio::time::timeout_at(deadline, body).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => return http::text(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            Err(_) => {
                let r = Refusal::new(
                    Code::RequestTimeout,
                    "the request body did not arrive in time",
                );
                let mut resp = self.refused(client, r.into());
                // The rest of the body may still be on its way: not this connection's.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
        };
        let ticket = String::from_utf8_lossy(&body).trim().to_string();
        let answer = match self.gate.check(&ticket).await {
            Ok(checked) => serde_json::json!({
                "ok": true,
                "kind": checked.ticket.claims.kind.as_str(),
                "exp": checked.ticket.claims.exp,
                "jti": checked.ticket.claims.jti,
            }),
            Err(Rejected { refusal: r, .. }) => serde_json::json!({
                "ok": false, "status": r.code.status(), "code": r.code.as_str(), "reason": r.reason,
            }),
        };
        self.json(&answer)
    }
}

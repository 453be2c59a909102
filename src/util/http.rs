//! Plain HTTP answers shared by the browsers' listener and the admin listener: a
//! one-line text answer and a JSON answer, neither cached nor sniffed.
//!
//! Kept as two functions on `hyper`'s own types rather than a web framework: the
//! proxy answers a handful of fixed routes, and a router would add more code than it
//! removes.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// Every answer the proxy builds has a fixed, fully buffered body.
pub type Body = Full<Bytes>;

/// `text` and a newline, as `text/plain`.
pub fn text(status: StatusCode, text: &str) -> Response<Body> {
    with_type(
        status,
        Bytes::from(format!("{text}\n")),
        "text/plain; charset=utf-8",
    )
}

/// `value` serialised, as `application/json`.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    // Serialising our own plain structs and `serde_json::Value` cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_type(status, Bytes::from(body), "application/json")
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

//! Plain HTTP answers shared by the browsers' listener and the admin listener: a
//! one-line text answer and a JSON answer, neither cached nor sniffed, and the same
//! text answer as raw bytes for a connection that is turned away unread.
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

/// `text` and a newline as a whole HTTP/1.1 answer in bytes, with `Retry-After` when
/// given and `Connection: close`: what a listener at its cap writes on a connection
/// it does not serve (see [`crate::util::accept::TurnAway`]).
pub fn raw_text(status: StatusCode, retry_after: Option<u32>, text: &str) -> Vec<u8> {
    let body = format!("{text}\n");
    let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{retry}Connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_answer_is_a_complete_response_with_retry_after_and_its_text() {
        let text = String::from_utf8(raw_text(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(1),
            "busy; try again",
        ))
        .unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 1\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 16\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nbusy; try again\n"), "{text}");
        let text = String::from_utf8(raw_text(StatusCode::TOO_MANY_REQUESTS, None, "x")).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(!text.contains("Retry-After"), "{text}");
    }
}

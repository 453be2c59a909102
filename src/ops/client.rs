//! A minimal HTTP/1.1 client for the admin API (the `sessions` and `kill`
//! subcommands, and tests): one request per connection, plain HTTP only.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// Why an admin request failed before an answer arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "admin URL {0:?}: expected http://HOST:PORT (plain HTTP; the admin listener has no TLS)"
    )]
    Url(String),
    #[error("cannot connect to the admin listener at {addr}: {cause} (is the proxy running with [admin] listen?)")]
    Connect { addr: String, cause: std::io::Error },
    #[error("admin request failed: {0}")]
    Http(hyper::Error),
    #[error("admin request: {0}")]
    Request(hyper::http::Error),
    #[error("the admin listener at {0} did not answer within 10 s")]
    Timeout(String),
}

// By hand rather than `#[from]`, which would also make the cause the error's
// `source()`: the message already carries it, and a printed chain would repeat it.
impl From<hyper::Error> for ClientError {
    fn from(e: hyper::Error) -> Self {
        ClientError::Http(e)
    }
}

impl From<hyper::http::Error> for ClientError {
    fn from(e: hyper::http::Error) -> Self {
        ClientError::Request(e)
    }
}

/// An answer: status and body text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// `http://host:port[/]` → `host:port`.
pub fn authority(url: &str) -> Result<String, ClientError> {
    let rest = url
        .trim()
        .strip_prefix("http://")
        .unwrap_or(url.trim())
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains("://") {
        return Err(ClientError::Url(url.to_string()));
    }
    Ok(rest.to_string())
}

/// Sends one request to the admin listener at `base`.
pub async fn request(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Answer, ClientError> {
    let addr = authority(base)?;
    tokio::time::timeout(
        Duration::from_secs(10),
        send(&addr, method, path, token, body),
    )
    .await
    .map_err(|_| ClientError::Timeout(addr.clone()))?
}

async fn send(
    addr: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Answer, ClientError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|cause| ClientError::Connect {
            addr: addr.to_string(),
            cause,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_are_plain_http_host_and_port() {
        assert_eq!(
            authority("http://127.0.0.1:6101").unwrap(),
            "127.0.0.1:6101"
        );
        assert_eq!(authority("http://[::1]:6101/").unwrap(), "[::1]:6101");
        assert_eq!(authority("localhost:6101").unwrap(), "localhost:6101");
        for bad in ["https://h:1", "http://h:1/x", "", "http://u@h:1"] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }
}

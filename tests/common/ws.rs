//! The browser's side: WebSocket clients (tokio-tungstenite, or raw bytes on TCP for
//! what tungstenite will not send), refused handshakes, close frames, echoes, masked
//! frames, and the console page's pre-flight check.

use super::LIMIT;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A handshake request for `url` with extra headers.
pub fn request(url: &str, headers: &[(&str, &str)]) -> Request {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req
}

/// Opens a session; a refusal comes back as `HTTP <status>`, other failures as text.
pub async fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, String> {
    match timeout(
        LIMIT,
        tokio_tungstenite::connect_async(request(url, headers)),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Err(format!("HTTP {}", resp.status().as_u16()))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// The status and body of a refused WebSocket handshake.
pub async fn refused(url: &str) -> (u16, String) {
    refused_with(url, &[]).await
}

/// The same with extra request headers.
pub async fn refused_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match tokio_tungstenite::connect_async(request(url, headers)).await {
        Ok(_) => panic!("handshake to {url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Reads until a close frame and returns its code and reason (1005 and "" for a close
/// frame without a code); skips data and pings. Fails the test on anything else.
pub async fn close_of<S>(ws: &mut WebSocketStream<S>) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    try_close_of(ws).await.unwrap_or_else(|e| panic!("{e}"))
}

/// [`close_of`] as a result, for tasks that report instead of failing.
pub async fn try_close_of<S>(ws: &mut WebSocketStream<S>) -> Result<(u16, String), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match timeout(LIMIT, ws.next()).await {
            Err(_) => return Err(format!("no close frame within {LIMIT:?}")),
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return Ok((u16::from(f.code), f.reason.to_string()))
            }
            Ok(Some(Ok(Message::Close(None)))) => return Ok((1005, String::new())),
            Ok(Some(Ok(_))) => {}
            Ok(other) => return Err(format!("expected a close frame, got {other:?}")),
        }
    }
}

/// Reads `n` payload bytes, skipping pings and pongs.
pub async fn read_binary<S>(ws: &mut WebSocketStream<S>, n: usize) -> Result<Vec<u8>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut got = Vec::new();
    while got.len() < n {
        match timeout(LIMIT, ws.next()).await {
            Err(_) => return Err(format!("no data after {} of {n} bytes", got.len())),
            Ok(Some(Ok(Message::Binary(b)))) => got.extend_from_slice(&b),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => return Err(format!("{other:?} after {} of {n} bytes", got.len())),
        }
    }
    Ok(got)
}

/// Sends `msg` to an echoing console server and reads it back whole.
pub async fn echo_once<S>(ws: &mut WebSocketStream<S>, msg: &[u8]) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::binary(msg.to_vec()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let back = read_binary(ws, msg.len()).await?;
    if back != msg {
        return Err(format!(
            "echo differs: {:?}",
            String::from_utf8_lossy(&back)
        ));
    }
    Ok(())
}

/// Closes from the browser's side and waits (bounded) for the proxy's answer.
pub async fn close_politely<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = ws.close(None).await;
    let _ = timeout(LIMIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

/// A WebSocket upgrade request for `path`, with `extra` header lines (each ending in
/// CRLF) before the blank line.
pub fn upgrade_request(path: &str, host: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// A raw WebSocket handshake on TCP; returns the stream after the 101, or the status
/// line of the refusal.
pub async fn raw_upgrade(addr: SocketAddr, path: &str, extra: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(upgrade_request(path, &addr.to_string(), extra).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let head = read_head(&mut s).await?;
    if head.starts_with("HTTP/1.1 101") {
        Ok(s)
    } else {
        Err(head.lines().next().unwrap_or("").to_string())
    }
}

/// A TCP connection to `addr` from the loopback address `source` (any of 127.0.0.0/8
/// reaches a loopback listener), for tests that need a second client address.
pub async fn connect_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// [`raw_upgrade`] from the loopback address `source`; a refusal comes back whole
/// (head and reason).
pub async fn raw_upgrade_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
) -> Result<TcpStream, String> {
    let mut s = connect_from(source, addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(upgrade_request(path, &addr.to_string(), "").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let head = read_head(&mut s).await?;
    if head.starts_with("HTTP/1.1 101") {
        return Ok(s);
    }
    // A refusal: its head and its one-line reason.
    let mut body = Vec::new();
    let _ = timeout(LIMIT, s.read_to_end(&mut body)).await;
    Err(format!("{head}{}", String::from_utf8_lossy(&body)))
}

/// Reads an HTTP response head byte by byte (so nothing after it is consumed).
pub async fn read_head(s: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match timeout(LIMIT, s.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            Ok(Ok(_)) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer".into()),
        }
        if head.len() > 64 << 10 {
            return Err("head too long".into());
        }
    }
    Ok(String::from_utf8_lossy(&head).to_string())
}

/// A masked client frame: `first` is the FIN bit and opcode byte.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    f.extend(key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// A whole HTTP/1.1 exchange on a fresh connection (`Connection: close`): the raw
/// response, head and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content}Connection: close\r\n\r\n{body}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    timeout(LIMIT, s.read_to_string(&mut out))
        .await
        .expect("the proxy answered in time")
        .unwrap();
    out
}

/// Writes `req` as it is on a fresh connection and returns everything the peer sends
/// back until it closes (bounded); for requests no client library would send.
pub async fn raw_exchange(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The peer may answer and close before reading everything; a write error is fine.
    let _ = s.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = timeout(LIMIT, s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).to_string()
}

/// The console page's pre-flight check (`POST /consolegate/check`): its JSON answer.
pub async fn preflight_check(addr: SocketAddr, ticket: &str) -> serde_json::Value {
    let resp = http(addr, "POST", "/consolegate/check", ticket).await;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

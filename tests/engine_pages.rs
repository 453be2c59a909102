//! The demo engine page (`web/engine-demo.*`) and its ticket endpoint belong to
//! `consolegate demo` only: a production proxy serves the console page and nothing
//! that plays the engine's part.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

/// Status and body of one plain HTTP request.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    timeout(Duration::from_secs(10), s.read_to_string(&mut resp))
        .await
        .expect("an answer")
        .unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn a_production_proxy_serves_no_engine_page_and_no_ticket_endpoint() {
    let p = TestProxy::start(|_| {}).await;
    assert_eq!(http(p.addr, "GET", "/console.html").await.0, 200);
    for page in ["/engine-demo.html", "/engine-demo.js", "/engine-demo.css"] {
        assert_eq!(http(p.addr, "GET", page).await.0, 404, "{page}");
        assert_eq!(http(p.addr, "HEAD", page).await.0, 404, "{page}");
    }
    assert_eq!(http(p.addr, "POST", "/demo/ticket").await.0, 405);
}

#[tokio::test]
async fn the_demo_serves_its_engine_page_and_signs_tickets_for_it() {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut child = Command::new(env!("CARGO_BIN_EXE_consolegate"))
        .arg("demo")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--web-dir")
        .arg(&web)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("consolegate demo starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("WebSocket URL:") {
                break;
            }
        }
    })
    .await
    .expect("the demo started");
    let (status, body) = http(addr, "GET", "/engine-demo.html").await;
    assert_eq!(status, 200);
    assert!(body.contains("open-console"), "{body}");
    assert_eq!(http(addr, "GET", "/engine-demo.js").await.0, 200);
    let (status, body) = http(addr, "POST", "/demo/ticket").await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["ticket"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(answer["kind"], "vnc");
    let _ = child.kill().await;
}

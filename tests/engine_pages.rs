//! The demo engine page (`web/engine-demo.*`) and its ticket endpoint belong to
//! `consolegate demo` only: a production proxy serves the console page and nothing
//! that plays the engine's part.

mod common;

use common::*;
use std::net::SocketAddr;

/// Status and body of one plain HTTP request.
async fn status_and_body(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let resp = http(addr, method, path, "").await;
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
    assert_eq!(status_and_body(p.addr, "GET", "/console.html").await.0, 200);
    for page in ["/engine-demo.html", "/engine-demo.js", "/engine-demo.css"] {
        assert_eq!(status_and_body(p.addr, "GET", page).await.0, 404, "{page}");
        assert_eq!(status_and_body(p.addr, "HEAD", page).await.0, 404, "{page}");
    }
    assert_eq!(status_and_body(p.addr, "POST", "/demo/ticket").await.0, 405);
}

#[tokio::test]
async fn the_demo_serves_its_engine_page_and_signs_tickets_for_it() {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let demo = DemoProcess::start(&["--web-dir".into(), web.into()]).await;
    let addr = demo.addr;
    let (status, body) = status_and_body(addr, "GET", "/engine-demo.html").await;
    assert_eq!(status, 200);
    assert!(body.contains("open-console"), "{body}");
    assert_eq!(status_and_body(addr, "GET", "/engine-demo.js").await.0, 200);
    let (status, body) = status_and_body(addr, "POST", "/demo/ticket").await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["ticket"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(answer["kind"], "vnc");
}

//! `consolegate demo`, the README's first command, end to end: the binary starts, the
//! URL it prints reaches the embedded console server through the proxy, and the VNC
//! password it prints opens that console.

mod common;

use common::*;
use futures_util::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_printed_url_reaches_the_demo_console_server() {
    // Port 0: the demo listens where the system puts it and prints that port.
    let demo = DemoProcess::start(&[]).await;
    assert_eq!(demo.addr.ip().to_string(), "127.0.0.1", "{}", demo.url);
    assert_ne!(demo.addr.port(), 0, "{}", demo.url);
    assert_eq!(demo.password.len(), 8);

    let (mut ws, _) = tokio_tungstenite::connect_async(&demo.url)
        .await
        .expect("the printed URL is accepted");
    let banner = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    match banner {
        Message::Binary(b) => assert_eq!(b.as_ref(), b"RFB 003.008\n"),
        other => panic!("expected the RFB banner, got {other:?}"),
    }
}

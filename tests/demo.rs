//! `consolegate demo`, the README's first command, end to end: the binary starts, the
//! URL it prints reaches the embedded console server through the proxy, and the VNC
//! password it prints opens that console.

mod common;

use common::*;
use futures_util::StreamExt;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_printed_url_reaches_the_demo_console_server() {
    // Port 0: the demo listens where the system puts it and prints that port.
    let mut child = Command::new(consolegate_bin())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("consolegate demo starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut password) = (None, None);
    timeout(LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.trim().strip_prefix("WebSocket URL:") {
                url = Some(u.trim().to_string());
            }
            if let Some(p) = line.trim().strip_prefix("VNC password:") {
                password = Some(p.trim().to_string());
            }
            if url.is_some() && password.is_some() {
                break;
            }
        }
    })
    .await
    .expect("the demo printed its URL and password");
    let url = url.unwrap();
    let port = url
        .strip_prefix("ws://127.0.0.1:")
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok());
    assert!(port.is_some_and(|p| p != 0), "{url}");
    assert_eq!(password.unwrap().len(), 8);

    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the printed URL is accepted");
    let banner = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    match banner {
        Message::Binary(b) => assert_eq!(b.as_ref(), b"RFB 003.008\n"),
        other => panic!("expected the RFB banner, got {other:?}"),
    }
    child.kill().await.ok();
}

//! The bare TCP relay baseline: accept, connect to the backend, copy both ways with
//! tokio's `copy_bidirectional`. No WebSocket framing, no ticket, no TLS: the ceiling a
//! proxy written on the same runtime could reach. 64 KiB buffers each way, like the
//! proxy's relay, so the baseline is not handicapped by tokio's 8 KiB default.

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

const BUF: usize = 64 << 10;

/// Relays every connection on `listen` to `target` until killed.
pub async fn serve(listen: &str, target: &str) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("relay: bind {listen}"))?;
    let target = target.to_string();
    loop {
        let (mut client, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("relay: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let target = target.clone();
        tokio::spawn(async move {
            let mut server = match TcpStream::connect(&target).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("relay: connect {target}: {e}");
                    return;
                }
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            // Errors here are the peers hanging up: nothing to report.
            let _ =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUF, BUF).await;
        });
    }
}

//! The embedded demo console server: a small RFB 3.8 server that draws a test pattern
//! and asks for a VNC password, so `consolegate demo` works with nothing installed.

use tokio::net::{TcpListener, TcpStream};

/// Serves RFB clients from `listener` until the task is dropped.
pub async fn run_rfb_server(
    listener: TcpListener,
    password: Option<String>,
) -> std::io::Result<()> {
    let _ = (listener, password);
    todo!()
}

/// Serves one RFB client.
pub async fn serve_rfb_client(stream: TcpStream, password: Option<&str>) -> std::io::Result<()> {
    let _ = (stream, password);
    todo!()
}

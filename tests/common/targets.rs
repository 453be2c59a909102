//! Console-server stand-ins on loopback: one that hands its one connection to the
//! test, one that echoes, and a port that refuses connections (until the test makes
//! it listen).

use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

/// Accepts one connection and hands it to the test.
pub async fn one_shot_target() -> (SocketAddr, oneshot::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok((s, _)) = listener.accept().await {
            let _ = tx.send(s);
        }
    });
    (addr, rx)
}

/// Echoes every connection, after sending `banner` first (nothing when empty).
pub async fn echo_target_with_banner(banner: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(banner).await.is_ok() {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    addr
}

/// Echoes every connection.
pub async fn echo_target() -> SocketAddr {
    echo_target_with_banner(b"").await
}

/// A loopback port that refuses connections: bound but not listening, and held for
/// as long as this value lives, so nobody else can start listening there meanwhile
/// (a port bound and released at once could be anyone's a moment later).
pub struct RefusingPort {
    _socket: TcpSocket,
    pub addr: SocketAddr,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        RefusingPort {
            _socket: socket,
            addr,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The console server comes up at this address: from now on it accepts
    /// connections (on the listener returned) where it refused them, and no one else
    /// could have taken the port in between.
    pub fn start_listening(self) -> TcpListener {
        self._socket.listen(64).unwrap()
    }
}

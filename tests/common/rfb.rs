//! RFB (VNC) on both sides of the proxy, for the view-only tests:
//! - [`RfbServer`]: a console server that does the RFB 3.8 handshake (security None
//!   or VNC authentication, any response accepted), keeps the ClientInit `shared` flag
//!   it got, and then records every byte the proxy forwards; the test writes whatever
//!   it likes down to the browser;
//! - [`RfbBrowser`]: the browser's side over a WebSocket, as noVNC speaks it;
//! - the client messages (RFC 6143 §7.5 and the common extensions) as bytes.

use super::wait::wait_until;
use super::LIMIT;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

pub const RFB_38: &[u8; 12] = b"RFB 003.008\n";
/// The framebuffer the test server announces.
pub const WIDTH: u16 = 64;
pub const HEIGHT: u16 = 48;
pub const NAME: &[u8] = b"view-only test";

/// The security type the test server offers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sec {
    None = 1,
    VncAuth = 2,
}

/// One connection the test server accepted, after its handshake.
pub struct ServerConn {
    /// The ClientInit `shared` flag as it arrived.
    pub shared: u8,
    /// Every byte received after ClientInit.
    pub received: Arc<Mutex<Vec<u8>>>,
    /// Set when the proxy closed the connection.
    pub closed: Arc<Mutex<bool>>,
    down: mpsc::UnboundedSender<Vec<u8>>,
}

impl ServerConn {
    /// What arrived so far.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until what arrived ends with `sentinel` (a message sent last: everything
    /// sent before it has been through the proxy), then returns all of it.
    pub async fn received_through(&self, sentinel: &[u8]) -> Vec<u8> {
        let received = self.received.clone();
        let closed = self.closed.clone();
        wait_until("the sentinel message at the console server", LIMIT, || {
            received.lock().unwrap().ends_with(sentinel) || *closed.lock().unwrap()
        })
        .await;
        let got = self.received();
        assert!(
            got.ends_with(sentinel),
            "the proxy closed the connection before the sentinel; got {got:?}"
        );
        got
    }

    /// Waits until the proxy has closed the connection.
    pub async fn wait_closed(&self) {
        let closed = self.closed.clone();
        wait_until("the proxy to close the console connection", LIMIT, || {
            *closed.lock().unwrap()
        })
        .await;
    }

    /// Sends bytes to the browser.
    pub fn send(&self, bytes: &[u8]) {
        let _ = self.down.send(bytes.to_vec());
    }
}

/// A recording RFB 3.8 server on loopback; each accepted connection is handed to the
/// test once its handshake is through.
pub struct RfbServer {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<ServerConn>,
}

impl RfbServer {
    pub async fn start(sec: Sec) -> RfbServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = serve(s, sec).await {
                        let _ = tx.send(conn);
                    }
                });
            }
        });
        RfbServer { addr, conns }
    }

    /// The next connection, once its handshake is through.
    pub async fn accepted(&mut self) -> ServerConn {
        timeout(LIMIT, self.conns.recv())
            .await
            .expect("a connection through its RFB handshake in time")
            .expect("the server runs")
    }
}

/// The server's half of the handshake, then a task per direction.
async fn serve(mut s: TcpStream, sec: Sec) -> std::io::Result<ServerConn> {
    s.write_all(RFB_38).await?;
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await?;
    s.write_all(&[1, sec as u8]).await?;
    let choice = s.read_u8().await?;
    if choice != sec as u8 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    if sec == Sec::VncAuth {
        s.write_all(&[0x5A; 16]).await?;
        let mut response = [0u8; 16];
        s.read_exact(&mut response).await?;
    }
    s.write_all(&[0, 0, 0, 0]).await?;
    let shared = s.read_u8().await?;
    s.write_all(&server_init()).await?;
    let received = Arc::new(Mutex::new(Vec::new()));
    let closed = Arc::new(Mutex::new(false));
    let (down, mut down_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (mut r, mut w) = s.into_split();
    let (rec, done) = (received.clone(), closed.clone());
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rec.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
        *done.lock().unwrap() = true;
    });
    tokio::spawn(async move {
        while let Some(bytes) = down_rx.recv().await {
            if w.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    Ok(ServerConn {
        shared,
        received,
        closed,
        down,
    })
}

/// ServerInit: the framebuffer size, a 32-bit true-colour pixel format, the name.
pub fn server_init() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&WIDTH.to_be_bytes());
    m.extend_from_slice(&HEIGHT.to_be_bytes());
    m.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    m.extend_from_slice(&(NAME.len() as u32).to_be_bytes());
    m.extend_from_slice(NAME);
    m
}

/// A FramebufferUpdate of one raw 1x1 rectangle at (x, 0).
pub fn framebuffer_update(x: u16, pixel: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0, 0, 0, 1];
    m.extend_from_slice(&x.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(&pixel);
    m
}

// ------------------------------------------------------------------ the browser side

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The browser's side: reads the relayed bytes as one stream, as noVNC does.
pub struct RfbBrowser {
    pub ws: WsStream,
    buf: Vec<u8>,
    /// Bits per pixel of the ServerInit's pixel format.
    bpp: u8,
}

impl RfbBrowser {
    /// Opens a session; panics on a refusal.
    pub async fn open(url: &str) -> RfbBrowser {
        let (ws, resp) = timeout(LIMIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("upgrade in time")
            .expect("upgrade accepted");
        assert_eq!(resp.status(), 101);
        RfbBrowser {
            ws,
            buf: Vec::new(),
            bpp: 32,
        }
    }

    pub async fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            match timeout(LIMIT, self.ws.next()).await.expect("bytes in time") {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected {n} bytes, have {}: {other:?}", self.buf.len()),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Sends `bytes` as one WebSocket message.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    /// The handshake up to the SecurityResult, answering VNC authentication with
    /// `response` (the test server takes any; QEMU wants the password's).
    pub async fn security(&mut self, response: impl FnOnce(&[u8]) -> Vec<u8>) -> Sec {
        assert_eq!(self.read(12).await, RFB_38);
        self.send(RFB_38).await;
        let types = self.read(2).await;
        assert_eq!(types[0], 1, "one security type offered: {types:?}");
        let sec = match types[1] {
            1 => Sec::None,
            2 => Sec::VncAuth,
            other => panic!("security type {other}"),
        };
        self.send(&[sec as u8]).await;
        if sec == Sec::VncAuth {
            let challenge = self.read(16).await;
            self.send(&response(&challenge)).await;
        }
        assert_eq!(self.read(4).await, [0, 0, 0, 0], "SecurityResult OK");
        sec
    }

    /// ClientInit with `shared`, then the ServerInit: the framebuffer size.
    pub async fn init(&mut self, shared: u8) -> (u16, u16) {
        self.send(&[shared]).await;
        let init = self.read(24).await;
        let w = u16::from_be_bytes([init[0], init[1]]);
        let h = u16::from_be_bytes([init[2], init[3]]);
        self.bpp = init[4];
        let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
        self.read(name_len).await;
        (w, h)
    }

    /// Reads one whole FramebufferUpdate in raw encoding (what a server sends a client
    /// that sent no SetEncodings) and returns its rectangle count.
    pub async fn read_update(&mut self) -> u16 {
        let head = self.read(4).await;
        assert_eq!(
            head[0], 0,
            "a FramebufferUpdate, got message type {}",
            head[0]
        );
        let rects = u16::from_be_bytes([head[2], head[3]]);
        for _ in 0..rects {
            let r = self.read(12).await;
            let w = usize::from(u16::from_be_bytes([r[4], r[5]]));
            let h = usize::from(u16::from_be_bytes([r[6], r[7]]));
            let encoding = i32::from_be_bytes([r[8], r[9], r[10], r[11]]);
            assert_eq!(encoding, 0, "raw encoding");
            self.read(w * h * usize::from(self.bpp / 8)).await;
        }
        rects
    }

    /// The close the proxy sent: code and reason (data before it is skipped).
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match timeout(LIMIT, self.ws.next()).await.expect("close in time") {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

// ------------------------------------------------------------------ client messages

pub mod msg {
    //! Client messages as a browser sends them.

    pub fn set_pixel_format() -> Vec<u8> {
        let mut m = vec![0, 0, 0, 0];
        m.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        m
    }

    pub fn set_encodings(list: &[i32]) -> Vec<u8> {
        let mut m = vec![2, 0];
        m.extend_from_slice(&(list.len() as u16).to_be_bytes());
        for e in list {
            m.extend_from_slice(&e.to_be_bytes());
        }
        m
    }

    /// noVNC 1.7's list, ExtendedMouseButtons (-316) included.
    pub fn novnc_encodings() -> Vec<u8> {
        set_encodings(&[
            1,
            7,
            -260,
            16,
            6,
            5,
            0,
            -23,
            -247,
            -223,
            -224,
            -258,
            -261,
            -307,
            -308,
            -312,
            -313,
            -309,
            -1063131698,
            -314,
            -316,
            -239,
        ])
    }

    pub fn fb_update_request(incremental: bool, x: u16) -> Vec<u8> {
        let mut m = vec![3, u8::from(incremental)];
        m.extend_from_slice(&x.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 64, 0, 48]);
        m
    }

    pub fn key_event(down: bool, keysym: u32) -> Vec<u8> {
        let mut m = vec![4, u8::from(down), 0, 0];
        m.extend_from_slice(&keysym.to_be_bytes());
        m
    }

    pub fn pointer_event(mask: u8, x: u16, y: u16) -> Vec<u8> {
        let mut m = vec![5, mask & 0x7F];
        m.extend_from_slice(&x.to_be_bytes());
        m.extend_from_slice(&y.to_be_bytes());
        m
    }

    /// The ExtendedMouseButtons form: marker bit, one more byte of buttons.
    pub fn extended_pointer_event(mask: u8, high: u8, x: u16, y: u16) -> Vec<u8> {
        let mut m = vec![5, mask | 0x80];
        m.extend_from_slice(&x.to_be_bytes());
        m.extend_from_slice(&y.to_be_bytes());
        m.push(high);
        m
    }

    pub fn client_cut_text(text: &[u8]) -> Vec<u8> {
        let mut m = vec![6, 0, 0, 0];
        m.extend_from_slice(&(text.len() as u32).to_be_bytes());
        m.extend_from_slice(text);
        m
    }

    /// Extended clipboard: a negative length.
    pub fn extended_clipboard(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![6, 0, 0, 0];
        m.extend_from_slice(&(-(payload.len() as i32)).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    pub fn enable_continuous_updates(enable: bool) -> Vec<u8> {
        let mut m = vec![150, u8::from(enable)];
        m.extend_from_slice(&[0, 0, 0, 0, 0, 64, 0, 48]);
        m
    }

    pub fn fence(flags: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![248, 0, 0, 0];
        m.extend_from_slice(&flags.to_be_bytes());
        m.push(payload.len() as u8);
        m.extend_from_slice(payload);
        m
    }

    /// XVP: version 1, operation (2 shutdown, 3 reboot, 4 reset).
    pub fn xvp(op: u8) -> Vec<u8> {
        vec![250, 0, 1, op]
    }

    pub fn set_desktop_size(w: u16, h: u16) -> Vec<u8> {
        let mut m = vec![251, 0];
        m.extend_from_slice(&w.to_be_bytes());
        m.extend_from_slice(&h.to_be_bytes());
        m.extend_from_slice(&[1, 0]);
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&w.to_be_bytes());
        m.extend_from_slice(&h.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m
    }

    /// QEMU extended key event: keysym and XT scancode.
    pub fn qemu_key_event(down: bool, keysym: u32, scancode: u32) -> Vec<u8> {
        let mut m = vec![255, 0, 0, u8::from(down)];
        m.extend_from_slice(&keysym.to_be_bytes());
        m.extend_from_slice(&scancode.to_be_bytes());
        m
    }

    /// QEMU audio: 0 enable, 1 disable, 2 set format (then format, channels, rate).
    pub fn qemu_audio(op: u16) -> Vec<u8> {
        let mut m = vec![255, 1];
        m.extend_from_slice(&op.to_be_bytes());
        if op == 2 {
            m.extend_from_slice(&[3, 2, 0, 0, 0xAC, 0x44]);
        }
        m
    }
}

/// VNC authentication: the challenge encrypted with DES under the bit-reversed password.
pub fn vnc_response(challenge: &[u8], password: &str) -> Vec<u8> {
    use des::cipher::generic_array::GenericArray;
    use des::cipher::{BlockEncrypt, KeyInit};
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new(GenericArray::from_slice(&key));
    let mut out = challenge.to_vec();
    for block in out.chunks_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

//! The generator's one client: a TCP (optionally TLS) connection that either carries the
//! byte stream as is (`tcp://`: the bare relay and the backend directly) or wraps it in
//! RFC 6455 client framing (`ws://`, `wss://`: consolegate and websockify).
//!
//! The framing is our own and deliberately minimal, because the generator must cost less
//! than what it measures: payload is handed out as slices of one large read buffer (no
//! per-message allocation), outgoing frames are built in one write buffer and flushed in
//! large writes, and masking XORs eight bytes at a time.

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_rustls::TlsConnector;

/// Anything we can read and write: a TCP stream or a TLS stream over one.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// RFB mode of a target (`proto::RFB_COMMAND_HEADER`): none, a VNC session
/// (`vnc+ws://`), or a VNC session whose uploads are input a view-only proxy filters
/// (`vncview+ws://`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vnc {
    No,
    Plain,
    View,
}

/// How to reach one target, parsed once from its URL.
#[derive(Clone)]
pub struct Target {
    /// Name used in the results (`consolegate-ws`, `bare-relay`, ...).
    pub name: String,
    pub addr: SocketAddr,
    /// WebSocket framing on top of the stream.
    pub ws: bool,
    /// After the upgrade, the browser's side of RFB 3.8 with security type None, as
    /// noVNC does it with the proxy's VeNCrypt bridge (`rfb+ws://`).
    pub rfb: bool,
    /// A VNC session to a `backend --rfb` (implies `rfb` and ClientInit).
    pub vnc: Vnc,
    /// `Some` for `wss://`.
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Request target for the upgrade, e.g. `/?token=…`.
    pub path: String,
    /// `Host` header value.
    pub host: String,
}

impl Target {
    /// Parses `tcp://IP:PORT`, `tls://IP:PORT` (TLS, then the byte stream as is: a TLS
    /// relay such as nginx `stream`), `ws://IP:PORT/PATH`, `wss://IP:PORT/PATH` or
    /// `rfb+ws://IP:PORT/PATH`. `ca` is the PEM certificate that `wss://` and `tls://`
    /// servers must chain to.
    pub fn parse(name: &str, url: &str, ca: Option<&std::path::Path>) -> Result<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow!("{url}: no scheme"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let addr: SocketAddr = hostport
            .parse()
            .with_context(|| format!("{url}: need IP:PORT"))?;
        let vnc = match scheme {
            "vnc+ws" => Vnc::Plain,
            "vncview+ws" => Vnc::View,
            _ => Vnc::No,
        };
        let rfb = scheme == "rfb+ws" || vnc != Vnc::No;
        let (ws, tls) = match scheme {
            "tcp" => (false, None),
            "ws" | "rfb+ws" | "vnc+ws" | "vncview+ws" => (true, None),
            "wss" | "tls" => {
                let ca = ca.ok_or_else(|| anyhow!("{url}: {scheme}:// needs --ca"))?;
                (
                    scheme == "wss",
                    Some((tls_connector(ca)?, ServerName::IpAddress(addr.ip().into()))),
                )
            }
            other => bail!("{url}: unknown scheme {other}"),
        };
        Ok(Target {
            name: name.to_string(),
            addr,
            ws,
            rfb,
            vnc,
            tls,
            path,
            host: hostport.to_string(),
        })
    }
}

fn tls_connector(ca: &std::path::Path) -> Result<TlsConnector> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("read {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parse {}", ca.display()))?)?;
    }
    // Offer the cipher suites in a browser's order (Chrome and Firefox on CPUs with AES
    // instructions: AES-128-GCM, AES-256-GCM, then ChaCha20-Poly1305), so every TLS
    // target negotiates what a browser would get rather than rustls's own first choice.
    use rustls::crypto::ring::cipher_suite as cs;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every session is a full handshake: the connect-rate figure is about new sessions.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Largest frame header a server may send us (2 + 8; servers never mask).
const MAX_HEADER: usize = 14;
/// Flush the write buffer once it holds this much.
const WBUF_FLUSH: usize = 256 << 10;

/// One connection to a target, after the upgrade (for ws) and before the banner.
pub struct Conn {
    io: Box<dyn Io>,
    ws: bool,
    /// The target's RFB mode: how commands and uploads are sent.
    pub vnc: Vnc,
    rbuf: Vec<u8>,
    /// Unconsumed bytes are `rbuf[rpos..rend]`.
    rpos: usize,
    rend: usize,
    /// Payload bytes of the current data frame not yet handed out.
    frame_left: u64,
    wbuf: Vec<u8>,
    /// How much of `wbuf` is already written: a flush cancelled half way (the busy-host
    /// sessions wait for data and for their next input at once) resumes there.
    wpos: usize,
    /// The TLS version and cipher suite negotiated, for the report's notes.
    pub tls: Option<String>,
    /// xorshift state for masking keys (RFC 6455 wants them unpredictable to
    /// intermediaries; a benchmark only needs them to vary).
    rng: u64,
}

impl Conn {
    /// Connects, does TLS and the WebSocket upgrade as the target needs. `rbuf` sizes
    /// the read buffer: large for throughput, small for thousands of idle sessions.
    pub async fn connect(t: &Target, rbuf: usize) -> Result<Conn> {
        let tcp = TcpStream::connect(t.addr)
            .await
            .with_context(|| format!("connect {}", t.addr))?;
        tcp.set_nodelay(true)?;
        let mut tls = None;
        let io: Box<dyn Io> = match &t.tls {
            Some((connector, name)) => {
                let s = connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                let c = s.get_ref().1;
                tls = Some(format!(
                    "{:?} {:?}",
                    c.protocol_version()
                        .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
                    c.negotiated_cipher_suite().map(|s| s.suite())
                ));
                Box::new(s)
            }
            None => Box::new(tcp),
        };
        let seed = (t.addr.port() as u64) << 32
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
        let mut c = Conn {
            io,
            ws: t.ws,
            vnc: t.vnc,
            rbuf: vec![0u8; rbuf.max(4096)],
            rpos: 0,
            rend: 0,
            frame_left: 0,
            wbuf: Vec::new(),
            wpos: 0,
            tls,
            rng: seed | 1,
        };
        if t.ws {
            c.upgrade(t).await?;
        }
        if t.rfb {
            c.rfb_none().await.context("RFB greeting")?;
        }
        if t.vnc != Vnc::No {
            // ClientInit, shared.
            c.send(&[1], 64).await?;
        }
        Ok(c)
    }

    /// The browser's side of RFB 3.8 up to the SecurityResult, choosing security type
    /// None (1): what the proxy offers for a VeNCrypt X509None console server. Part of
    /// every session's cost, so the connect-rate and first-byte figures include it.
    async fn rfb_none(&mut self) -> Result<()> {
        const RFB_38: &[u8; 12] = b"RFB 003.008\n";
        let mut version = [0u8; 12];
        self.recv_exact(&mut version).await?;
        ensure!(
            &version == RFB_38,
            "version {:?}",
            String::from_utf8_lossy(&version)
        );
        self.send(RFB_38, 64).await?;
        let mut count = [0u8; 1];
        self.recv_exact(&mut count).await?;
        let mut types = vec![0u8; usize::from(count[0])];
        self.recv_exact(&mut types).await?;
        ensure!(types.contains(&1), "security types {types:?} lack None (1)");
        self.send(&[1], 64).await?;
        let mut result = [0u8; 4];
        self.recv_exact(&mut result).await?;
        ensure!(result == [0; 4], "SecurityResult {result:?}");
        Ok(())
    }

    async fn upgrade(&mut self, t: &Target) -> Result<()> {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            t.path, t.host
        );
        self.io.write_all(req.as_bytes()).await?;
        // Read until the end of the response head; bytes after it are already frames.
        loop {
            if let Some(end) = find(&self.rbuf[..self.rend], b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.rbuf[..end]).to_string();
                let status = head.lines().next().unwrap_or("");
                if !status.starts_with("HTTP/1.1 101") {
                    let body = String::from_utf8_lossy(&self.rbuf[end + 4..self.rend]).to_string();
                    bail!("upgrade refused: {status} {}", body.trim());
                }
                self.rpos = end + 4;
                return Ok(());
            }
            if self.rend == self.rbuf.len() {
                bail!(
                    "upgrade response head larger than {} bytes",
                    self.rbuf.len()
                );
            }
            let k = self.io.read(&mut self.rbuf[self.rend..]).await?;
            if k == 0 {
                bail!("connection closed during the upgrade (refused ticket?)");
            }
            self.rend += k;
        }
    }

    /// Reads more into the buffer, keeping `rbuf[rpos..rend]`. Returns the count read.
    async fn fill(&mut self) -> Result<usize> {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rbuf.len() - self.rend < MAX_HEADER {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        let k = self.io.read(&mut self.rbuf[self.rend..]).await?;
        self.rend += k;
        Ok(k)
    }

    /// The next payload bytes, as many as are buffered; `None` at the end of the stream
    /// (TCP EOF or a WebSocket close frame).
    pub async fn recv(&mut self) -> Result<Option<&[u8]>> {
        let (start, len) = loop {
            let avail = self.rend - self.rpos;
            if !self.ws || self.frame_left > 0 {
                if avail == 0 {
                    if self.fill().await? == 0 {
                        return Ok(None);
                    }
                    continue;
                }
                let len = if self.ws {
                    (self.frame_left.min(avail as u64)) as usize
                } else {
                    avail
                };
                if self.ws {
                    self.frame_left -= len as u64;
                }
                let start = self.rpos;
                self.rpos += len;
                break (start, len);
            }
            // At a frame boundary: parse the next header.
            let Some((hlen, opcode, plen)) = parse_header(&self.rbuf[self.rpos..self.rend])? else {
                if self.fill().await? == 0 {
                    return Ok(None);
                }
                continue;
            };
            // Control payloads are ≤ 125 bytes: consume the frame only once it is all
            // here, so that a recv cancelled while waiting for it loses nothing.
            if opcode >= 0x8 && self.rend - self.rpos < hlen + plen as usize {
                if self.fill().await? == 0 {
                    return Ok(None);
                }
                continue;
            }
            self.rpos += hlen;
            match opcode {
                0x0 | 0x2 => self.frame_left = plen,
                0x1 => bail!("server sent a text frame; the streams are binary"),
                0x8 => return Ok(None),
                0x9 | 0xA => {
                    let plen = plen as usize;
                    let payload = self.rbuf[self.rpos..self.rpos + plen].to_vec();
                    self.rpos += plen;
                    if opcode == 0x9 {
                        self.send_frame(0xA, &payload).await?;
                        self.flush().await?;
                    }
                }
                other => bail!("server sent reserved opcode {other:#x}"),
            }
        };
        Ok(Some(&self.rbuf[start..start + len]))
    }

    /// Fills `out` exactly from the payload stream.
    pub async fn recv_exact(&mut self, out: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < out.len() {
            let want = out.len() - got;
            let data = self
                .recv()
                .await?
                .ok_or_else(|| anyhow!("stream ended after {got} of {} bytes", out.len()))?;
            let k = data.len().min(want);
            out[got..got + k].copy_from_slice(&data[..k]);
            // Anything beyond `want` must be given back: rewind within the buffer.
            let extra = data.len() - k;
            self.unread(extra);
            got += k;
        }
        Ok(())
    }

    /// Puts back the last `n` bytes handed out by `recv`.
    pub fn unread(&mut self, n: usize) {
        self.rpos -= n;
        if self.ws {
            self.frame_left += n as u64;
        }
    }

    /// Sends a command, as an RFB message in RFB mode, in one frame.
    pub async fn command(&mut self, cmd: &[u8; crate::proto::MSG_LEN]) -> Result<()> {
        match self.vnc {
            Vnc::No => self.send(cmd, cmd.len()).await,
            Vnc::Plain | Vnc::View => {
                let m = crate::proto::rfb_command(cmd);
                self.send(&m, m.len()).await
            }
        }
    }

    /// Sends `data` as payload: as is over TCP, or cut into binary frames of at most
    /// `frame` bytes over WebSocket.
    pub async fn send(&mut self, data: &[u8], frame: usize) -> Result<()> {
        if !self.ws {
            self.io.write_all(data).await?;
            // TLS may keep records buffered after `write` returns; only flush pushes
            // them out (a no-op on plain TCP).
            self.io.flush().await?;
            return Ok(());
        }
        for chunk in data.chunks(frame.max(1)) {
            self.send_frame(0x2, chunk).await?;
        }
        self.flush().await
    }

    /// Appends one masked frame to the write buffer, flushing first when it is full.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        if self.wbuf.len() + payload.len() > WBUF_FLUSH && !self.wbuf.is_empty() {
            self.flush().await?;
        }
        let n = payload.len();
        self.wbuf.push(0x80 | opcode);
        if n < 126 {
            self.wbuf.push(0x80 | n as u8);
        } else if n <= u16::MAX as usize {
            self.wbuf.push(0x80 | 126);
            self.wbuf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.wbuf.push(0x80 | 127);
            self.wbuf.extend_from_slice(&(n as u64).to_be_bytes());
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let key = (self.rng as u32).to_ne_bytes();
        self.wbuf.extend_from_slice(&key);
        let start = self.wbuf.len();
        self.wbuf.extend_from_slice(payload);
        mask(&mut self.wbuf[start..], key);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            while self.wpos < self.wbuf.len() {
                let k = self.io.write(&self.wbuf[self.wpos..]).await?;
                ensure!(k > 0, "connection accepts no more data");
                self.wpos += k;
            }
            self.wbuf.clear();
            self.wpos = 0;
            // tokio-rustls accepts plaintext and may hold the records when the socket
            // is full: without this flush the peer can wait forever for them.
            self.io.flush().await?;
        }
        Ok(())
    }

    /// Ends the session politely (close frame 1000 for WebSocket) without waiting for
    /// the answer: the server side's teardown is not the client's business.
    pub async fn close(mut self) {
        if self.ws {
            let _ = self.send_frame(0x8, &1000u16.to_be_bytes()).await;
            let _ = tokio::time::timeout(Duration::from_millis(200), self.flush()).await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), self.io.shutdown()).await;
    }
}

/// XORs `data` with the 4-byte mask, eight bytes at a time (the frame starts at mask
/// offset 0, and 8 is a multiple of 4, so the word mask stays in phase).
fn mask(data: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Parses a server frame header: `Ok(None)` when incomplete, else (header length,
/// opcode, payload length). Servers must not mask; RSV bits must be clear (we offer no
/// extensions).
fn parse_header(b: &[u8]) -> Result<Option<(usize, u8, u64)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x70 != 0 {
        bail!("server frame has RSV bits set ({:#04x})", b[0]);
    }
    if b[1] & 0x80 != 0 {
        bail!("server frame is masked");
    }
    let opcode = b[0] & 0x0F;
    let (hlen, plen) = match b[1] & 0x7F {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([b[2], b[3]]) as u64)
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            (
                10,
                u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
            )
        }
        n => (2, n as u64),
    };
    if opcode >= 0x8 && plen > 125 {
        bail!("control frame with {plen}-byte payload");
    }
    Ok(Some((hlen, opcode, plen)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_masking_equals_bytewise_masking() {
        for len in [0usize, 1, 7, 8, 9, 63, 64, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let key = [1u8, 0x80, 0x33, 0xFE];
            let mut fast = data.clone();
            mask(&mut fast, key);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn headers_parse_at_every_length_form() {
        assert_eq!(parse_header(&[0x82, 5]).unwrap(), Some((2, 2, 5)));
        assert_eq!(parse_header(&[0x82, 126, 1, 0]).unwrap(), Some((4, 2, 256)));
        assert_eq!(parse_header(&[0x82, 126, 1]).unwrap(), None);
        let mut h = vec![0x82, 127];
        h.extend_from_slice(&(1u64 << 20).to_be_bytes());
        assert_eq!(parse_header(&h).unwrap(), Some((10, 2, 1 << 20)));
        assert!(parse_header(&[0x82, 0x85]).is_err(), "masked server frame");
        assert!(parse_header(&[0x89, 126, 1, 0]).is_err(), "long ping");
    }
}

//! RFB VeNCrypt with X.509, as QEMU's VNC server with `tls-creds` speaks it.
//!
//! Such a server offers only security type 19 (VeNCrypt) and wants a client
//! certificate. The browser's noVNC cannot present one (and must never hold the
//! proxy's), so the proxy plays client to the server and server to the browser:
//!
//! ```text
//! console server                     proxy                        browser (noVNC)
//! RFB 003.008 ─────────────────────▶ (before the 101 answer's relay starts)
//!             ◀──────────────────── RFB 003.008
//! types [19]  ─────────────────────▶
//!             ◀──────────────────── 19, then VeNCrypt 0.2
//! subtypes [261 X509VNC]  ─────────▶
//!             ◀──────────────────── 261; TLS handshake (console CA, client cert)
//! challenge (16 bytes, in TLS) ────▶ kept
//!                                    RFB 003.008 ──────────────────▶
//!                                                ◀────────────────── RFB 003.008
//!                                    types [2] ────────────────────▶
//!                                                ◀────────────────── 2
//!                                    challenge ────────────────────▶
//! and from here every byte passes through unchanged, inside the server's TLS session
//! ```
//!
//! The server's challenge and the browser's DES response pass through untouched, so the
//! VNC password works end to end and the proxy never sees it. X509None (260) maps to
//! security type None (1) the same way, the server's SecurityResult passing through.
//!
//! [`negotiate`] does the server half. [`VencryptStream`] does the browser half as a
//! stream adapter: it yields the synthetic greeting to the relay and consumes the
//! browser's version and choice, then is a plain pass-through, so the relay's hot path
//! knows nothing of RFB.

use super::tls::{self, TlsTarget};
use super::BackendError;
use crate::ticket::TargetTls;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

/// The version line both sides use: RFB 3.8 (RFC 6143).
const RFB_38: &[u8; 12] = b"RFB 003.008\n";
/// RFB security types (IANA registry) that matter here.
const SEC_NONE: u8 = 1;
const SEC_VNC: u8 = 2;
const SEC_VENCRYPT: u8 = 19;
/// VeNCrypt subtypes the proxy can do: X.509-verified TLS, then VNC auth or nothing.
const X509_NONE: u32 = 260;
const X509_VNC: u32 = 261;
/// Longest refusal reason read from a server before giving up on it.
const MAX_REASON: u32 = 1024;

/// The server half: RFB version, VeNCrypt 0.2, an X.509 subtype, the TLS handshake
/// checked against the console CA with `host`, and the server's first bytes inside
/// TLS (so that a refused client certificate shows up here, not in the relay).
pub(super) async fn negotiate(
    mut tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<VencryptStream, BackendError> {
    let subtype = preamble(&mut tcp).await?;
    let name = tls::server_name(host)?;
    let client_cert = config.client_auth_cert_resolver.has_certs();
    let mut stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls::describe(&e, host, client_cert, TargetTls::Vencrypt))?;
    // X509VNC: the 16-byte VNC challenge follows; X509None: the 4-byte SecurityResult.
    let (security_type, first) = if subtype == X509_VNC {
        (SEC_VNC, 16)
    } else {
        (SEC_NONE, 4)
    };
    let mut early = vec![0u8; first];
    if let Err(e) = stream.read_exact(&mut early).await {
        return Err(
            match tls::describe(&e, host, client_cert, TargetTls::Vencrypt) {
                // The server checks the client certificate after its TLS 1.3 handshake and,
                // as QEMU does, closes without a word when it does not like it.
                BackendError::Closed(_) if client_cert => BackendError::ClientCertificateRefused,
                BackendError::Closed(_) => BackendError::ClientCertificateMissing,
                other => other,
            },
        );
    }
    Ok(VencryptStream::new(
        TlsTarget {
            stream,
            client_cert,
        },
        security_type,
        early,
    ))
}

/// The RFB and VeNCrypt steps before TLS; returns the subtype agreed on.
async fn preamble<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<u32, BackendError> {
    let mut version = [0u8; 12];
    read(s, &mut version).await?;
    let (major, minor) = parse_version(&version).ok_or(BackendError::NotRfb)?;
    if (major, minor) < (3, 8) {
        return Err(BackendError::RfbTooOld(format!("{major}.{minor}")));
    }
    write(s, RFB_38).await?;

    let count = read_u8(s).await?;
    if count == 0 {
        let len = read_u32(s).await?;
        let mut reason = vec![0u8; len.min(MAX_REASON) as usize];
        read(s, &mut reason).await?;
        return Err(BackendError::ServerRefused(printable(&reason, 60)));
    }
    let mut types = vec![0u8; usize::from(count)];
    read(s, &mut types).await?;
    if !types.contains(&SEC_VENCRYPT) {
        let names: Vec<String> = types.iter().map(|t| type_name(*t)).collect();
        return Err(BackendError::NoVencrypt(list(&names)));
    }
    write(s, &[SEC_VENCRYPT]).await?;

    let mut v = [0u8; 2];
    read(s, &mut v).await?;
    if (v[0], v[1]) < (0, 2) {
        return Err(BackendError::VencryptVersion(v[0], v[1]));
    }
    write(s, &[0, 2]).await?;
    if read_u8(s).await? != 0 {
        return Err(BackendError::VencryptVersion(v[0], v[1]));
    }

    let count = read_u8(s).await?;
    let mut subtypes = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        subtypes.push(read_u32(s).await?);
    }
    // X509VNC first: a server that asks for a password keeps getting it checked.
    let Some(&chosen) = [X509_VNC, X509_NONE].iter().find(|t| subtypes.contains(t)) else {
        let names: Vec<String> = subtypes.iter().map(|t| subtype_name(*t)).collect();
        return Err(BackendError::NoX509(list(&names)));
    };
    write(s, &chosen.to_be_bytes()).await?;
    if read_u8(s).await? != 1 {
        return Err(BackendError::SubtypeRejected);
    }
    Ok(chosen)
}

/// `RFB xxx.yyy\n` → (xxx, yyy).
fn parse_version(v: &[u8; 12]) -> Option<(u16, u16)> {
    let text = std::str::from_utf8(v).ok()?;
    let rest = text.strip_prefix("RFB ")?.strip_suffix('\n')?;
    let (major, minor) = rest.split_once('.')?;
    if major.len() != 3 || minor.len() != 3 {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn type_name(t: u8) -> String {
    match t {
        SEC_NONE => "None".into(),
        SEC_VNC => "VNC authentication".into(),
        5 => "RA2".into(),
        16 => "Tight".into(),
        18 => "anonymous TLS".into(),
        SEC_VENCRYPT => "VeNCrypt".into(),
        30 => "Apple".into(),
        other => format!("type {other}"),
    }
}

fn subtype_name(t: u32) -> String {
    match t {
        256 => "Plain".into(),
        257 => "TLSNone".into(),
        258 => "TLSVnc".into(),
        259 => "TLSPlain".into(),
        X509_NONE => "X509None".into(),
        X509_VNC => "X509Vnc".into(),
        262 => "X509Plain".into(),
        263 => "TLSSASL".into(),
        264 => "X509SASL".into(),
        other => format!("subtype {other}"),
    }
}

/// A short list for a sentence: the first few names, then "…".
fn list(names: &[String]) -> String {
    let mut out = names.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 4 {
        out.push_str(", …");
    }
    if out.is_empty() {
        out.push_str("nothing");
    }
    out
}

/// Text from a stranger, fit for a log line and a close reason: printable ASCII only.
fn printable(b: &[u8], max: usize) -> String {
    b.iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .take(max)
        .collect()
}

async fn read<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<(), BackendError> {
    match s.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(BackendError::Closed(TargetTls::Vencrypt))
        }
        Err(e) => Err(BackendError::Io(e.to_string())),
    }
}

async fn read_u8<S: AsyncRead + Unpin>(s: &mut S) -> Result<u8, BackendError> {
    let mut b = [0u8; 1];
    read(s, &mut b).await?;
    Ok(b[0])
}

async fn read_u32<S: AsyncRead + Unpin>(s: &mut S) -> Result<u32, BackendError> {
    let mut b = [0u8; 4];
    read(s, &mut b).await?;
    Ok(u32::from_be_bytes(b))
}

async fn write<S: AsyncWrite + Unpin>(s: &mut S, b: &[u8]) -> Result<(), BackendError> {
    s.write_all(b)
        .await
        .map_err(|e| BackendError::Io(e.to_string()))
}

/// Where the browser half stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our version line goes out; the browser's is being read.
    Version,
    /// The one-entry security list goes out; the browser's choice is being read.
    Choice,
    /// Everything passes through (after the server's early bytes).
    Relay,
}

/// The browser half of the VeNCrypt bridge (see the module docs): a stream whose
/// reads first yield the synthetic RFB 3.8 greeting and whose writes first consume
/// the browser's answers, then pass through to the server's TLS session.
pub struct VencryptStream<S = TlsTarget> {
    inner: S,
    phase: Phase,
    /// Bytes due to the browser before any more of the server's, and how far sent.
    down: Vec<u8>,
    down_pos: usize,
    /// The browser's version line as it arrives.
    version: [u8; 12],
    version_len: usize,
    /// The security type offered to the browser: 2 (VNC auth) or 1 (None).
    security_type: u8,
    /// The server's bytes read during the negotiation; they follow the browser's choice.
    early: Vec<u8>,
    /// The relay's read, parked until the browser takes its next step.
    reader: Option<Waker>,
}

impl<S> VencryptStream<S> {
    fn new(inner: S, security_type: u8, early: Vec<u8>) -> Self {
        VencryptStream {
            inner,
            phase: Phase::Version,
            down: RFB_38.to_vec(),
            down_pos: 0,
            version: [0; 12],
            version_len: 0,
            security_type,
            early,
            reader: None,
        }
    }

    /// The security type the browser is offered: 2 (VNC authentication) or 1 (None).
    pub fn security_type(&self) -> u8 {
        self.security_type
    }

    fn next(&mut self, phase: Phase, down: Vec<u8>) {
        self.phase = phase;
        self.down = down;
        self.down_pos = 0;
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
}

fn browser_error(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<S: AsyncRead + Unpin> AsyncRead for VencryptStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.down.get(this.down_pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.down_pos += n;
            if this.phase == Phase::Relay && this.down_pos == this.down.len() {
                this.down = Vec::new();
                this.down_pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if this.phase != Phase::Relay {
            // Nothing more for the browser until it answers; its write wakes us.
            this.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for VencryptStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Relay => Pin::new(&mut this.inner).poll_write(cx, buf),
            Phase::Version => {
                let n = (12 - this.version_len).min(buf.len());
                this.version[this.version_len..this.version_len + n].copy_from_slice(&buf[..n]);
                this.version_len += n;
                if this.version_len == 12 {
                    if &this.version != RFB_38 {
                        return Poll::Ready(Err(browser_error(format!(
                            "the browser's VNC client answered {:?}, not RFB 003.008",
                            printable(&this.version, 12)
                        ))));
                    }
                    let list = vec![1, this.security_type];
                    this.next(Phase::Choice, list);
                }
                Poll::Ready(Ok(n))
            }
            Phase::Choice => {
                let Some(&choice) = buf.first() else {
                    return Poll::Ready(Ok(0));
                };
                if choice != this.security_type {
                    return Poll::Ready(Err(browser_error(format!(
                        "the browser's VNC client chose security type {choice}, not the offered {}",
                        this.security_type
                    ))));
                }
                let early = std::mem::take(&mut this.early);
                this.next(Phase::Relay, early);
                Poll::Ready(Ok(1))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// Runs `preamble` against a scripted server that sends `script` and collects what
    /// the proxy writes.
    async fn preamble_against(script: &[u8]) -> (Result<u32, BackendError>, Vec<u8>) {
        let (mut proxy, mut server) = duplex(4096);
        server.write_all(script).await.unwrap();
        drop_write_half_after(&mut server).await;
        let r = preamble(&mut proxy).await;
        drop(proxy);
        let mut sent = Vec::new();
        let _ = server.read_to_end(&mut sent).await;
        (r, sent)
    }

    async fn drop_write_half_after(server: &mut tokio::io::DuplexStream) {
        server.shutdown().await.unwrap();
    }

    fn server_script(
        types: &[u8],
        version: [u8; 2],
        ack: u8,
        subtypes: &[u32],
        accept: u8,
    ) -> Vec<u8> {
        let mut s = RFB_38.to_vec();
        s.push(types.len() as u8);
        s.extend_from_slice(types);
        s.extend_from_slice(&version);
        s.push(ack);
        s.push(subtypes.len() as u8);
        for t in subtypes {
            s.extend_from_slice(&t.to_be_bytes());
        }
        s.push(accept);
        s
    }

    #[tokio::test]
    async fn picks_vencrypt_0_2_and_x509vnc() {
        let (r, sent) =
            preamble_against(&server_script(&[SEC_VENCRYPT], [0, 2], 0, &[X509_VNC], 1)).await;
        assert_eq!(r, Ok(X509_VNC));
        let mut expected = RFB_38.to_vec();
        expected.extend_from_slice(&[19, 0, 2, 0, 0, 1, 5]);
        assert_eq!(sent, expected);
        let (r, _) = preamble_against(&server_script(
            &[16, SEC_VENCRYPT],
            [0, 2],
            0,
            &[257, X509_NONE],
            1,
        ))
        .await;
        assert_eq!(r, Ok(X509_NONE));
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_do_with_a_reason() {
        let (r, _) =
            preamble_against(&server_script(&[SEC_VNC, SEC_NONE], [0, 2], 0, &[], 1)).await;
        assert_eq!(
            r,
            Err(BackendError::NoVencrypt("VNC authentication, None".into()))
        );
        let (r, _) = preamble_against(&server_script(&[SEC_VENCRYPT], [0, 1], 0, &[], 1)).await;
        assert_eq!(r, Err(BackendError::VencryptVersion(0, 1)));
        let (r, _) =
            preamble_against(&server_script(&[SEC_VENCRYPT], [0, 2], 0, &[257, 258], 1)).await;
        assert_eq!(r, Err(BackendError::NoX509("TLSNone, TLSVnc".into())));
        let (r, _) =
            preamble_against(&server_script(&[SEC_VENCRYPT], [0, 2], 0, &[X509_VNC], 0)).await;
        assert_eq!(r, Err(BackendError::SubtypeRejected));
        let (r, _) = preamble_against(b"RFB 003.003\n").await;
        assert_eq!(r, Err(BackendError::RfbTooOld("3.3".into())));
        let (r, _) = preamble_against(b"SSH-2.0-Open").await;
        assert_eq!(r, Err(BackendError::NotRfb));
        let mut refused = RFB_38.to_vec();
        refused.extend_from_slice(&[0, 0, 0, 0, 8]);
        refused.extend_from_slice(b"too\x1bmany");
        let (r, _) = preamble_against(&refused).await;
        assert_eq!(r, Err(BackendError::ServerRefused("too?many".into())));
    }

    #[tokio::test]
    async fn truncated_or_oversize_input_is_an_error_not_a_panic() {
        let full = server_script(&[SEC_VENCRYPT], [0, 2], 0, &[X509_VNC], 1);
        for cut in 0..full.len() {
            let (r, _) = preamble_against(&full[..cut]).await;
            assert_eq!(
                r,
                Err(BackendError::Closed(TargetTls::Vencrypt)),
                "cut at {cut}"
            );
        }
        // A huge refusal length is read only up to the limit.
        let mut huge = RFB_38.to_vec();
        huge.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff]);
        huge.extend_from_slice(&[b'a'; 2000]);
        let (r, _) = preamble_against(&huge).await;
        assert!(matches!(r, Err(BackendError::ServerRefused(s)) if s.len() == 60));
    }

    // Paused clock: the 50 ms below pass once nothing else can happen, not sooner.
    #[tokio::test(start_paused = true)]
    async fn the_browser_gets_rfb_3_8_then_the_server_bytes_pass_through() {
        let (inner, mut server) = duplex(4096);
        let challenge: Vec<u8> = (0..16).collect();
        let mut s = VencryptStream::new(inner, SEC_VNC, challenge.clone());
        let mut got = [0u8; 12];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, RFB_38);
        // Nothing more until the browser answers.
        let mut one = [0u8; 1];
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), s.read(&mut one))
                .await
                .is_err()
        );
        // The browser's version in two pieces, then its choice and its first bytes.
        s.write_all(b"RFB 003").await.unwrap();
        s.write_all(b".008\n").await.unwrap();
        let mut list = [0u8; 2];
        s.read_exact(&mut list).await.unwrap();
        assert_eq!(list, [1, SEC_VNC]);
        s.write_all(&[SEC_VNC, 0xaa, 0xbb]).await.unwrap();
        let mut got = vec![0u8; 16];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, challenge);
        let mut up = [0u8; 2];
        server.read_exact(&mut up).await.unwrap();
        assert_eq!(
            up,
            [0xaa, 0xbb],
            "the browser's bytes after its choice reach the server"
        );
        server.write_all(b"server").await.unwrap();
        let mut got = [0u8; 6];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"server");
    }

    #[tokio::test]
    async fn a_browser_that_does_not_speak_rfb_3_8_is_an_error() {
        let (inner, _server) = duplex(64);
        let mut s = VencryptStream::new(inner, SEC_NONE, vec![0; 4]);
        let e = s.write_all(b"RFB 003.003\n").await.unwrap_err();
        assert!(e.to_string().contains("003.003"), "{e}");
        let (inner, _server) = duplex(64);
        let mut s = VencryptStream::new(inner, SEC_NONE, vec![0; 4]);
        s.write_all(RFB_38).await.unwrap();
        let e = s.write_all(&[SEC_VNC]).await.unwrap_err();
        assert!(e.to_string().contains("security type 2"), "{e}");
    }
}

//! The TCP backend every target relays to: a stand-in console server that speaks the
//! [`crate::proto`] commands (stream down, sink up with a CRC reply, echo, or idle after
//! the banner). One thread: its cost is the same for every target, and it must not take
//! a core away from the proxy under test.
//!
//! With `--vencrypt-cert/--vencrypt-key` it is instead a TLS-enabled console server as
//! QEMU's VNC server with `tls-creds` is one: RFB 3.8, security type VeNCrypt (19) only,
//! VeNCrypt 0.2 with subtype X509None (260), the TLS handshake, the SecurityResult
//! inside TLS, and then the same banner and commands inside TLS. That is what the
//! proxy's `tls: "vencrypt"` tickets reach (src/backend/vencrypt.rs).
//!
//! With `--rfb` it is a plain VNC server first: RFB 3.8 with security type None and
//! ClientInit, then the banner, and every command wrapped as an RFB SetEncodings
//! (`proto::RFB_COMMAND_HEADER`), so that a proxy that follows RFB (view-only
//! filtering, session recording) can be measured.

use crate::proto::{self, BusyPlan, Pattern, MSG_LEN, OP_BUSY, OP_DOWN, OP_ECHO, OP_UP};
use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Chunk the backend writes or reads per call.
const IO_CHUNK: usize = 256 << 10;

/// RFB 3.8 version line (RFC 6143).
const RFB_38: &[u8; 12] = b"RFB 003.008\n";
const SEC_VENCRYPT: u8 = 19;
const X509_NONE: u32 = 260;

/// The TLS server config for VeNCrypt mode: the run script's certificate for 127.0.0.1,
/// no client certificate asked (the proxy's client-certificate path is not what is
/// measured), no session resumption since the proxy does a full handshake every time.
pub fn vencrypt_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("read {}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("backend: certificate and key")?;
    Ok(Arc::new(config))
}

/// Accepts connections forever (the run script kills it); `vencrypt` switches every
/// connection to the VeNCrypt X509None greeting and TLS, `rfb` to a plain RFB greeting
/// and wrapped commands.
pub async fn serve(
    listen: &str,
    vencrypt: Option<Arc<rustls::ServerConfig>>,
    rfb: bool,
) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("backend: bind {listen}"))?;
    let pattern = Arc::new(Pattern::new());
    let acceptor = vencrypt.map(TlsAcceptor::from);
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors is transient while a memory ramp is closing.
                eprintln!("backend: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let pattern = pattern.clone();
        let vencrypt = acceptor.clone();
        tokio::spawn(async move {
            let r = async {
                sock.set_nodelay(true)?;
                match vencrypt {
                    None if rfb => session(greet_rfb(sock).await?, &pattern, true).await,
                    None => session(sock, &pattern, false).await,
                    Some(acceptor) => session(greet(sock, &acceptor).await?, &pattern, false).await,
                }
            }
            .await;
            if let Err(e) = r {
                // The connect-rate run stops its clients wherever they are, in VeNCrypt
                // mode often mid-handshake (an early EOF): that is no backend fault.
                if !matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
                ) {
                    eprintln!("backend: session: {e}");
                }
            }
        });
    }
}

/// The server side of RFB 3.8 + VeNCrypt 0.2 + X509None, as QEMU sends it, up to and
/// including the SecurityResult inside TLS.
async fn greet(
    mut sock: TcpStream,
    acceptor: &TlsAcceptor,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    fn bad(what: &str) -> std::io::Error {
        std::io::Error::new(ErrorKind::InvalidData, format!("vencrypt: {what}"))
    }
    sock.write_all(RFB_38).await?;
    let mut version = [0u8; 12];
    sock.read_exact(&mut version).await?;
    if &version != RFB_38 {
        return Err(bad("client version is not RFB 003.008"));
    }
    sock.write_all(&[1, SEC_VENCRYPT]).await?;
    if sock.read_u8().await? != SEC_VENCRYPT {
        return Err(bad("client did not choose VeNCrypt"));
    }
    sock.write_all(&[0, 2]).await?;
    let mut v = [0u8; 2];
    sock.read_exact(&mut v).await?;
    if v != [0, 2] {
        sock.write_all(&[1]).await?;
        return Err(bad("client VeNCrypt version is not 0.2"));
    }
    // Version accepted, then one subtype offered.
    let mut offer = vec![0u8, 1];
    offer.extend_from_slice(&X509_NONE.to_be_bytes());
    sock.write_all(&offer).await?;
    if sock.read_u32().await? != X509_NONE {
        sock.write_all(&[0]).await?;
        return Err(bad("client did not choose X509None"));
    }
    sock.write_all(&[1]).await?;
    let mut tls = acceptor.accept(sock).await?;
    // SecurityResult OK: RFB 3.8 sends it even for no authentication.
    tls.write_all(&0u32.to_be_bytes()).await?;
    Ok(tls)
}

/// The server side of plain RFB 3.8 with security type None, up to ClientInit (the
/// bench needs no ServerInit: the banner follows).
async fn greet_rfb(mut sock: TcpStream) -> std::io::Result<TcpStream> {
    let bad = |what: &str| std::io::Error::new(ErrorKind::InvalidData, format!("rfb: {what}"));
    sock.write_all(RFB_38).await?;
    let mut version = [0u8; 12];
    sock.read_exact(&mut version).await?;
    if &version != RFB_38 {
        return Err(bad("client version is not RFB 003.008"));
    }
    sock.write_all(&[1, 1]).await?;
    if sock.read_u8().await? != 1 {
        return Err(bad("client did not choose security type None"));
    }
    sock.write_all(&0u32.to_be_bytes()).await?;
    // ClientInit (the shared flag).
    sock.read_u8().await?;
    Ok(sock)
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    pattern: &Pattern,
    wrapped: bool,
) -> std::io::Result<()> {
    // Over TLS, written records may stay buffered until a flush; each flush below marks
    // the end of a reply the client waits for (a no-op on plain TCP).
    sock.write_all(proto::BANNER).await?;
    sock.flush().await?;
    // Allocated on the first command: 20,000 idle sessions should not cost 5 GiB here.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if wrapped {
            let mut header = [0u8; 4];
            match sock.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            if header != proto::RFB_COMMAND_HEADER {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("rfb: a command's header is {header:?}"),
                ));
            }
        }
        let mut cmd = [0u8; MSG_LEN];
        match sock.read_exact(&mut cmd).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let (op, n) = proto::parse_command(&cmd)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
        if op == OP_BUSY {
            busy(&mut sock, pattern, proto::busy_seed(&cmd), n).await?;
            continue;
        }
        if buf.is_empty() {
            buf = vec![0u8; IO_CHUNK];
        }
        match op {
            OP_DOWN => {
                let mut off = 0u64;
                while off < n {
                    let len = (n - off).min(IO_CHUNK as u64) as usize;
                    sock.write_all(pattern.slice(off, len)).await?;
                    off += len as u64;
                }
                sock.flush().await?;
            }
            OP_UP => {
                let mut h = crc32fast::Hasher::new();
                let mut got = 0u64;
                while got < n {
                    let want = (n - got).min(IO_CHUNK as u64) as usize;
                    let k = sock.read(&mut buf[..want]).await?;
                    if k == 0 {
                        return Ok(());
                    }
                    h.update(&buf[..k]);
                    got += k as u64;
                }
                sock.write_all(&proto::reply(got, h.finalize())).await?;
                sock.flush().await?;
            }
            OP_ECHO => {
                let mut left = n;
                while left > 0 {
                    let want = left.min(IO_CHUNK as u64) as usize;
                    let k = sock.read(&mut buf[..want]).await?;
                    if k == 0 {
                        return Ok(());
                    }
                    sock.write_all(&buf[..k]).await?;
                    sock.flush().await?;
                    left -= k as u64;
                }
            }
            _ => unreachable!("parse_command returns known opcodes only"),
        }
    }
}

/// A busy console (`B`): sends the plan's bursts on schedule (late ones at once, so an
/// overloaded proxy shows as lag, not as less data) while reading the client's input
/// messages; then replies with their count and CRC-32.
async fn busy<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    pattern: &Pattern,
    seed: u32,
    ms: u64,
) -> std::io::Result<()> {
    let plan = BusyPlan::new(seed, ms);
    let start = tokio::time::Instant::now();
    let (mut rd, mut wr) = tokio::io::split(&mut *sock);
    let send = async {
        let mut off = 0u64;
        for &(at, len) in &plan.bursts {
            tokio::time::sleep_until(start + std::time::Duration::from_millis(at)).await;
            wr.write_all(pattern.slice(off, len)).await?;
            wr.flush().await?;
            off += len as u64;
        }
        Ok::<_, std::io::Error>(())
    };
    let receive = async {
        let mut h = crc32fast::Hasher::new();
        let mut got = 0u64;
        let mut buf = [0u8; 4096];
        while got < plan.up_total {
            let want = (plan.up_total - got).min(buf.len() as u64) as usize;
            let k = rd.read(&mut buf[..want]).await?;
            if k == 0 {
                return Err(std::io::Error::from(ErrorKind::UnexpectedEof));
            }
            h.update(&buf[..k]);
            got += k as u64;
        }
        Ok((got, h.finalize()))
    };
    let (sent, received) = tokio::join!(send, receive);
    sent?;
    let (got, crc) = received?;
    drop((rd, wr));
    sock.write_all(&proto::reply(got, crc)).await?;
    sock.flush().await
}

//! The console server side of a session: the TCP connection, and for tickets with
//! `tls: "tls"` or `tls: "vencrypt"` the TLS session to the console server, checked
//! against the proxy's own console CA and presenting its client certificate.
//!
//! A connection is made in two steps, so that each failure reaches the person in the
//! one form a browser can read:
//! - [`Backend::dial`] (before the 101 answer): TCP. Unreachable, refused or slow
//!   console servers are HTTP 502/504 refusals, as for plain tickets.
//! - [`Pending::finish`] (after the 101 answer): the TLS handshake, and for VeNCrypt
//!   the RFB negotiation around it. A failure here (an untrusted certificate, a
//!   refused client certificate, a server without VeNCrypt) is sent as a WebSocket
//!   close with code 1011 and a sentence a person understands, which the console page
//!   shows: a browser cannot read the body of a refused upgrade, only a close reason.
//!
//! [`Backend::connect`] does both at once for programs that have no WebSocket to
//! answer (benchmarks, tests). The result is a [`BackendStream`], an enum rather than
//! a boxed trait object so that plain TCP, by far the most common target, costs the
//! relay one predictable branch and no allocation.

mod tls;
mod vencrypt;

pub use tls::{BackendTlsFiles, LoadError, TlsTarget};
pub use vencrypt::VencryptStream;

use crate::ticket::TargetTls;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Why the proxy could not reach a console server, or not securely. Its refusal
/// code, HTTP status and close code are in [`crate::refusal`].
///
/// `Display` is one sentence (lower case, no final stop) that the page shows as is:
/// it is the HTTP refusal's body before the upgrade and the close reason after it, so
/// every variant stays well under the 123 bytes a close reason may carry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The ticket asks for TLS but the proxy has no CA to check console servers with.
    #[error("this proxy is not set up to reach console servers over {0} ([backend_tls] ca is not configured)")]
    NotConfigured(TargetTls),
    #[error("console server name {host} has no address")]
    NoAddress { host: String },
    #[error("console server {addr} did not answer within {secs} s")]
    ConnectTimeout { addr: SocketAddr, secs: f32 },
    #[error("console server {addr} refused the connection")]
    Refused { addr: SocketAddr },
    #[error("console server {addr} is unreachable: {cause}")]
    Unreachable { addr: SocketAddr, cause: String },
    /// The proxy itself ran out of file descriptors (EMFILE/ENFILE): not the console
    /// server's fault, and a retry later may work.
    #[error("the proxy is out of resources; try again later")]
    OutOfResources,
    /// The TLS or VeNCrypt negotiation took longer than the handshake timeout.
    #[error("the console server did not complete the {0} handshake in time")]
    HandshakeTimeout(TargetTls),
    /// The server's certificate failed verification against the console CA.
    #[error("the console server's certificate is not trusted ({0})")]
    UntrustedCertificate(String),
    /// The server asked for a client certificate and the proxy has none configured.
    #[error("the console server requires a client certificate; the proxy has none ([backend_tls] client_cert)")]
    ClientCertificateMissing,
    /// The server rejected the client certificate the proxy presented.
    #[error("the console server refused the proxy's certificate")]
    ClientCertificateRefused,
    /// Any other TLS failure (no common protocol version or cipher, a broken record).
    #[error("TLS with the console server failed: {0}")]
    Tls(String),
    /// The server's first bytes are not an RFB version.
    #[error("the console server does not speak VNC (RFB)")]
    NotRfb,
    #[error("the console server speaks RFB {0}, too old for VeNCrypt (3.8 needed)")]
    RfbTooOld(String),
    /// The server sent no security types, with its own reason.
    #[error("the console server refused the connection: {0}")]
    ServerRefused(String),
    /// The ticket says `vencrypt` but the server offers no security type 19.
    #[error("the console server does not offer VeNCrypt (it offers {0})")]
    NoVencrypt(String),
    #[error("the console server's VeNCrypt version {0}.{1} is not supported (0.2 needed)")]
    VencryptVersion(u8, u8),
    /// The server offers VeNCrypt, but without X.509 (anonymous TLS, plain passwords).
    #[error("the console server offers no VeNCrypt X.509 method (it offers {0})")]
    NoX509(String),
    #[error("the console server rejected the VeNCrypt method the proxy chose")]
    SubtypeRejected,
    /// End of stream in the middle of the negotiation.
    #[error("the console server closed the connection during the {0} handshake")]
    Closed(TargetTls),
    #[error("reading from the console server failed: {0}")]
    Io(String),
}

/// The connection to a console server, in whichever form the ticket asked for.
///
/// The TLS variants are boxed: a TLS session is several KiB, and keeping the enum the
/// size of a `TcpStream` keeps plain sessions (and idle ones) small.
pub enum BackendStream {
    Tcp(TcpStream),
    Tls(Box<TlsTarget>),
    Vencrypt(Box<VencryptStream>),
}

impl BackendStream {
    /// A short name for logs: `none`, `tls` or `vencrypt`.
    pub fn mode(&self) -> TargetTls {
        match self {
            BackendStream::Tcp(_) => TargetTls::None,
            BackendStream::Tls(_) => TargetTls::Tls,
            BackendStream::Vencrypt(_) => TargetTls::Vencrypt,
        }
    }
}

impl std::fmt::Debug for BackendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendStream({})", self.mode())
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            BackendStream::Vencrypt(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            BackendStream::Vencrypt(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            BackendStream::Vencrypt(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            BackendStream::Vencrypt(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How the proxy reaches console servers: timeouts and the TLS client settings.
pub struct Backend {
    files: BackendTlsFiles,
    /// `None` when no console CA is configured (only `tls: none` tickets work). Replaced
    /// whole on reload, so a handshake never sees half a configuration.
    tls: RwLock<Option<Arc<rustls::ClientConfig>>>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
}

impl Backend {
    /// Loads the console CA and client certificate named by `files` (if any).
    pub fn new(
        files: BackendTlsFiles,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Result<Backend, LoadError> {
        let tls = tls::load(&files)?;
        Ok(Backend {
            files,
            tls: RwLock::new(tls),
            connect_timeout,
            handshake_timeout,
        })
    }

    /// SIGHUP: re-reads the files; on an error the previous settings stay in force.
    pub fn reload(&self) -> Result<(), LoadError> {
        let tls = tls::load(&self.files)?;
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
        Ok(())
    }

    /// Whether a console CA and a client certificate are configured, for the log.
    pub fn summary(&self) -> String {
        match (&self.files.ca, &self.files.client_cert) {
            (None, _) => "console TLS off (no [backend_tls] ca)".into(),
            (Some(ca), None) => format!("console CA {}, no client certificate", ca.display()),
            (Some(ca), Some(c)) => {
                format!(
                    "console CA {}, client certificate {}",
                    ca.display(),
                    c.display()
                )
            }
        }
    }

    fn client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Refuses, before anything else happens, a ticket whose `tls` this proxy cannot do.
    pub fn supports(&self, mode: TargetTls) -> Result<(), BackendError> {
        match mode {
            TargetTls::None => Ok(()),
            TargetTls::Tls | TargetTls::Vencrypt if self.client_config().is_some() => Ok(()),
            other => Err(BackendError::NotConfigured(other)),
        }
    }

    /// Dials the console server's addresses in order, within one overall timeout.
    pub async fn dial(
        &self,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Result<(TcpStream, SocketAddr), BackendError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let mut last_err = None;
        for addr in addrs {
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    // Keystrokes and small screen updates must not wait for Nagle.
                    let _ = s.set_nodelay(true);
                    return Ok((s, *addr));
                }
                Ok(Err(e)) => last_err = Some((*addr, e)),
                Err(_) => {
                    return Err(BackendError::ConnectTimeout {
                        addr: *addr,
                        secs: self.connect_timeout.as_secs_f32(),
                    })
                }
            }
        }
        Err(match last_err {
            // EMFILE (24) / ENFILE (23) are the proxy's own limit, not the server's.
            Some((_, e)) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                BackendError::OutOfResources
            }
            Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                BackendError::Refused { addr }
            }
            Some((addr, e)) => BackendError::Unreachable {
                addr,
                cause: e.to_string(),
            },
            None => BackendError::NoAddress {
                host: host.to_string(),
            },
        })
    }

    /// What remains to do on a dialled connection for `mode`; the TLS settings in force
    /// now are the ones the handshake will use, even if a reload happens meanwhile.
    pub fn pending(&self, tcp: TcpStream, host: &str, mode: TargetTls) -> Pending {
        Pending {
            tcp,
            host: host.to_string(),
            mode,
            tls: self.client_config(),
            timeout: self.handshake_timeout,
        }
    }

    /// Dial and handshake in one call.
    pub async fn connect(
        &self,
        host: &str,
        addrs: &[SocketAddr],
        mode: TargetTls,
    ) -> Result<(BackendStream, SocketAddr), BackendError> {
        self.supports(mode)?;
        let (tcp, addr) = self.dial(host, addrs).await?;
        let stream = self.pending(tcp, host, mode).finish().await?;
        Ok((stream, addr))
    }
}

/// A dialled console server connection still to be secured (see [`Backend::pending`]).
pub struct Pending {
    tcp: TcpStream,
    /// The ticket's host: the name (or IP address) the certificate must be made out to.
    host: String,
    mode: TargetTls,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Pending {
    /// TLS from the first byte, or the VeNCrypt negotiation, within the handshake
    /// timeout; plain TCP as it is.
    pub async fn finish(self) -> Result<BackendStream, BackendError> {
        let Pending {
            tcp,
            host,
            mode,
            tls,
            timeout,
        } = self;
        let config = match (mode, tls) {
            (TargetTls::None, _) => return Ok(BackendStream::Tcp(tcp)),
            (_, Some(config)) => config,
            (mode, None) => return Err(BackendError::NotConfigured(mode)),
        };
        let work = async {
            match mode {
                TargetTls::Vencrypt => vencrypt::negotiate(tcp, &host, config)
                    .await
                    .map(|s| BackendStream::Vencrypt(Box::new(s))),
                _ => tls::handshake(tcp, &host, config)
                    .await
                    .map(|s| BackendStream::Tls(Box::new(s))),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::HandshakeTimeout(mode)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_fits_in_a_close_frame() {
        let addr: SocketAddr = "[2001:db8::1234:5678]:65535".parse().unwrap();
        let long = "x".repeat(40);
        for e in [
            BackendError::NotConfigured(TargetTls::Vencrypt),
            BackendError::ConnectTimeout { addr, secs: 12.5 },
            BackendError::HandshakeTimeout(TargetTls::Vencrypt),
            BackendError::UntrustedCertificate("not made out to 2001:db8::1234:5678".into()),
            BackendError::ClientCertificateMissing,
            BackendError::ClientCertificateRefused,
            BackendError::NoVencrypt("VNC authentication, None, Tight".into()),
            BackendError::NoX509("TLSNone, TLSVnc, TLSPlain, Plain".into()),
            BackendError::ServerRefused(long),
        ] {
            assert!(
                e.to_string().len() <= 123,
                "{} bytes: {e}",
                e.to_string().len()
            );
        }
    }

    #[test]
    fn the_plain_stream_stays_small() {
        assert!(
            std::mem::size_of::<BackendStream>() <= std::mem::size_of::<TcpStream>() + 8,
            "{} bytes",
            std::mem::size_of::<BackendStream>()
        );
    }
}

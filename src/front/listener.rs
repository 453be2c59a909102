//! The listener side of a connection: a trusted balancer's PROXY header, the TLS
//! handshake, then HTTP/1.1 with upgrades, each within the handshake timeout.

use super::Proxy;
use crate::admission::Rejected;
use crate::clientaddr;
use crate::refusal::{Code, Refusal};
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

/// Largest request head (request line and headers) accepted: 431 above. hyper's own
/// buffer ([`HYPER_BUF`]) is larger so that the 431 comes from here, with a reason;
/// heads beyond that get hyper's bare 431.
pub(super) const MAX_HEAD: usize = 16 << 10;
const HYPER_BUF: usize = 24 << 10;

/// Why the listener's certificate cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate {path}: {reason}")]
pub struct TlsError {
    pub path: PathBuf,
    pub reason: String,
}

impl Proxy {
    /// One TCP connection: the PROXY header from a trusted balancer, TLS if
    /// configured, then HTTP/1.1 with upgrades.
    pub(super) async fn connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let clients = &self.config.clients;
        let timeout = self.config.limits.handshake_timeout;
        // From anyone else the bytes are the request itself (see `clientaddr`).
        let peer = if clients.proxy_protocol && clients.trusts(peer.ip()) {
            match clientaddr::read_proxy_header(&mut stream, timeout).await {
                Ok(Some(client)) => client,
                Ok(None) => peer,
                Err(e) => {
                    let r = Refusal::new(Code::ProxyProtocol, e.to_string());
                    self.log_refusal(peer, &Rejected::from(r));
                    return;
                }
            }
        } else {
            peer
        };
        match self.serving.tls_acceptor() {
            // Under rustls's 4 KiB reads: 64 KiB at once while an upload streams.
            Some(acceptor) => match tokio::time::timeout(
                timeout,
                acceptor.accept(super::readahead::ReadAhead::new(stream)),
            )
            .await
            {
                Ok(Ok(tls)) => self.http(TokioIo::new(tls), peer, true).await,
                Ok(Err(e)) => debug!(client = %peer, cause = %e, "TLS handshake failed"),
                Err(_) => debug!(client = %peer, "TLS handshake timed out"),
            },
            None => self.http(TokioIo::new(stream), peer, false).await,
        }
    }

    async fn http<I>(self: Arc<Self>, io: I, peer: SocketAddr, tls: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, tls).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.limits.handshake_timeout)
            .max_buf_size(HYPER_BUF)
            .serve_connection(io, service)
            .with_upgrades();
        if let Err(e) = conn.await {
            debug!(client = %peer, cause = %e, "HTTP connection ended with an error");
        }
    }
}

/// Bytes of the request line and headers as they came (close enough: the line ends
/// and separators are counted as written by a well-behaved client).
pub(super) fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

/// Builds the rustls acceptor from PEM files.
pub(super) fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &Path, reason: String| TlsError {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(cert, e.to_string()))?;
    tune_tls(&mut cfg).map_err(|e| tls_err(cert, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The TLS settings chosen with the benchmark (bench/README.md, "TLS"); everything
/// else is rustls's default.
///
/// - ALPN `http/1.1`: the upgrade is HTTP/1.1.
/// - Resumption by stateless tickets (rustls's ring ticketer, keys rotated every 6
///   hours), one ticket per full handshake: a console page that reconnects (a reload,
///   a network change) resumes without a certificate signature, and the proxy keeps no
///   session cache in memory. rustls's default sends two tickets backed by a
///   256-entry in-memory cache. 0-RTT early data stays off: a replayed ticket upgrade
///   must not reach a console.
/// - Cipher suites: rustls's list, in the browser's order (`ignore_client_order` off):
///   browsers put AES-GCM first on CPUs with AES instructions and ChaCha20-Poly1305
///   first on those without, so each client gets what is fast for it, and AES-128-GCM,
///   what browsers with AES prefer, costs the proxy less than AES-256-GCM.
/// - Records stay at 16 KiB (`max_fragment_size` unset): fewer, larger records are
///   cheaper to seal and to send, and browsers take them as they come.
fn tune_tls(cfg: &mut rustls::ServerConfig) -> Result<(), rustls::Error> {
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    cfg.send_tls13_tickets = 1;
    cfg.max_early_data_size = 0;
    cfg.ignore_client_order = false;
    cfg.max_fragment_size = None;
    Ok(())
}

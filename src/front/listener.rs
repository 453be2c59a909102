//! The listener side of a connection: a trusted balancer's PROXY header, the TLS
//! handshake, then HTTP/1.1 with upgrades, all within one deadline.
//!
//! The deadline is `limits.handshake_timeout` from the accept, and it bounds the
//! connection's whole life before it becomes a session: the PROXY header, TLS, every
//! request head, the pre-flight's body (408 past it, see `check.rs`), and the
//! keep-alive pauses between requests. At the deadline the connection stops taking
//! requests: an idle or half-sent one is closed at once, and a request that arrived in
//! time still gets its answer, for at most [`answer_grace`] more, which covers
//! reaching the console server. A connection that never finishes anything therefore
//! frees its descriptor and its place among the pending connections (`pending.rs`)
//! within a bounded time, whatever the client does.

use super::pending::PendingSlot;
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
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
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
    /// configured, then HTTP/1.1 with upgrades, all by the handshake deadline. `slot`
    /// is its place among the pending connections, given back when it ends or
    /// becomes a session.
    pub(super) async fn connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        mut slot: PendingSlot,
    ) {
        let _ = stream.set_nodelay(true);
        let clients = &self.config.clients;
        let deadline = Instant::now() + self.config.limits.handshake_timeout;
        // From anyone else the bytes are the request itself (see `clientaddr`).
        let peer = if clients.proxy_protocol && clients.trusts(peer.ip()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match clientaddr::read_proxy_header(&mut stream, left).await {
                Ok(Some(client)) => {
                    // From now on the connection counts against the client it names.
                    if let Err(over) = slot.name_client(client.ip()) {
                        drop(slot);
                        self.turn_away(stream, client, over);
                        return;
                    }
                    client
                }
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
            Some(acceptor) => match tokio::time::timeout_at(
                deadline,
                acceptor.accept(super::readahead::ReadAhead::new(stream)),
            )
            .await
            {
                Ok(Ok(tls)) => self.http(TokioIo::new(tls), peer, true, deadline).await,
                Ok(Err(e)) => debug!(client = %peer, cause = %e, "TLS handshake failed"),
                Err(_) => debug!(client = %peer, "TLS handshake timed out"),
            },
            None => self.http(TokioIo::new(stream), peer, false, deadline).await,
        }
        // Ended, or upgraded: a session's connection is no longer pending.
        drop(slot);
    }

    async fn http<I>(self: Arc<Self>, io: I, peer: SocketAddr, tls: bool, deadline: Instant)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            debug!(client = %peer, "handshake deadline passed before the first request");
            return;
        }
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, tls, deadline).await) }
        });
        // The head timer restarts for each request, so it only catches a head that
        // is still coming at the deadline; the deadline below does the rest.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(left)
            .max_buf_size(HYPER_BUF)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = tokio::time::sleep_until(deadline) => {
                // No more requests: closes an idle connection at once, lets one that
                // arrived in time get its answer.
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(answer_grace(&self.config), conn.as_mut()).await {
                    Ok(result) => result,
                    Err(_) => {
                        debug!(client = %peer, "connection closed: its answer was not done in time after the handshake deadline");
                        return;
                    }
                }
            }
        };
        if let Err(e) = result {
            debug!(client = %peer, cause = %e, "HTTP connection ended with an error");
        }
    }
}

/// How long after the handshake deadline a request that arrived in time may take to
/// be answered: reaching the console server (`targets.connect_timeout`) and writing
/// the answer (`limits.handshake_timeout`).
fn answer_grace(config: &crate::config::Config) -> Duration {
    config.targets.connect_timeout + config.limits.handshake_timeout
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

//! TLS to console servers: the rustls client settings (the console CA, the proxy's
//! client certificate), the handshake, and turning rustls' errors into sentences.

use super::BackendError;
use crate::ticket::TargetTls;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, AlertDescription, CertificateError};
use tokio_rustls::TlsConnector;

/// The `[backend_tls]` files: the CA that signs console servers' certificates, and
/// the certificate and key the proxy presents to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendTlsFiles {
    /// PEM bundle of CA certificates; `None` turns console TLS off.
    pub ca: Option<PathBuf>,
    /// PEM certificate chain (leaf first) presented to console servers that ask.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

/// Why the `[backend_tls]` files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("[backend_tls] {option} {path}: {reason}")]
    File {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("[backend_tls] client_cert and client_key must be set together")]
    HalfClientCert,
    #[error("[backend_tls] client certificate: {0}")]
    ClientCert(String),
}

fn file_err(option: &'static str, path: &Path, reason: impl ToString) -> LoadError {
    LoadError::File {
        option,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Builds the rustls client settings; `None` when no CA is configured.
pub(super) fn load(
    files: &BackendTlsFiles,
) -> Result<Option<Arc<rustls::ClientConfig>>, LoadError> {
    let Some(ca) = &files.ca else {
        return match (&files.client_cert, &files.client_key) {
            (None, None) => Ok(None),
            (Some(p), _) => Err(file_err(
                "client_cert",
                p,
                "is set without [backend_tls] ca, which console servers are checked against",
            )),
            (None, Some(_)) => Err(LoadError::HalfClientCert),
        };
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = read_certs("ca", ca)?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| file_err("ca", ca, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| file_err("ca", ca, e))?
        .with_root_certificates(roots);
    let config = match (&files.client_cert, &files.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs("client_cert", cert)?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("client_key", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| LoadError::ClientCert(e.to_string()))?
        }
        _ => return Err(LoadError::HalfClientCert),
    };
    Ok(Some(Arc::new(config)))
}

fn read_certs(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(option, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(option, path, e))?;
    if certs.is_empty() {
        return Err(file_err(option, path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The name the server's certificate must be made out to: an IP literal is matched
/// against the certificate's IP addresses (rustls sends no SNI for it), anything else
/// as a DNS name.
pub(super) fn server_name(host: &str) -> Result<ServerName<'static>, BackendError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).map_err(|_| {
        BackendError::UntrustedCertificate(format!(
            "{host:?} is not a name a certificate can carry"
        ))
    })
}

/// The TLS handshake on `tcp`, verifying the certificate against `host`.
pub(super) async fn handshake(
    tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsTarget, BackendError> {
    let name = server_name(host)?;
    let client_cert = config.client_auth_cert_resolver.has_certs();
    match TlsConnector::from(config).connect(name, tcp).await {
        Ok(stream) => Ok(TlsTarget {
            stream,
            client_cert,
        }),
        Err(e) => Err(describe(&e, host, client_cert, TargetTls::Tls)),
    }
}

/// A TLS session to a console server, remembering whether the proxy presented a
/// certificate so that a refusal can be told apart from a missing certificate.
pub struct TlsTarget {
    pub(super) stream: TlsStream<TcpStream>,
    pub(super) client_cert: bool,
}

impl AsyncRead for TlsTarget {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            // In TLS 1.3 the server checks the client's certificate after the client
            // has finished its handshake, so a refusal arrives as an alert on the
            // first read: reword it here, on the error path only.
            Poll::Ready(Err(e)) => Poll::Ready(Err(readable_io(e, this.client_cert))),
            other => other,
        }
    }
}

impl AsyncWrite for TlsTarget {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, b)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// An I/O error from a TLS stream with a sentence for the certificate cases.
pub(super) fn readable_io(e: io::Error, client_cert: bool) -> io::Error {
    match certificate_problem(&e, client_cert) {
        Some(b) => io::Error::new(e.kind(), b.to_string()),
        None => e,
    }
}

/// The certificate-related reading of a TLS error, if it is one.
fn certificate_problem(e: &io::Error, client_cert: bool) -> Option<BackendError> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match tls {
        rustls::Error::InvalidCertificate(c) => {
            Some(BackendError::UntrustedCertificate(certificate_detail(c)))
        }
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => Some(BackendError::ClientCertificateMissing),
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied => Some(if client_cert {
                BackendError::ClientCertificateRefused
            } else {
                BackendError::ClientCertificateMissing
            }),
            // TLS 1.2 servers send this for a missing client certificate, but also when
            // no cipher suite is shared: only the first reading is safe, and only when
            // the proxy presented nothing.
            AlertDescription::HandshakeFailure if !client_cert => {
                Some(BackendError::ClientCertificateMissing)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Says why the server's certificate failed, in terms an administrator acts on.
fn certificate_detail(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "not signed by the proxy's console CA".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "not made out to the console server's address".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "not for TLS servers: extendedKeyUsage".into()
        }
        CertificateError::BadSignature => "bad signature".into(),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

/// The handshake error as a [`BackendError`]; `host` names the server in the detail.
pub(super) fn describe(
    e: &io::Error,
    host: &str,
    client_cert: bool,
    mode: TargetTls,
) -> BackendError {
    if let Some(b) = certificate_problem(e, client_cert) {
        return match b {
            BackendError::UntrustedCertificate(d)
                if d == "not made out to the console server's address" =>
            {
                BackendError::UntrustedCertificate(format!("not made out to {host}"))
            }
            other => other,
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => BackendError::Closed(mode),
        _ => BackendError::Tls(e.to_string().chars().take(80).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_and_names_become_the_right_server_name() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("hv1.example"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn a_client_certificate_without_a_ca_is_an_error() {
        let files = BackendTlsFiles {
            ca: None,
            client_cert: Some("c.pem".into()),
            client_key: Some("k.pem".into()),
        };
        assert!(load(&files).is_err());
        assert!(load(&BackendTlsFiles::default()).unwrap().is_none());
    }

    #[test]
    fn alerts_after_the_handshake_read_as_sentences() {
        let alert = |a| io::Error::new(io::ErrorKind::InvalidData, rustls::Error::AlertReceived(a));
        let e = readable_io(alert(AlertDescription::CertificateRequired), false);
        assert_eq!(
            e.to_string(),
            BackendError::ClientCertificateMissing.to_string()
        );
        let e = readable_io(alert(AlertDescription::UnknownCA), true);
        assert_eq!(
            e.to_string(),
            BackendError::ClientCertificateRefused.to_string()
        );
        let e = readable_io(io::Error::other("plain"), true);
        assert_eq!(e.to_string(), "plain");
    }
}

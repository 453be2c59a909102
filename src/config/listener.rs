//! Where browsers connect: the top-level `listen` and `allow_plain`, and `[tls]`.

use super::value::rebase;
use super::{ConfigError, ServeArgs};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const DEFAULT_LISTEN: &str = "127.0.0.1:6100";

/// `[tls]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// TLS certificate chain and key files for the public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The listener address and its TLS files (`None`: plain ws://, opted into).
impl TlsFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.cert);
        rebase(base, &mut self.key);
    }
}

pub(super) fn merge(
    listen: Option<String>,
    allow_plain: Option<bool>,
    tls: TlsFile,
    a: &ServeArgs,
) -> Result<(SocketAddr, Option<TlsFiles>), ConfigError> {
    let listen_text = a
        .listen
        .clone()
        .or(listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|_| ConfigError::Listen(listen_text.clone()))?;
    let cert = a.tls_cert.clone().or(tls.cert);
    let key = a.tls_key.clone().or(tls.key);
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err(ConfigError::HalfTls),
    };
    let allow_plain = a.allow_plain || allow_plain.unwrap_or(false);
    if tls.is_none() && !allow_plain {
        return Err(ConfigError::NoTls);
    }
    Ok((listen, tls))
}

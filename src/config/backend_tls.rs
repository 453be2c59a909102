//! `[backend_tls]`: TLS and VeNCrypt to console servers (tickets with `tls` "tls" or
//! "vencrypt"): the console CA and the proxy's client certificate.

use super::value::rebase;
use super::{ConfigError, ServeArgs};
use crate::backend::BackendTlsFiles;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[backend_tls]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackendTlsFile {
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// All off by default: only `tls: none` tickets are served.
impl BackendTlsFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.ca);
        rebase(base, &mut self.client_cert);
        rebase(base, &mut self.client_key);
    }
}

pub(super) fn merge(f: BackendTlsFile, a: &ServeArgs) -> Result<BackendTlsFiles, ConfigError> {
    let files = BackendTlsFiles {
        ca: a.backend_ca.clone().or(f.ca),
        client_cert: a.backend_client_cert.clone().or(f.client_cert),
        client_key: a.backend_client_key.clone().or(f.client_key),
    };
    if files.client_cert.is_some() != files.client_key.is_some() {
        return Err(ConfigError::HalfBackendClientCert);
    }
    if files.client_cert.is_some() && files.ca.is_none() {
        return Err(ConfigError::BackendClientCertWithoutCa);
    }
    Ok(files)
}

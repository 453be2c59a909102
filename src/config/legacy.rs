//! `[legacy]`: the credentials of the proxies consolegate replaces (oVirt engine
//! tickets, websockify token files); all off by default.

use super::value::rebase;
use super::{ConfigError, ServeArgs};
use crate::legacy::LegacyConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[legacy]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LegacyFile {
    ovirt_certificate: Option<PathBuf>,
    ovirt_allow_sha1: Option<bool>,
    token_source: Option<PathBuf>,
}

impl LegacyFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.ovirt_certificate);
        rebase(base, &mut self.token_source);
    }
}

pub(super) fn merge(f: LegacyFile, a: &ServeArgs) -> Result<LegacyConfig, ConfigError> {
    let legacy = LegacyConfig {
        ovirt_certificate: a.ovirt_certificate.clone().or(f.ovirt_certificate),
        ovirt_allow_sha1: a.ovirt_allow_sha1 || f.ovirt_allow_sha1.unwrap_or(false),
        token_source: a.token_source.clone().or(f.token_source),
    };
    if legacy.ovirt_allow_sha1 && legacy.ovirt_certificate.is_none() {
        return Err(ConfigError::Sha1WithoutOvirt);
    }
    Ok(legacy)
}

//! `[admin]`: the operators' listener (health, metrics, session control), the token
//! that turns session control on, and the host names it answers to besides its
//! address and loopback names.

use super::value::rebase;
use super::{ConfigError, ServeArgs};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const DEFAULT_LISTEN: &str = "127.0.0.1:6101";

/// `[admin]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    listen: Option<String>,
    token_file: Option<PathBuf>,
    hosts: Option<Vec<String>>,
}

/// The admin listener: health, metrics and session control.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None` when switched off.
    pub listen: Option<SocketAddr>,
    /// The bearer token guarding `/sessions`; without it session control is off.
    pub token_file: Option<PathBuf>,
    /// Host names (lower case, no port) a request's `Host` may name besides an IP
    /// address and `localhost`: what a scraper reaching the listener by name sends.
    pub hosts: Vec<String>,
}

/// `public` is the browsers' listener, which the admin listener must not share.
impl AdminFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.token_file);
    }
}

pub(super) fn merge(
    f: AdminFile,
    a: &ServeArgs,
    public: SocketAddr,
) -> Result<AdminConfig, ConfigError> {
    let text = a
        .admin_listen
        .clone()
        .or(f.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = if text.trim().eq_ignore_ascii_case("off") {
        None
    } else {
        let addr: SocketAddr = text
            .trim()
            .parse()
            .map_err(|_| ConfigError::AdminListen(text.clone()))?;
        // Port 0 (tests) picks a free port each, so only a fixed port can clash.
        if addr == public && addr.port() != 0 {
            return Err(ConfigError::AdminSameAsListen(addr));
        }
        Some(addr)
    };
    let hosts = if a.admin_host.is_empty() {
        f.hosts.unwrap_or_default()
    } else {
        a.admin_host.clone()
    };
    let hosts = hosts
        .iter()
        .map(|h| {
            let name = h.trim().trim_end_matches('.').to_ascii_lowercase();
            let plain = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
            plain
                .then_some(name)
                .ok_or_else(|| ConfigError::AdminHost(h.clone()))
        })
        .collect::<Result<_, _>>()?;
    Ok(AdminConfig {
        listen,
        token_file: a.admin_token_file.clone().or(f.token_file),
        hosts,
    })
}

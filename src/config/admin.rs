//! `[admin]`: the operators' listener (health, metrics, session control) and the
//! token that turns session control on.

use super::{ConfigError, ServeArgs};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

const DEFAULT_LISTEN: &str = "127.0.0.1:6101";

/// `[admin]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

/// The admin listener: health, metrics and session control.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None` when switched off.
    pub listen: Option<SocketAddr>,
    /// The bearer token guarding `/sessions`; without it session control is off.
    pub token_file: Option<PathBuf>,
}

/// `public` is the browsers' listener, which the admin listener must not share.
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
    Ok(AdminConfig {
        listen,
        token_file: a.admin_token_file.clone().or(f.token_file),
    })
}

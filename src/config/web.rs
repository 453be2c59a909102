//! `[web]`: the console page, the browser clients it loads (noVNC, spice-html5,
//! xterm.js; asciinema-player for the recording player), and the engine pages trusted to hand it tickets.

use super::value::{parse_list, pick_list, rebase};
use super::{ConfigError, ServeArgs};
use crate::policy::Origin;
use serde::Deserialize;
use std::path::{Path, PathBuf};

const DEFAULT_DIR: &str = "web";
// The clients' defaults are where `npm ci --prefix web` puts them, under the page.
const NOVNC_UNDER_WEB: &str = "node_modules/@novnc/novnc";
const SPICE_UNDER_WEB: &str = "node_modules/@spice-project/spice-html5/src";
const XTERM_UNDER_WEB: &str = "node_modules/@xterm";
const ASCIINEMA_UNDER_WEB: &str = "node_modules/asciinema-player/dist/bundle";

/// `[web]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebFile {
    dir: Option<PathBuf>,
    novnc_dir: Option<PathBuf>,
    spice_dir: Option<PathBuf>,
    xterm_dir: Option<PathBuf>,
    asciinema_dir: Option<PathBuf>,
    engine_origins: Option<Vec<String>>,
}

/// What the proxy serves besides WebSocket sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The console page.
    pub dir: PathBuf,
    /// noVNC, served at `/novnc/`.
    pub novnc_dir: PathBuf,
    /// spice-html5, served at `/spice/`.
    pub spice_dir: PathBuf,
    /// xterm.js and its fit add-on, served at `/xterm/`.
    pub xterm_dir: PathBuf,
    /// asciinema-player, for the recording player (`player.html`), served at
    /// `/asciinema/`.
    pub asciinema_dir: PathBuf,
    /// Engine pages that may hand tickets to the console page and frame it.
    pub engine_origins: Vec<Origin>,
}

impl WebFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.dir);
        rebase(base, &mut self.novnc_dir);
        rebase(base, &mut self.spice_dir);
        rebase(base, &mut self.xterm_dir);
        rebase(base, &mut self.asciinema_dir);
    }
}

pub(super) fn merge(f: WebFile, a: &ServeArgs) -> Result<WebConfig, ConfigError> {
    let engine_list = pick_list(&a.engine_origin, f.engine_origins).unwrap_or_default();
    let dir = a
        .web_dir
        .clone()
        .or(f.dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    Ok(WebConfig {
        novnc_dir: a
            .novnc_dir
            .clone()
            .or(f.novnc_dir)
            .unwrap_or_else(|| dir.join(NOVNC_UNDER_WEB)),
        spice_dir: a
            .spice_dir
            .clone()
            .or(f.spice_dir)
            .unwrap_or_else(|| dir.join(SPICE_UNDER_WEB)),
        xterm_dir: a
            .xterm_dir
            .clone()
            .or(f.xterm_dir)
            .unwrap_or_else(|| dir.join(XTERM_UNDER_WEB)),
        asciinema_dir: a
            .asciinema_dir
            .clone()
            .or(f.asciinema_dir)
            .unwrap_or_else(|| dir.join(ASCIINEMA_UNDER_WEB)),
        engine_origins: parse_list("web.engine_origins", &engine_list)?,
        dir,
    })
}

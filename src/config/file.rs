//! The file layer: the TOML file's layout, one struct per section (each defined in
//! its section's file). Unknown keys are errors: a typo must not silently fall back
//! to a default in a security setting.

use super::admin::AdminFile;
use super::backend_tls::BackendTlsFile;
use super::clients::ClientsFile;
use super::legacy::LegacyFile;
use super::limits::LimitsFile;
use super::listener::TlsFile;
use super::log::LogFile;
use super::origins::OriginsFile;
use super::recording::RecordingFile;
use super::targets::TargetsFile;
use super::tickets::TicketsFile;
use super::web::WebFile;
use super::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// The whole file. Every section is optional (`default` on the struct, so a new
/// section cannot forget it).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileConfig {
    pub listen: Option<String>,
    pub allow_plain: Option<bool>,
    pub tls: TlsFile,
    pub tickets: TicketsFile,
    pub targets: TargetsFile,
    pub origins: OriginsFile,
    pub web: WebFile,
    pub limits: LimitsFile,
    pub log: LogFile,
    pub backend_tls: BackendTlsFile,
    pub admin: AdminFile,
    pub clients: ClientsFile,
    pub legacy: LegacyFile,
    pub recording: RecordingFile,
}

impl FileConfig {
    /// Parses a file's text; `path` names it in the error.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })
    }

    /// Makes the file's relative paths relative to `base`, the file's directory
    /// (see [`super::value::rebase_path`]).
    pub fn rebase(&mut self, base: &Path) {
        self.tls.rebase(base);
        self.tickets.rebase(base);
        self.web.rebase(base);
        self.backend_tls.rebase(base);
        self.admin.rebase(base);
        self.legacy.rebase(base);
        self.recording.rebase(base);
    }

    /// Every key the file accepts, as `section.key` (top-level keys bare), read from
    /// serde's own list of fields so it cannot drift from the structs above.
    #[cfg(test)]
    pub fn keys() -> Vec<String> {
        // serde answers an unknown field with "unknown field `x`, expected `a` or `b`"
        // (or "expected one of `a`, `b`, …", or "expected `a`").
        fn fields(text: &str) -> Vec<String> {
            let err = toml::from_str::<FileConfig>(text)
                .expect_err("an unknown key is refused")
                .to_string();
            let list = err
                .split("unknown field `no_such_key`, expected")
                .nth(1)
                .unwrap_or_else(|| panic!("serde's message changed: {err}"));
            list.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        }
        let mut keys = Vec::new();
        for top in fields("no_such_key = 1") {
            let nested = format!("[{top}]\nno_such_key = 1");
            match toml::from_str::<FileConfig>(&nested) {
                // A table where a value belongs: a plain top-level key.
                Err(e) if !e.to_string().contains("unknown field") => keys.push(top),
                Err(_) => keys.extend(fields(&nested).into_iter().map(|k| format!("{top}.{k}"))),
                Ok(_) => panic!("[{top}] accepted an unknown key"),
            }
        }
        keys
    }
}

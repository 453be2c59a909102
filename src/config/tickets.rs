//! `[tickets]`: which keys are trusted, the verification rules' settings (rules 4–6),
//! single use (rule 7), the deny list, and how many sessions one ticket may hold.

use super::value::{
    pick_duration, pick_list, pick_required_duration, rebase, rebase_path, DurationValue,
};
use super::{ConfigError, ServeArgs};
use crate::ticket::VerifyOptions;
use serde::Deserialize;
use std::path::{Path, PathBuf};

const DEFAULT_LEEWAY: &str = "30s";
const DEFAULT_MAX_LIFETIME: &str = "600s";
const DEFAULT_MAX_SESSIONS_PER_TICKET: usize = 2;

/// `[tickets]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TicketsFile {
    trust: Option<Vec<PathBuf>>,
    leeway: Option<DurationValue>,
    max_lifetime: Option<DurationValue>,
    audiences: Option<Vec<String>>,
    single_use: Option<bool>,
    deny_list: Option<PathBuf>,
    max_sessions_per_ticket: Option<usize>,
}

/// How tickets are checked.
#[derive(Debug, Clone)]
pub struct TicketsConfig {
    /// Public key files or directories; empty only with a legacy source.
    pub trust: Vec<PathBuf>,
    /// Rules 4–6: leeway, maximum lifetime, audiences.
    pub verify: VerifyOptions,
    /// Rule 7: a `jti` opens one session (a SPICE ticket: one burst of channels).
    pub single_use: bool,
    /// Revoked `jti`s and `sub`s; `None` when no deny list is configured.
    pub deny_list: Option<PathBuf>,
    /// Concurrent sessions of one ticket; a newer one replaces the oldest; 0: no limit.
    pub max_sessions_per_ticket: usize,
}

impl TicketsFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.deny_list);
        for p in self.trust.iter_mut().flatten() {
            rebase_path(base, p);
        }
    }
}

pub(super) fn merge(f: TicketsFile, a: &ServeArgs) -> Result<TicketsConfig, ConfigError> {
    let leeway =
        pick_duration("tickets.leeway", &a.leeway, f.leeway, DEFAULT_LEEWAY)?.unwrap_or_default();
    let max_lifetime = pick_required_duration(
        "tickets.max_lifetime",
        &a.max_lifetime,
        f.max_lifetime,
        DEFAULT_MAX_LIFETIME,
    )?;
    let verify = VerifyOptions {
        leeway_secs: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
        max_lifetime_secs: i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX),
        audiences: pick_list(&a.aud, f.audiences).unwrap_or_default(),
    };
    Ok(TicketsConfig {
        trust: pick_list(&a.trust, f.trust).unwrap_or_default(),
        verify,
        single_use: a.single_use || f.single_use.unwrap_or(false),
        deny_list: a.deny_list.clone().or(f.deny_list),
        max_sessions_per_ticket: a
            .max_sessions_per_ticket
            .or(f.max_sessions_per_ticket)
            .unwrap_or(DEFAULT_MAX_SESSIONS_PER_TICKET),
    })
}

//! SIGHUP's parts: what a reload re-reads, each part on its own, and what happens when
//! one fails.
//!
//! A reload used to be all or nothing: with a key removed from the trust directory and
//! an invalid console CA file, the reload failed and the removed key still verified
//! tickets. Now each part loads independently, in this order, and one part's failure
//! never holds back another's:
//!
//! | part | on failure |
//! | --- | --- |
//! | `deny_list` | its readable rules are added to the list in force (never loses a revocation) |
//! | `keys` | the proxy trusts exactly the keys that loaded: a removed or broken key file stops verifying at once (fail closed) |
//! | `ovirt` | oVirt tickets are refused until the engine certificate loads (fail closed) |
//! | `tokens` | an unreadable file keeps its own previous tokens, the other files are read as they are; a deleted line or file is a withdrawal, never a failure |
//! | `backend_tls` | the previous console CA and client certificate stay |
//! | `tls` | the previous listener certificate stays |
//! | `admin_token` | session control is off (403) until the token file loads (fail closed) |
//!
//! Removing trust always takes effect: for the parts that say who may open a session or
//! control one (keys, the oVirt engine, tokens, the admin token), a failure never keeps
//! something the operator removed. Each outcome is one log line naming its part, and
//! `consolegate_reload_success{part}` / `consolegate_reload_timestamp_seconds{part}`
//! export it.

use std::fmt;

/// One part of what SIGHUP re-reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    DenyList,
    Keys,
    Ovirt,
    Tokens,
    BackendTls,
    Tls,
    AdminToken,
}

impl Part {
    /// Every part, in reload order.
    pub const ALL: [Part; 7] = [
        Part::DenyList,
        Part::Keys,
        Part::Ovirt,
        Part::Tokens,
        Part::BackendTls,
        Part::Tls,
        Part::AdminToken,
    ];

    /// The `part` label of the metrics and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::DenyList => "deny_list",
            Part::Keys => "keys",
            Part::Ovirt => "ovirt",
            Part::Tokens => "tokens",
            Part::BackendTls => "backend_tls",
            Part::Tls => "tls",
            Part::AdminToken => "admin_token",
        }
    }

    /// What is in force after this part failed, for the log line.
    pub fn on_failure(self) -> &'static str {
        match self {
            Part::DenyList => "its readable rules are added to the list in force",
            Part::Keys => "only the keys that loaded are trusted",
            Part::Ovirt => "oVirt tickets are refused until the engine certificate loads",
            Part::Tokens => "what cannot be read keeps its previous tokens",
            Part::BackendTls => "the previous console CA and client certificate stay in force",
            Part::Tls => "the previous certificate stays in force",
            Part::AdminToken => "session control is off until the token file loads",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one part's reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub part: Part,
    /// `None`: it loaded; otherwise what went wrong.
    pub error: Option<String>,
}

impl Outcome {
    pub fn of<E: fmt::Display>(part: Part, result: Result<(), E>) -> Outcome {
        Outcome {
            part,
            error: result.err().map(|e| e.to_string()),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// One log line: `info` when it loaded, `error` naming what is in force when not.
    pub fn log(&self) {
        match &self.error {
            None => tracing::info!(part = %self.part, "reloaded {}", self.part),
            Some(cause) => tracing::error!(
                part = %self.part, cause = %cause,
                "reload of {} failed; {}", self.part, self.part.on_failure()
            ),
        }
    }
}

/// The parts of a reload that failed (the others took effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailed {
    pub failed: Vec<Outcome>,
}

impl ReloadFailed {
    /// `Ok` when every outcome loaded.
    pub fn check(outcomes: &[Outcome]) -> Result<(), ReloadFailed> {
        let failed: Vec<Outcome> = outcomes.iter().filter(|o| !o.ok()).cloned().collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ReloadFailed { failed })
        }
    }
}

impl fmt::Display for ReloadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reload failed for ")?;
        for (i, o) in self.failed.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ({})", o.part, o.error.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

impl std::error::Error for ReloadFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reload_names_each_failed_part_and_only_those() {
        let outcomes = [
            Outcome::of(Part::Keys, Ok::<(), String>(())),
            Outcome::of(Part::BackendTls, Err("bad CA")),
            Outcome::of(Part::Tls, Err("no key")),
        ];
        let e = ReloadFailed::check(&outcomes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reload failed for backend_tls (bad CA); tls (no key)"
        );
        assert!(ReloadFailed::check(&outcomes[..1]).is_ok());
        let labels: Vec<&str> = Part::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(labels.len(), 7);
    }
}

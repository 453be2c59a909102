//! Revocation without shared state: a deny-list file of ticket ids and users.
//!
//! Tickets are bearer credentials that stay valid until they expire, and a proxy keeps
//! no database to revoke them in. An operator (or the engine's tooling) writes the
//! ids and users to revoke into a file on each proxy host and sends SIGHUP; the proxy
//! then refuses those tickets (403 `revoked`) and ends the matching live sessions.
//!
//! The format is one rule a line, `#` starting a comment line:
//!
//! ```text
//! # leaked URL, INC-4711
//! jti 3q2-7wEXAMPLEjti
//! # left the company
//! sub alice@example.com
//! ```
//!
//! The value is the rest of the line with surrounding blanks removed, so a value may
//! contain spaces or `#`. A file that cannot be read or parsed is rejected whole: at
//! start the proxy does not start, at reload the previous list stays in force.

use crate::relay::Stop;
use crate::session::Sessions;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Largest deny-list file read: millions of rules, and a wrong path (a log, a device)
/// cannot eat memory.
const MAX_FILE: u64 = 64 << 20;

/// Why a deny list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    #[error("cannot read deny list {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("deny list {}: larger than {} MiB", path.display(), MAX_FILE >> 20)]
    TooLarge { path: PathBuf },
    #[error("deny list {} line {line}: {message} (expected `jti <id>` or `sub <user>`)", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: &'static str,
    },
}

/// One parsed deny list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rules {
    jti: HashSet<String>,
    sub: HashSet<String>,
}

/// Why a ticket is refused by the deny list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Ticket,
    User(String),
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revoked::Ticket => f.write_str("ticket revoked"),
            Revoked::User(sub) => write!(f, "user {sub} revoked"),
        }
    }
}

impl Rules {
    /// Parses the file's text; the error is the 1-based line number and what is wrong.
    pub fn parse(text: &str) -> Result<Rules, (usize, &'static str)> {
        let mut rules = Rules::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (kind, value) = line
                .split_once(|c: char| c.is_ascii_whitespace())
                .ok_or((i + 1, "a rule needs a kind and a value"))?;
            let value = value.trim();
            if value.is_empty() {
                return Err((i + 1, "empty value"));
            }
            match kind {
                "jti" => rules.jti.insert(value.to_string()),
                "sub" => rules.sub.insert(value.to_string()),
                _ => return Err((i + 1, "unknown kind")),
            };
        }
        Ok(rules)
    }

    /// Whether a ticket (or session) with this `jti` and `sub` is revoked; a revoked
    /// ticket id wins over a revoked user, as the more specific rule.
    pub fn check(&self, jti: Option<&str>, sub: Option<&str>) -> Result<(), Revoked> {
        if jti.is_some_and(|j| self.jti.contains(j)) {
            return Err(Revoked::Ticket);
        }
        match sub {
            Some(s) if self.sub.contains(s) => Err(Revoked::User(s.to_string())),
            _ => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jti.is_empty() && self.sub.is_empty()
    }

    /// (ticket ids, users) listed.
    pub fn len(&self) -> (usize, usize) {
        (self.jti.len(), self.sub.len())
    }
}

/// The proxy's deny list: the file it comes from and the rules in force, replaced
/// whole on reload so a check never sees half a file.
#[derive(Debug, Default)]
pub struct DenyList {
    path: Option<PathBuf>,
    rules: RwLock<Arc<Rules>>,
}

impl DenyList {
    /// Reads the file at `path`, or an empty list when none is configured.
    pub fn load(path: Option<&Path>) -> Result<DenyList, DenyListError> {
        let rules = match path {
            Some(p) => read(p)?,
            None => Rules::default(),
        };
        Ok(DenyList {
            path: path.map(Path::to_path_buf),
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn check(&self, jti: Option<&str>, sub: Option<&str>) -> Result<(), Revoked> {
        self.rules().check(jti, sub)
    }

    /// Re-reads the file; on error the previous rules stay. Returns the new rules
    /// (`None` when no file is configured).
    pub fn reload(&self) -> Result<Option<Arc<Rules>>, DenyListError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let rules = Arc::new(read(path)?);
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules.clone();
        Ok(Some(rules))
    }
}

impl DenyList {
    /// SIGHUP: re-reads the file and ends the live sessions it now revokes with 1008
    /// and the revocation as the reason. A file that cannot be read or parsed is
    /// logged and the previous list stays in force (and nothing is ended).
    pub fn reload_and_enforce(&self, sessions: &Sessions) {
        match self.reload() {
            Ok(Some(rules)) => {
                let ended = end_revoked(&rules, sessions);
                let (jti, sub) = rules.len();
                tracing::info!(jti, sub, sessions_ended = ended, "reloaded deny list");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(cause = %e, "deny list not reloaded; the previous list stays in force")
            }
        }
    }
}

/// Asks every live session that `rules` revoke to close (1008, the revocation as the
/// reason); returns how many.
pub fn end_revoked(rules: &Rules, sessions: &Sessions) -> usize {
    if rules.is_empty() {
        return 0;
    }
    // One pass per distinct reason: the reason names the user, and `stop_where` sends
    // one stop to all it matches.
    let mut reasons: Vec<Revoked> = sessions
        .list()
        .iter()
        .filter_map(|i| rules.check(i.jti.as_deref(), i.sub.as_deref()).err())
        .collect();
    reasons.sort_by_key(|r| r.to_string());
    reasons.dedup();
    let mut ended = 0;
    for reason in reasons {
        ended += sessions.stop_where(Stop::Kill(reason.to_string()), |i| {
            rules
                .check(i.jti.as_deref(), i.sub.as_deref())
                .err()
                .as_ref()
                == Some(&reason)
        });
    }
    ended
}

fn read(path: &Path) -> Result<Rules, DenyListError> {
    let read_err = |cause| DenyListError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_FILE {
        return Err(DenyListError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Rules::parse(&text).map_err(|(line, message)| DenyListError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_kind_and_value_lines_with_comment_lines() {
        let r = Rules::parse(
            "# comment\n\n  jti abc  \nsub alice smith\nsub bob#1\n\t# indented comment\n",
        )
        .unwrap();
        assert_eq!(r.len(), (1, 2));
        assert_eq!(r.check(Some("abc"), Some("carol")), Err(Revoked::Ticket));
        assert_eq!(
            r.check(Some("x"), Some("alice smith")),
            Err(Revoked::User("alice smith".into()))
        );
        assert_eq!(
            r.check(None, Some("bob#1")),
            Err(Revoked::User("bob#1".into()))
        );
        assert_eq!(r.check(Some("abcd"), Some("alice")), Ok(()));
        assert_eq!(r.check(None, None), Ok(()));
    }

    #[test]
    fn a_malformed_line_names_its_number() {
        assert_eq!(Rules::parse("jti a\nuser bob\n"), Err((2, "unknown kind")));
        assert_eq!(
            Rules::parse("jti\n"),
            Err((1, "a rule needs a kind and a value"))
        );
        assert_eq!(
            Rules::parse("sub   \n"),
            Err((1, "a rule needs a kind and a value"))
        );
        assert_eq!(Rules::parse("JTI a\n"), Err((1, "unknown kind")));
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny.list");
        std::fs::write(&path, "jti one\n").unwrap();
        let list = DenyList::load(Some(&path)).unwrap();
        assert!(list.check(Some("one"), None).is_err());
        std::fs::write(&path, "jti one\nbogus line\n").unwrap();
        let err = list.reload().unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(list.check(Some("one"), None).is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(list.reload(), Err(DenyListError::Read { .. })));
        assert!(list.check(Some("one"), None).is_err());
        std::fs::write(&path, "sub two\n").unwrap();
        list.reload().unwrap();
        assert!(list.check(Some("one"), None).is_ok());
        assert!(list.check(None, Some("two")).is_err());
    }

    #[test]
    fn no_file_configured_denies_nothing() {
        let list = DenyList::load(None).unwrap();
        assert!(list.rules().is_empty());
        assert!(list.reload().unwrap().is_none());
    }
}

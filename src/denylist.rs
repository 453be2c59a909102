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
//! contain spaces or `#`.
//!
//! A plain `jti` or `sub` rule revokes that ticket id or user whoever issued it. Ticket
//! ids and user names are chosen by each issuer, so a rule can also name the issuer,
//! the key id the proxy logs as `kid` (an Ed25519 key's thumbprint, `ovirt:<hex>` for
//! the oVirt engine, `tokenfile` for websockify tokens), joined to the kind with `@`:
//!
//! ```text
//! # only engine-2026's ticket 42, not another engine's 42
//! jti@Zk3qX0mYwQ2dLr7Vt0pS8uF1bN6cH4eJ9aK5gE2iO3w 42
//! sub@ovirt:1a2b3c4d5e6f7a8b admin@internal
//! ```
//!
//! A file that cannot be read is rejected whole: at start the proxy does not start, at
//! reload the previous list stays in force. A file with a malformed line is rejected
//! at start; at reload its well-formed lines are added to the previous list (see
//! [`DenyList::reload`]), so a typo on one line never blocks the revocations on the
//! others.

use crate::relay::Stop;
use crate::session::{SessionInfo, Sessions};
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
    #[error("deny list {} line {line}: {message} (expected `jti <id>`, `sub <user>`, `jti@<kid> <id>` or `sub@<kid> <user>`)", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: &'static str,
    },
}

/// One parsed deny list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Ticket ids revoked whoever issued them.
    jti: HashSet<String>,
    /// Users revoked whoever issued their tickets.
    sub: HashSet<String>,
    /// (issuer, ticket id) revoked for that issuer only.
    issuer_jti: HashSet<(String, String)>,
    /// (issuer, user) revoked for that issuer only.
    issuer_sub: HashSet<(String, String)>,
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

/// What a ticket (or a live session) is checked by: who issued it, its id, its user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The key id: an Ed25519 key's thumbprint, `ovirt:<hex>`, `tokenfile`.
    pub issuer: &'a str,
    pub jti: Option<&'a str>,
    pub sub: Option<&'a str>,
}

impl Rules {
    /// Parses the file's text; the error is the 1-based line number and what is wrong.
    pub fn parse(text: &str) -> Result<Rules, (usize, &'static str)> {
        let (rules, bad) = Rules::parse_lenient(text);
        match bad.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(rules),
        }
    }

    /// Parses every well-formed line and lists the malformed ones (line number and
    /// what is wrong), for a reload that must not lose the good lines to a bad one.
    pub fn parse_lenient(text: &str) -> (Rules, Vec<(usize, &'static str)>) {
        let mut rules = Rules::default();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Err(message) = rules.add_line(line) {
                bad.push((i + 1, message));
            }
        }
        (rules, bad)
    }

    fn add_line(&mut self, line: &str) -> Result<(), &'static str> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let (kind, value) = line
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or("a rule needs a kind and a value")?;
        let value = value.trim();
        if value.is_empty() {
            return Err("empty value");
        }
        let (kind, issuer) = match kind.split_once('@') {
            Some((_, "")) => return Err("empty key id after @"),
            Some((k, issuer)) => (k, Some(issuer)),
            None => (kind, None),
        };
        let value = value.to_string();
        match (kind, issuer) {
            ("jti", None) => self.jti.insert(value),
            ("sub", None) => self.sub.insert(value),
            ("jti", Some(i)) => self.issuer_jti.insert((i.to_string(), value)),
            ("sub", Some(i)) => self.issuer_sub.insert((i.to_string(), value)),
            _ => return Err("unknown kind"),
        };
        Ok(())
    }

    /// Every rule of `self` and of `other`.
    pub fn union(mut self, other: &Rules) -> Rules {
        self.jti.extend(other.jti.iter().cloned());
        self.sub.extend(other.sub.iter().cloned());
        self.issuer_jti.extend(other.issuer_jti.iter().cloned());
        self.issuer_sub.extend(other.issuer_sub.iter().cloned());
        self
    }

    /// Whether a ticket (or session) is revoked; a revoked ticket id wins over a
    /// revoked user, as the more specific rule.
    pub fn check(&self, s: Subject<'_>) -> Result<(), Revoked> {
        let scoped = |set: &HashSet<(String, String)>, v: &str| {
            // No allocation per check unless issuer-scoped rules exist.
            !set.is_empty() && set.contains(&(s.issuer.to_string(), v.to_string()))
        };
        if let Some(j) = s.jti {
            if self.jti.contains(j) || scoped(&self.issuer_jti, j) {
                return Err(Revoked::Ticket);
            }
        }
        match s.sub {
            Some(u) if self.sub.contains(u) || scoped(&self.issuer_sub, u) => {
                Err(Revoked::User(u.to_string()))
            }
            _ => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jti.is_empty()
            && self.sub.is_empty()
            && self.issuer_jti.is_empty()
            && self.issuer_sub.is_empty()
    }

    /// (ticket ids, users) listed, with or without an issuer.
    pub fn len(&self) -> (usize, usize) {
        (
            self.jti.len() + self.issuer_jti.len(),
            self.sub.len() + self.issuer_sub.len(),
        )
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

    pub fn check(&self, subject: Subject<'_>) -> Result<(), Revoked> {
        self.rules().check(subject)
    }

    /// Re-reads the file. Returns the rules now in force (`None` when no file is
    /// configured) and, when the file had malformed lines, the error naming the first.
    ///
    /// Revocation is never blocked by a broken file: a file that cannot be read keeps
    /// the previous rules; a file with malformed lines gives its well-formed lines
    /// *plus* the previous rules (a rule removed in the same edit is lifted only once
    /// the file is fixed, the safe side).
    pub fn reload(&self) -> (Option<Arc<Rules>>, Option<DenyListError>) {
        let Some(path) = &self.path else {
            return (None, None);
        };
        let (rules, error) = match read_lenient(path) {
            Ok((rules, None)) => (rules, None),
            Ok((rules, Some(bad))) => (rules.union(&self.rules()), Some(bad)),
            Err(e) => return (Some(self.rules()), Some(e)),
        };
        let rules = Arc::new(rules);
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules.clone();
        (Some(rules), error)
    }
}

impl DenyList {
    /// SIGHUP: re-reads the file (see [`DenyList::reload`]) and ends the live
    /// sessions the rules in force revoke, with 1008 and the revocation as the
    /// reason. Returns the file's error, if any, after logging it.
    pub fn reload_and_enforce(&self, sessions: &Sessions) -> Result<(), DenyListError> {
        let (rules, error) = self.reload();
        if let Some(rules) = rules {
            let ended = end_revoked(&rules, sessions);
            let (jti, sub) = rules.len();
            tracing::info!(jti, sub, sessions_ended = ended, "reloaded deny list");
        }
        match error {
            None => Ok(()),
            Some(e) => {
                tracing::error!(cause = %e, "deny list has errors: its readable rules are added to the previous list, which stays in force");
                Err(e)
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
        .filter_map(|i| rules.check(subject_of(i)).err())
        .collect();
    reasons.sort_by_key(|r| r.to_string());
    reasons.dedup();
    let mut ended = 0;
    for reason in reasons {
        ended += sessions.stop_where(Stop::Kill(reason.to_string()), |i| {
            rules.check(subject_of(i)).err().as_ref() == Some(&reason)
        });
    }
    ended
}

/// A live session as the deny list sees it.
fn subject_of(i: &SessionInfo) -> Subject<'_> {
    Subject {
        issuer: &i.kid,
        jti: i.jti.as_deref(),
        sub: i.sub.as_deref(),
    }
}

fn read(path: &Path) -> Result<Rules, DenyListError> {
    match read_lenient(path)? {
        (rules, None) => Ok(rules),
        (_, Some(e)) => Err(e),
    }
}

/// The file's well-formed rules, and the error naming its first malformed line.
fn read_lenient(path: &Path) -> Result<(Rules, Option<DenyListError>), DenyListError> {
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
    let (rules, bad) = Rules::parse_lenient(&text);
    let error = bad
        .into_iter()
        .next()
        .map(|(line, message)| DenyListError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        });
    Ok((rules, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(issuer: &'a str, jti: Option<&'a str>, sub: Option<&'a str>) -> Subject<'a> {
        Subject { issuer, jti, sub }
    }

    fn any<'a>(jti: Option<&'a str>, sub: Option<&'a str>) -> Subject<'a> {
        who("k1", jti, sub)
    }

    #[test]
    fn rules_are_kind_and_value_lines_with_comment_lines() {
        let r = Rules::parse(
            "# comment\n\n  jti abc  \nsub alice smith\nsub bob#1\n\t# indented comment\n",
        )
        .unwrap();
        assert_eq!(r.len(), (1, 2));
        assert_eq!(
            r.check(any(Some("abc"), Some("carol"))),
            Err(Revoked::Ticket)
        );
        assert_eq!(
            r.check(any(Some("x"), Some("alice smith"))),
            Err(Revoked::User("alice smith".into()))
        );
        assert_eq!(
            r.check(any(None, Some("bob#1"))),
            Err(Revoked::User("bob#1".into()))
        );
        assert_eq!(r.check(any(Some("abcd"), Some("alice"))), Ok(()));
        assert_eq!(r.check(any(None, None)), Ok(()));
    }

    #[test]
    fn a_rule_with_an_issuer_revokes_that_issuers_ticket_only() {
        let r = Rules::parse("jti@key-a 42\nsub@ovirt:1a2b alice\njti 7\n").unwrap();
        assert_eq!(r.len(), (2, 1));
        assert_eq!(
            r.check(who("key-a", Some("42"), None)),
            Err(Revoked::Ticket)
        );
        assert_eq!(r.check(who("key-b", Some("42"), None)), Ok(()));
        assert_eq!(
            r.check(who("ovirt:1a2b", None, Some("alice"))),
            Err(Revoked::User("alice".into()))
        );
        assert_eq!(r.check(who("key-a", None, Some("alice"))), Ok(()));
        // A plain rule still means every issuer.
        assert_eq!(r.check(who("key-b", Some("7"), None)), Err(Revoked::Ticket));
        assert_eq!(
            r.check(who("tokenfile", Some("7"), None)),
            Err(Revoked::Ticket)
        );
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
        assert_eq!(Rules::parse("jti@ a\n"), Err((1, "empty key id after @")));
        assert_eq!(Rules::parse("kid@x a\n"), Err((1, "unknown kind")));
    }

    #[test]
    fn a_broken_file_never_blocks_a_revocation_nor_lifts_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny.list");
        std::fs::write(&path, "jti one\n").unwrap();
        let list = DenyList::load(Some(&path)).unwrap();
        assert!(list.check(any(Some("one"), None)).is_err());
        // A typo on one line: the new revocation on the next still takes effect, and
        // "one", removed in the same edit, stays revoked until the file is fixed.
        std::fs::write(&path, "bogus line\njti two\n").unwrap();
        let (rules, err) = list.reload();
        let err = err.unwrap();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert_eq!(rules.unwrap().len(), (2, 0));
        assert!(list.check(any(Some("one"), None)).is_err());
        assert!(list.check(any(Some("two"), None)).is_err());
        // An unreadable file keeps what was in force.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(list.reload().1, Some(DenyListError::Read { .. })));
        assert!(list.check(any(Some("two"), None)).is_err());
        // A good file is the list exactly.
        std::fs::write(&path, "sub three\n").unwrap();
        assert!(list.reload().1.is_none());
        assert!(list.check(any(Some("one"), None)).is_ok());
        assert!(list.check(any(Some("two"), None)).is_ok());
        assert!(list.check(any(None, Some("three"))).is_err());
    }

    #[test]
    fn a_malformed_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny.list");
        std::fs::write(&path, "jti one\nbogus\n").unwrap();
        let err = DenyList::load(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn no_file_configured_denies_nothing() {
        let list = DenyList::load(None).unwrap();
        assert!(list.rules().is_empty());
        assert!(list.reload().0.is_none());
    }
}

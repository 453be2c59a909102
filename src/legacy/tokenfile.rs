//! websockify token files: `token: host:port` lines in one file or in every file of a
//! directory, as websockify's `TokenFile` plugin reads them and as OpenNebula Sunstone
//! and Abiquo write them (one small file per VM, rewritten or deleted as consoles come
//! and go).
//!
//! Such tokens are not signed and do not expire: a token is good for as long as its
//! line is listed. The table is read at start, re-read when a file changes (a watcher
//! thread compares names, sizes and modification times once a second) and on SIGHUP,
//! never on a connection, so a busy proxy does not read a directory per console.
//!
//! A token's identity (its `jti` in logs, the deny list, `kill --jti` and the
//! per-ticket session count) is a digest of the token itself, `tok:` and the first 16
//! hex digits of its SHA-256 ([`token_id`]), never where it is listed: a line rewritten
//! with another user's token is another ticket, not a newer session of the same one.
//! When a re-read no longer lists a token, or lists it for another console server, the
//! token is *withdrawn* and the owner of the table (admission) ends its live sessions,
//! as the deny list does.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// How often the watcher looks for changed files.
const POLL: Duration = Duration::from_secs(1);

/// Longest token looked up; longer ones cannot be listed by any sane file.
const MAX_TOKEN_LEN: usize = 4096;

/// Why the token source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read websockify token source {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// One listed token's console server, its identity and where it was listed (for
/// logs: the token itself is a bearer secret and is never logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub host: String,
    pub port: u16,
    /// `tok:` and 16 hex digits of the token's SHA-256 ([`token_id`]).
    pub id: String,
    /// `file name:line`.
    pub origin: String,
}

/// A token's identity: `tok:` and the first 16 hex digits (64 bits) of the SHA-256 of
/// the token. It names the token in logs and rules without revealing it.
pub fn token_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("tok:{hex}")
}

/// A token a re-read withdrew: its sessions must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    /// The token's [`token_id`].
    pub id: String,
    /// Where it was listed before.
    pub origin: String,
    /// Why, as the sessions' close reason.
    pub reason: &'static str,
}

/// Called with the tokens a re-read withdrew (from the watcher thread or SIGHUP).
pub type OnWithdrawn = Box<dyn Fn(&[Withdrawn]) + Send + Sync>;

/// A line that could not be read; websockify skips it with an error, and so do we.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub origin: String,
    pub problem: &'static str,
}

/// Parses one file's text: `token: host:port`, `#` comments and blank lines ignored.
///
/// As websockify does, a line splits at a colon followed by whitespace, which must
/// occur exactly once; the target splits at its last colon. A bracketed IPv6 host
/// (`[::1]:5900`) is unbracketed, since the target policy and `connect` want the bare
/// address. Entries whose host or port the proxy would refuse anyway are bad lines.
pub fn parse(name: &str, text: &str) -> (Vec<(String, Entry)>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = format!("{name}:{}", i + 1);
        match parse_line(line) {
            Ok((token, host, port)) => {
                let id = token_id(&token);
                entries.push((
                    token,
                    Entry {
                        host,
                        port,
                        id,
                        origin,
                    },
                ))
            }
            Err(problem) => bad.push(BadLine { origin, problem }),
        }
    }
    (entries, bad)
}

fn parse_line(line: &str) -> Result<(String, String, u16), &'static str> {
    let seps: Vec<usize> = line
        .char_indices()
        .filter(|&(i, c)| {
            c == ':'
                && line
                    .get(i + 1..)
                    .and_then(|r| r.chars().next())
                    .is_some_and(char::is_whitespace)
        })
        .map(|(i, _)| i)
        .collect();
    let [sep] = seps.as_slice() else {
        return Err("expected `token: host:port`");
    };
    let token = line.get(..*sep).unwrap_or("");
    let target = line.get(sep + 1..).unwrap_or("").trim();
    if token.is_empty() {
        return Err("empty token");
    }
    let (host, port) = target.rsplit_once(':').ok_or("target has no :port")?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or("port is not 1..65535")?;
    crate::ticket::Claims::new(host, port, 0)
        .validate()
        .map_err(|_| "host is not an IP address or DNS name")?;
    Ok((token.to_string(), host.to_string(), port))
}

/// What the watcher compares: each file's name, size and modification time.
type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The files of the source: the file itself, or the directory's regular files in name
/// order. Hidden files are skipped (editors' and atomic writers' temporary files).
fn files(source: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !source.is_dir() {
        return Ok(vec![source.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(source)? {
        let p = entry?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .map_or(true, |n| n.starts_with('.'));
        if !hidden && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn stamp(source: &Path) -> std::io::Result<Stamp> {
    files(source)?
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p)?;
            Ok((p, m.len(), m.modified().ok()))
        })
        .collect()
}

/// The table read from every file of the source, at start (`previous` is `None`: any
/// error is the error) or on a re-read (`previous` is the table in force).
///
/// On a re-read each file counts on its own, so one unreadable file never keeps the
/// tokens of the others alive: a file that cannot be read keeps its own entries of the
/// previous table (and its error is returned with the table), every other file is read
/// as it is now, and a source that no longer exists is an empty table (deleting the file
/// or directory withdraws its tokens). Only a directory that cannot be listed keeps the
/// whole previous table.
fn read_table(
    source: &Path,
    previous: Option<&HashMap<String, Entry>>,
) -> Result<(HashMap<String, Entry>, Vec<LoadError>), LoadError> {
    let read_err = |path: &Path, cause| LoadError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let mut table = HashMap::new();
    let mut errors = Vec::new();
    if previous.is_some() {
        match std::fs::symlink_metadata(source) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((table, errors)),
            _ => {}
        }
    }
    for path in files(source).map_err(|e| read_err(source, e))? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match (std::fs::read_to_string(&path), previous) {
            (Ok(t), _) => t,
            // A directory's file deleted between the listing and the read is simply gone.
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound && path != source => continue,
            (Err(e), None) => return Err(read_err(&path, e)),
            (Err(e), Some(previous)) => {
                for (token, entry) in previous {
                    if entry.origin.rsplit_once(':').map(|(f, _)| f) == Some(name.as_str()) {
                        table.insert(token.clone(), entry.clone());
                    }
                }
                errors.push(read_err(&path, e));
                continue;
            }
        };
        let (entries, bad) = parse(&name, &text);
        for b in bad {
            warn!(entry = %b.origin, problem = b.problem, "skipped a line of the websockify token source");
        }
        for (token, entry) in entries {
            // websockify keeps the last line read for a token; so do we, and say so.
            if let Some(old) = table.insert(token, entry.clone()) {
                warn!(entry = %entry.origin, replaces = %old.origin, "a token is listed twice; the later line wins");
            }
        }
    }
    Ok((table, errors))
}

struct Shared {
    source: PathBuf,
    table: RwLock<Arc<HashMap<String, Entry>>>,
    /// Told of withdrawn tokens; set once by the table's owner.
    on_withdrawn: RwLock<Option<OnWithdrawn>>,
}

impl Shared {
    /// Re-reads the table ([`read_table`]); returns how many tokens it lists, or the
    /// first file that could not be read (the table is then in force all the same,
    /// that file's previous entries kept).
    fn reload(&self) -> Result<usize, LoadError> {
        let mut slot = self.table.write().unwrap_or_else(|p| p.into_inner());
        let (table, errors) = read_table(&self.source, Some(&slot))?;
        let table = Arc::new(table);
        let n = table.len();
        let old = std::mem::replace(&mut *slot, table.clone());
        drop(slot);
        let withdrawn = withdrawn(&old, &table);
        if !withdrawn.is_empty() {
            if let Some(tell) = &*self.on_withdrawn.read().unwrap_or_else(|p| p.into_inner()) {
                tell(&withdrawn);
            }
        }
        match errors.into_iter().next() {
            None => Ok(n),
            Some(e) => Err(e),
        }
    }
}

/// The tokens of `old` that `new` no longer lists, or lists for another console
/// server.
fn withdrawn(old: &HashMap<String, Entry>, new: &HashMap<String, Entry>) -> Vec<Withdrawn> {
    let mut out: Vec<Withdrawn> = old
        .iter()
        .filter_map(|(token, was)| {
            let reason = match new.get(token) {
                None => "token no longer listed",
                Some(now) if (&now.host, now.port) != (&was.host, was.port) => {
                    "token now names another console server"
                }
                Some(_) => return None,
            };
            Some(Withdrawn {
                id: was.id.clone(),
                origin: was.origin.clone(),
                reason,
            })
        })
        .collect();
    out.sort_by(|a, b| a.origin.cmp(&b.origin));
    out
}

/// The token table and its watcher. The watcher thread ends when this is dropped.
pub struct TokenSource {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("source", &self.shared.source)
            .finish()
    }
}

impl TokenSource {
    /// Reads the source (an error if it cannot be read) and starts watching it.
    pub fn load(source: &Path) -> Result<TokenSource, LoadError> {
        let shared = Arc::new(Shared {
            source: source.to_path_buf(),
            table: RwLock::new(Arc::new(read_table(source, None)?.0)),
            on_withdrawn: RwLock::new(None),
        });
        let weak = Arc::downgrade(&shared);
        let first = stamp(source).ok();
        // A plain thread, so the table also follows its files outside a runtime
        // (`--check-config`, tests) and never blocks the proxy's workers with I/O.
        let spawned = std::thread::Builder::new()
            .name("token-watch".into())
            .spawn(move || watch(weak, first));
        if let Err(e) = spawned {
            warn!(cause = %e, "cannot start the token file watcher; the table changes only on SIGHUP");
        }
        Ok(TokenSource { shared })
    }

    /// The number of listed tokens.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn source(&self) -> &Path {
        &self.shared.source
    }

    /// The entry listed for `token`, if any.
    pub fn lookup(&self, token: &str) -> Option<Entry> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        self.current().get(token).cloned()
    }

    /// Re-reads now (SIGHUP); see [`read_table`] for what an error leaves in force.
    pub fn reload(&self) -> Result<usize, LoadError> {
        self.shared.reload()
    }

    /// Whether `id` (a [`token_id`]) is listed now, for `host:port`: a session
    /// admitted just as its token was withdrawn checks again once registered.
    pub fn lists(&self, id: &str, host: &str, port: u16) -> bool {
        self.current()
            .values()
            .any(|e| e.id == id && e.host == host && e.port == port)
    }

    /// Sets what is told of withdrawn tokens at every later re-read.
    pub fn on_withdrawn(&self, tell: OnWithdrawn) {
        *self
            .shared
            .on_withdrawn
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(tell);
    }

    fn current(&self) -> Arc<HashMap<String, Entry>> {
        self.shared
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Re-reads the table whenever the source's files change, until the source is dropped.
/// A change is read once it has held for one poll: a writer that truncates a file and
/// then writes it (rather than renaming a new one into place) is not caught halfway,
/// which would withdraw, and end the sessions of, tokens it is about to write back.
fn watch(shared: Weak<Shared>, mut last: Option<Stamp>) {
    let mut seen = last.clone();
    loop {
        std::thread::sleep(POLL);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = stamp(&shared.source).ok();
        let settled = now == seen;
        seen = now.clone();
        if now == last || !settled {
            continue;
        }
        match shared.reload() {
            Ok(n) => {
                info!(source = %shared.source.display(), tokens = n, "websockify token source changed; re-read");
                last = now;
            }
            Err(e) => {
                warn!(cause = %e, "websockify token source changed and part of it cannot be read; what cannot be read keeps its previous tokens");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_websockify_reads_them() {
        let text = "# generated by OpenNebula\n\n  k3j4h5g6f7d8s9a0q1w2: 10.0.0.5:5905  \n\
                    abc: [::1]:5900\n\
                    bad line\n\
                    two: seps: 1.2.3.4:5\n\
                    noport: 10.0.0.1\n\
                    zero: 10.0.0.1:0\n\
                    name: hv1.example:5901\n";
        let (entries, bad) = parse("one-42", text);
        assert_eq!(
            entries,
            vec![
                (
                    "k3j4h5g6f7d8s9a0q1w2".to_string(),
                    Entry {
                        host: "10.0.0.5".into(),
                        port: 5905,
                        id: token_id("k3j4h5g6f7d8s9a0q1w2"),
                        origin: "one-42:3".into()
                    }
                ),
                (
                    "abc".to_string(),
                    Entry {
                        host: "::1".into(),
                        port: 5900,
                        id: token_id("abc"),
                        origin: "one-42:4".into()
                    }
                ),
                (
                    "name".to_string(),
                    Entry {
                        host: "hv1.example".into(),
                        port: 5901,
                        id: token_id("name"),
                        origin: "one-42:9".into()
                    }
                ),
            ]
        );
        let origins: Vec<&str> = bad.iter().map(|b| b.origin.as_str()).collect();
        assert_eq!(origins, ["one-42:5", "one-42:6", "one-42:7", "one-42:8"]);
    }

    #[test]
    fn a_directory_is_read_file_by_file_and_hidden_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one-1"), "t1: 127.0.0.1:5901\n").unwrap();
        std::fs::write(dir.path().join("one-2"), "t2: 127.0.0.1:5902\n").unwrap();
        std::fs::write(dir.path().join(".one-3.swp"), "t3: 127.0.0.1:5903\n").unwrap();
        let src = TokenSource::load(dir.path()).unwrap();
        assert_eq!(src.len(), 2);
        assert_eq!(src.lookup("t2").unwrap().origin, "one-2:1");
        assert_eq!(src.lookup("t3"), None);
        assert_eq!(src.lookup(""), None);
    }

    #[test]
    fn a_changed_file_is_picked_up_without_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, "old: 127.0.0.1:5901\n").unwrap();
        let src = TokenSource::load(&f).unwrap();
        assert!(src.lookup("old").is_some());
        std::fs::write(&f, "new: 127.0.0.1:5902\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while src.lookup("new").is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(src.lookup("new").is_some());
        assert_eq!(src.lookup("old"), None);
    }

    #[test]
    fn a_missing_source_is_an_error_at_start() {
        let err = TokenSource::load(Path::new("/nonexistent/tokens")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tokens"), "{err}");
    }

    #[test]
    fn a_token_is_identified_by_a_digest_of_itself_never_by_its_line() {
        let id = token_id("k3j4h5g6f7d8s9a0q1w2");
        assert!(id.starts_with("tok:") && id.len() == 20, "{id}");
        assert!(!id.contains("k3j4"));
        // The same line with another token is another identity.
        let (a, _) = parse("one-1", "alice-token: 127.0.0.1:5901\n");
        let (b, _) = parse("one-1", "bob-token: 127.0.0.1:5901\n");
        assert_eq!(a[0].1.origin, b[0].1.origin);
        assert_ne!(a[0].1.id, b[0].1.id);
        assert_eq!(a[0].1.id, token_id("alice-token"));
    }

    #[test]
    fn a_reread_withdraws_tokens_no_longer_listed_or_moved_to_another_console() {
        let table = |text: &str| parse("f", text).0.into_iter().collect::<HashMap<_, _>>();
        let old = table("a: 127.0.0.1:5901\nb: 127.0.0.1:5902\nc: 127.0.0.1:5903\n");
        let new = table("c: 127.0.0.1:5903\nb: 127.0.0.1:5909\nd: 127.0.0.1:5904\n");
        let w = withdrawn(&old, &new);
        let got: Vec<(&str, &str)> = w.iter().map(|w| (w.id.as_str(), w.reason)).collect();
        let (a, b) = (token_id("a"), token_id("b"));
        assert_eq!(
            got,
            vec![
                (a.as_str(), "token no longer listed"),
                (b.as_str(), "token now names another console server")
            ]
        );
    }

    #[test]
    fn withdrawn_tokens_are_told_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, "alice-token: 127.0.0.1:5901\n").unwrap();
        let src = TokenSource::load(&f).unwrap();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = told.clone();
        src.on_withdrawn(Box::new(move |w| sink.lock().unwrap().extend_from_slice(w)));
        assert!(src.lists(&token_id("alice-token"), "127.0.0.1", 5901));
        std::fs::write(&f, "bob-token: 127.0.0.1:5901\n").unwrap();
        src.reload().unwrap();
        let told = told.lock().unwrap().clone();
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].id, token_id("alice-token"));
        assert!(!src.lists(&token_id("alice-token"), "127.0.0.1", 5901));
        assert!(src.lists(&token_id("bob-token"), "127.0.0.1", 5901));
    }

    #[test]
    fn an_unreadable_file_keeps_its_own_tokens_and_never_the_deleted_ones_of_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one-1"), "t1: 127.0.0.1:5901\n").unwrap();
        std::fs::write(dir.path().join("one-2"), "t2: 127.0.0.1:5902\n").unwrap();
        let src = TokenSource::load(dir.path()).unwrap();
        // one-1 cannot be read now (not UTF-8, as a half-written or corrupted file),
        // and in the same change one-2 is deleted.
        std::fs::write(dir.path().join("one-1"), b"t1: \xff\xfe\n").unwrap();
        std::fs::remove_file(dir.path().join("one-2")).unwrap();
        let err = src.reload().unwrap_err();
        assert!(err.to_string().contains("one-1"), "{err}");
        assert!(
            src.lookup("t1").is_some(),
            "the unreadable file keeps its tokens"
        );
        assert_eq!(
            src.lookup("t2"),
            None,
            "the deleted file's token is withdrawn"
        );
    }
}

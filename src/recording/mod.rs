//! Session recording: a ticket with `rec: true` (or every session, with policy
//! `all`) is recorded to a file the operator can verify and replay in the browser.
//!
//! The pieces, in the order a recorded session meets them:
//! - [`Recorder`], one per proxy: the `[recording]` settings, the directory, the
//!   counters for `/metrics`, and the names of recordings being written (retention
//!   never removes those).
//! - [`Recorder::check`] before anything else is spent on the session, and
//!   [`Recorder::start`] before the 101 answer: it creates the file and writes its
//!   header, so a proxy that cannot record refuses the session (HTTP 503,
//!   `recording_unavailable`) instead of running it unrecorded.
//! - [`RecordingObserver`], handed to the session's [`crate::tap::Tap`]: copies the
//!   bytes into a bounded queue on the relay's task, redacting the VNC authentication
//!   response and, when input recording is off, the browser's input.
//! - The writer task ([`writer`]): encodes ([`vnc`] or [`cast`]), hashes, writes; ends
//!   the session if it fails; writes the SHA-256 trailer when the session ends.
//! - [`Recording::finish`]: the digest for the session's end log line.
//! - [`verify`], [`store`]: what `consolegate recording verify|list` and the admin
//!   listener use.
//!
//! docs/recording-format.md describes both file formats; web/recording.js reads them
//! in the browser, and tests/recording_contract.rs keeps the two in step.

pub mod cast;
pub mod meta;
mod observer;
pub mod report;
pub mod store;
pub mod verify;
pub mod vnc;
mod writer;

pub use meta::Meta;
pub use observer::RecordingObserver;
pub use writer::OnFail;

use crate::rfb::view::ViewOnlyFilter;
use crate::ticket::Kind;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use store::Retention;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Default per-session queue budget: a few full-screen updates.
pub const DEFAULT_QUEUE_BYTES: usize = 16 << 20;
/// Default free-space floor.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

/// Which sessions are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Sessions whose ticket says `rec: true`.
    #[default]
    Ticket,
    /// Every session; a console kind that cannot be recorded is refused.
    All,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Ticket => "ticket",
            Policy::All => "all",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "ticket" => Ok(Policy::Ticket),
            "all" => Ok(Policy::All),
            _ => Err(()),
        }
    }
}

/// `[recording]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Where recordings are written (created 0750).
    pub dir: PathBuf,
    pub policy: Policy,
    pub retention: Retention,
    /// New recorded sessions are refused while less than this is free.
    pub min_free_bytes: u64,
    /// Record the browser's input (keys, pointer, serial input).
    pub input: bool,
    /// Most bytes one session may have queued for its writer.
    pub queue_bytes: usize,
}

impl RecordingConfig {
    /// Defaults for a directory.
    pub fn new(dir: PathBuf) -> Self {
        RecordingConfig {
            dir,
            policy: Policy::Ticket,
            retention: Retention::default(),
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            input: true,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

/// Why a session cannot be recorded, or its recording failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// The ticket asks for recording and the proxy has no `[recording]`.
    #[error("this proxy does not record sessions ([recording] dir is not configured), and the ticket asks for a recorded session")]
    NotConfigured,
    /// SPICE sessions cannot be recorded.
    #[error("{0} consoles cannot be recorded by this proxy, and the session must be recorded")]
    Unsupported(&'static str),
    #[error("the recording directory {} is not usable: {cause}", path.display())]
    Directory { path: PathBuf, cause: String },
    #[error("the recording directory {} has {available} bytes free, below the floor of {floor}", path.display())]
    LowSpace {
        path: PathBuf,
        available: u64,
        floor: u64,
    },
    #[error("cannot create recording {}: {cause}", path.display())]
    Create { path: PathBuf, cause: String },
    #[error("writing recording {} failed: {cause}", path.display())]
    Write { path: PathBuf, cause: String },
    #[error("recording {} was removed while the session was running", path.display())]
    Removed { path: PathBuf },
    #[error("the recording's writer task ended unexpectedly")]
    WriterGone,
}

impl RecordingError {
    /// HTTP status when this refuses a session before the upgrade.
    pub fn status(&self) -> u16 {
        match self {
            RecordingError::Unsupported(_) => 501,
            _ => 503,
        }
    }

    /// Refusal code (docs/operations.md; the console page knows them).
    pub fn code(&self) -> &'static str {
        match self {
            RecordingError::Unsupported(_) => "recording_unsupported",
            _ => "recording_unavailable",
        }
    }

    /// What the person sees: no paths (they are the operator's business, and in the
    /// log line), at most a close reason's 123 bytes.
    pub fn session_reason(&self) -> String {
        match self {
            RecordingError::NotConfigured => {
                "this session must be recorded, and this proxy does not record sessions".into()
            }
            RecordingError::Unsupported(kind) => {
                format!("this session must be recorded, and {kind} consoles cannot be recorded")
            }
            RecordingError::Directory { .. }
            | RecordingError::LowSpace { .. }
            | RecordingError::Create { .. } => {
                "this session must be recorded, and the proxy cannot record it now".into()
            }
            RecordingError::Write { cause, .. } => {
                let mut s = format!("session recording failed ({cause}), so the session was ended");
                if s.len() > 123 {
                    s = "session recording failed, so the session was ended".into();
                }
                s
            }
            RecordingError::Removed { .. } => {
                "the session's recording file was removed, so the session was ended".into()
            }
            RecordingError::WriterGone => {
                "session recording stopped, so the session was ended".into()
            }
        }
    }
}

/// A failure recorded once, read by the observer on every call.
#[derive(Debug, Default)]
pub(crate) struct Failure(OnceLock<String>);

impl Failure {
    fn set(&self, reason: String) {
        let _ = self.0.set(reason);
    }
    fn get(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RecordingStats {
    started: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    pruned: AtomicU64,
    active: AtomicU64,
}

impl RecordingStats {
    /// Recordings started (file created, header written).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
    /// Recordings that could not be created (the session was refused) or failed
    /// mid-session (the session was ended).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// Recordings being written now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    /// Bytes written to recording files.
    pub fn bytes_written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Recordings removed by retention.
    pub fn pruned(&self) -> u64 {
        self.pruned.load(Ordering::Relaxed)
    }
    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn add_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub name: String,
    pub path: PathBuf,
    /// SHA-256 of the file before its trailer, lower-case hex: also in the trailer.
    pub sha256: String,
    /// The file's size.
    pub bytes: u64,
}

/// The proxy's recorder.
pub struct Recorder {
    config: Option<RecordingConfig>,
    stats: Arc<RecordingStats>,
    /// Names of recordings being written.
    active: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `config` (`None`: recording not configured, every `rec`
    /// ticket is refused). Creates the directory; warns when others can read it.
    pub fn new(config: Option<RecordingConfig>) -> Result<Recorder, RecordingError> {
        if let Some(c) = &config {
            match store::prepare_dir(&c.dir) {
                Ok(Some(mode)) => tracing::warn!(
                    dir = %c.dir.display(),
                    mode = format!("{mode:04o}"),
                    "the recording directory can be read by other users; `chmod 750` it"
                ),
                Ok(None) => {}
                Err(e) => {
                    return Err(RecordingError::Directory {
                        path: c.dir.clone(),
                        cause: e.to_string(),
                    })
                }
            }
        }
        Ok(Recorder {
            config,
            stats: Arc::default(),
            active: Arc::default(),
        })
    }

    /// A recorder for `config` that touches nothing on disk, for checking tickets
    /// against it ([`Recorder::wanted`], [`Recorder::check`]), never for recording.
    pub fn for_checking(config: Option<RecordingConfig>) -> Recorder {
        Recorder {
            config,
            stats: Arc::default(),
            active: Arc::default(),
        }
    }

    /// A recorder that records nothing.
    pub fn disabled() -> Recorder {
        Recorder {
            config: None,
            stats: Arc::default(),
            active: Arc::default(),
        }
    }

    pub fn config(&self) -> Option<&RecordingConfig> {
        self.config.as_ref()
    }

    pub fn stats(&self) -> &Arc<RecordingStats> {
        &self.stats
    }

    /// True when a session with this `rec` claim must be recorded.
    pub fn wanted(&self, rec_claim: bool) -> bool {
        rec_claim
            || self
                .config
                .as_ref()
                .is_some_and(|c| c.policy == Policy::All)
    }

    /// Whether a session that must be recorded could be now (for the pre-flight
    /// check and the admission, before anything is spent on the session).
    pub fn check(&self, kind: Kind) -> Result<(), RecordingError> {
        let c = self.config.as_ref().ok_or(RecordingError::NotConfigured)?;
        match kind {
            Kind::Vnc | Kind::Serial => {}
            Kind::Spice => return Err(RecordingError::Unsupported("SPICE")),
        }
        let available = store::available_space(&c.dir).map_err(|e| RecordingError::Directory {
            path: c.dir.clone(),
            cause: e.to_string(),
        })?;
        if available < c.min_free_bytes {
            return Err(RecordingError::LowSpace {
                path: c.dir.clone(),
                available,
                floor: c.min_free_bytes,
            });
        }
        Ok(())
    }

    /// Creates the recording of a session and its writer. `meta.input` is set from
    /// the configuration. Call before the 101 answer: an error refuses the session.
    pub async fn start(
        &self,
        kind: Kind,
        mut meta: Meta,
        on_fail: OnFail,
    ) -> Result<(RecordingObserver, Recording), RecordingError> {
        self.check(kind)?;
        let c = self.config.as_ref().ok_or(RecordingError::NotConfigured)?;
        meta.input = c.input;
        let (extension, header, encoder) = match kind {
            Kind::Vnc => (vnc::EXTENSION, vnc::header(&meta), writer::Encoder::Vnc),
            _ => (
                cast::EXTENSION,
                cast::header(&meta),
                writer::Encoder::Cast {
                    out: cast::Utf8Decoder::default(),
                    input: cast::Utf8Decoder::default(),
                },
            ),
        };
        let name = store::file_name(meta.start_unix_ms, meta.session, extension);
        let path = c.dir.join(&name);
        let create_err = |cause: String| RecordingError::Create {
            path: path.clone(),
            cause,
        };
        let header = header.map_err(|e| create_err(e.to_string()))?;
        let file = {
            let (path, header) = (path.clone(), header.clone());
            tokio::task::spawn_blocking(move || create(&path, &header))
                .await
                .map_err(|e| create_err(e.to_string()))
                .and_then(|r| r.map_err(|e| create_err(e.to_string())))
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                self.stats.add_failed();
                tracing::warn!(cause = %e, "a session recording could not be created; the session is refused");
                return Err(e);
            }
        };
        let mut hasher = Sha256::new();
        hasher.update(&header);
        let started = tokio::time::Instant::now();
        let shared = Arc::new(writer::Shared::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let input = match (c.input, kind) {
            (true, _) => observer::Input::Record,
            (false, Kind::Vnc) => observer::Input::VncFiltered(ViewOnlyFilter::new()),
            (false, _) => observer::Input::Drop,
        };
        let observer = RecordingObserver {
            tx,
            shared: shared.clone(),
            budget: c.queue_bytes,
            started,
            input,
            scratch: Vec::new(),
        };
        self.lock_active().insert(name.clone());
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        self.stats.add_bytes(header.len() as u64);
        let task = writer::Task {
            file: tokio::fs::File::from_std(file),
            path: path.clone(),
            name: name.clone(),
            encoder,
            hasher,
            written: header.len() as u64,
            rx,
            shared,
            started,
            stats: self.stats.clone(),
            on_fail: Some(on_fail),
        };
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        let active = ActiveGuard {
            active: self.active.clone(),
            name: name.clone(),
            stats: self.stats.clone(),
        };
        let handle = tokio::spawn(async move {
            let _active = active;
            task.run().await
        });
        Ok((observer, Recording { name, path, handle }))
    }

    /// Applies retention now; returns how many recordings were removed.
    pub fn prune(&self) -> usize {
        let Some(c) = &self.config else { return 0 };
        if c.retention == Retention::default() {
            return 0;
        }
        let active = self.lock_active().clone();
        match store::prune(&c.dir, c.retention, &active, SystemTime::now()) {
            Ok(removed) => {
                for e in &removed {
                    tracing::info!(recording = %e.name, bytes = e.size, "retention removed a recording");
                }
                self.stats
                    .pruned
                    .fetch_add(removed.len() as u64, Ordering::Relaxed);
                removed.len()
            }
            Err(e) => {
                tracing::warn!(dir = %c.dir.display(), cause = %e, "retention could not read the recording directory");
                0
            }
        }
    }

    /// The recordings in the directory, oldest first, with whether each is being
    /// written now.
    pub fn list(&self) -> std::io::Result<Vec<(store::Entry, bool)>> {
        let Some(c) = &self.config else {
            return Ok(Vec::new());
        };
        let active = self.lock_active().clone();
        Ok(store::list(&c.dir)?
            .into_iter()
            .map(|e| {
                let live = active.contains(&e.name);
                (e, live)
            })
            .collect())
    }

    /// The path of the recording called `name`, if it is one of ours and exists.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        let c = self.config.as_ref()?;
        store::parse_name(name)?;
        let p = c.dir.join(name);
        std::fs::symlink_metadata(&p)
            .ok()
            .filter(|m| m.is_file())
            .map(|_| p)
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a recording from the active set when its writer ends, however it ends.
struct ActiveGuard {
    active: Arc<Mutex<HashSet<String>>>,
    name: String,
    stats: Arc<RecordingStats>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// Creates the file and writes the header. `create_new` (O_CREAT|O_EXCL) never opens
/// an existing file, nor follows a link planted under the name.
fn create(path: &Path, header: &[u8]) -> std::io::Result<std::fs::File> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(store::FILE_MODE)
        .open(path)?;
    // Exactly FILE_MODE, whatever the umask: the service's group may read recordings.
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(store::FILE_MODE))
        .and_then(|()| f.write_all(header))
        .and_then(|()| f.flush());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(f)
}

/// A session's recording, while it is written.
#[derive(Debug)]
pub struct Recording {
    name: String,
    path: PathBuf,
    handle: JoinHandle<Result<Finished, RecordingError>>,
}

impl Recording {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the writer to write the trailer, once the session's observer is
    /// dropped (the session's stream, which owns it, has been dropped).
    pub async fn finish(self) -> Result<Finished, RecordingError> {
        self.handle.await.unwrap_or(Err(RecordingError::WriterGone))
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses a size as people write it: bytes, or with a suffix `K`, `M`, `G`, `T`
/// (powers of 1024; `KiB`, `MB` … are read the same way); "off" and "0" are `None`.
pub fn parse_size(s: &str) -> Option<Option<u64>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") || s == "0" {
        return Some(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    let v = n.checked_mul(1u64 << shift)?;
    Some((v != 0).then_some(v))
}

#[cfg(test)]
mod tests;

//! The writer task: one per recorded session, off the relay's hot path.
//!
//! The relay's task only copies bytes into a channel ([`super::observer`]); this task
//! encodes them in the session's format, hashes and writes them. The channel is
//! bounded by bytes, not by messages: the observer counts what it queued in
//! [`Shared::queued`] and this task subtracts what it wrote, so a session whose disk
//! cannot keep up ends (the observer refuses the next bytes) instead of growing
//! without bound or dropping recorded bytes.
//!
//! Every second the task flushes what it holds and checks that the file still has a
//! name: a recording removed while the session runs (link count 0) would otherwise be
//! written into a file nobody can ever read. Any failure ends the session with a
//! reason the person can read, through the `on_fail` callback the proxy gave (it stops
//! the session even when no byte is flowing).
//!
//! When the session ends, the observer is dropped, the channel closes, and the task
//! writes the trailer (the SHA-256 of every byte before its digest), syncs the file and
//! returns the digest for the session's end log line.

use super::cast::{self, Utf8Decoder};
use super::vnc::{self, RecordType};
use super::{Failure, Finished, RecordingError, RecordingStats};
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Encoded bytes are written once this many are pending (and at least every tick).
const WRITE_CHUNK: usize = 64 << 10;
/// How often pending bytes are flushed and the file's link count checked.
const TICK: Duration = Duration::from_secs(1);

/// What the observer sends.
#[derive(Debug)]
pub(super) enum Item {
    /// Console server → browser.
    Down { at_us: u64, bytes: Vec<u8> },
    /// Browser → console server.
    Up { at_us: u64, bytes: Vec<u8> },
    /// Browser bytes withheld (the VNC authentication response).
    Redacted { at_us: u64, withheld: u32 },
}

impl Item {
    /// What the item counts against the queue's budget: its bytes and a fixed
    /// overhead, so that a flood of tiny items is bounded too.
    pub(super) fn cost(&self) -> usize {
        const OVERHEAD: usize = 64;
        OVERHEAD
            + match self {
                Item::Down { bytes, .. } | Item::Up { bytes, .. } => bytes.len(),
                Item::Redacted { .. } => 0,
            }
    }
}

/// State the observer and the writer share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Bytes queued and not yet written (see [`Item::cost`]).
    pub queued: AtomicUsize,
    /// Set once the writer has failed; the observer then refuses every call.
    pub failure: Failure,
}

/// The session's format.
pub(super) enum Encoder {
    Vnc,
    Cast {
        out: Utf8Decoder,
        input: Utf8Decoder,
    },
}

impl Encoder {
    fn item(&mut self, item: &Item, buf: &mut Vec<u8>) {
        match (self, item) {
            (Encoder::Vnc, Item::Down { at_us, bytes }) => {
                vnc::push_record(buf, RecordType::Server, *at_us, bytes)
            }
            (Encoder::Vnc, Item::Up { at_us, bytes }) => {
                vnc::push_record(buf, RecordType::Client, *at_us, bytes)
            }
            (Encoder::Vnc, Item::Redacted { at_us, withheld }) => {
                vnc::push_redaction(buf, *at_us, *withheld)
            }
            (Encoder::Cast { out, .. }, Item::Down { at_us, bytes }) => {
                push_text(buf, out, *at_us, "o", bytes)
            }
            (Encoder::Cast { input, .. }, Item::Up { at_us, bytes }) => {
                push_text(buf, input, *at_us, "i", bytes)
            }
            // A serial console has no authentication response to withhold.
            (Encoder::Cast { .. }, Item::Redacted { .. }) => {}
        }
    }

    /// Ends what is pending (an unfinished character) before the trailer.
    fn finish(&mut self, at_us: u64, buf: &mut Vec<u8>) -> u64 {
        match self {
            Encoder::Vnc => 0,
            Encoder::Cast { out, input } => {
                for (dec, code) in [(&mut *out, "o"), (&mut *input, "i")] {
                    let mut s = String::new();
                    dec.finish(&mut s);
                    if !s.is_empty() {
                        cast::push_event(buf, at_us, code, &s);
                    }
                }
                out.replaced() + input.replaced()
            }
        }
    }

    /// The trailer, whose digest covers `hasher` (the file so far) and the
    /// trailer's own start; returns the bytes to write and the digest.
    fn trailer(&self, at_us: u64, mut hasher: Sha256) -> (Vec<u8>, [u8; 32]) {
        let mut buf = match self {
            Encoder::Vnc => vnc::trailer_head(at_us).to_vec(),
            Encoder::Cast { .. } => cast::trailer_head(at_us),
        };
        hasher.update(&buf);
        let digest: [u8; 32] = hasher.finalize().into();
        match self {
            Encoder::Vnc => buf.extend_from_slice(&digest),
            Encoder::Cast { .. } => {
                buf.extend_from_slice(cast::hex(&digest).as_bytes());
                buf.extend_from_slice(cast::TRAILER_TAIL);
            }
        }
        (buf, digest)
    }
}

fn push_text(buf: &mut Vec<u8>, dec: &mut Utf8Decoder, at_us: u64, code: &str, bytes: &[u8]) {
    let mut s = String::new();
    dec.decode(bytes, &mut s);
    if !s.is_empty() {
        cast::push_event(buf, at_us, code, &s);
    }
}

/// Called once when the recording fails mid-session, with the reason the browser
/// should see; the proxy ends the session with it.
pub type OnFail = Box<dyn FnOnce(String) + Send>;

/// Everything the task needs.
pub(super) struct Task {
    pub file: tokio::fs::File,
    pub path: PathBuf,
    pub name: String,
    pub encoder: Encoder,
    /// Already holds the header, which was written before the task started.
    pub hasher: Sha256,
    pub written: u64,
    pub rx: mpsc::UnboundedReceiver<Item>,
    pub shared: Arc<Shared>,
    pub started: Instant,
    pub stats: Arc<RecordingStats>,
    pub on_fail: Option<OnFail>,
}

impl Task {
    pub async fn run(mut self) -> Result<Finished, RecordingError> {
        match self.write_all_items().await {
            Ok(()) => self.write_trailer().await,
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    async fn write_all_items(&mut self) -> Result<(), RecordingError> {
        let mut buf = Vec::with_capacity(WRITE_CHUNK);
        let mut tick = tokio::time::interval_at(Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = self.rx.recv() => {
                    let Some(item) = item else {
                        self.encoder_finish(&mut buf);
                        return self.write(&mut buf).await;
                    };
                    let cost = item.cost();
                    self.encoder.item(&item, &mut buf);
                    if buf.len() >= WRITE_CHUNK {
                        self.write(&mut buf).await?;
                    }
                    self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
                }
                _ = tick.tick() => {
                    self.write(&mut buf).await?;
                    self.file.flush().await.map_err(|e| self.io_error(e))?;
                    self.check_still_linked().await?;
                }
            }
        }
    }

    fn encoder_finish(&mut self, buf: &mut Vec<u8>) {
        let at = self.now_us();
        let replaced = self.encoder.finish(at, buf);
        if replaced > 0 {
            tracing::info!(recording = %self.name, replaced,
                "serial output that was not UTF-8 was recorded as U+FFFD");
        }
    }

    async fn write(&mut self, buf: &mut Vec<u8>) -> Result<(), RecordingError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.hasher.update(&buf[..]);
        if let Err(e) = self.file.write_all(buf).await {
            return Err(self.io_error(e));
        }
        self.written += buf.len() as u64;
        self.stats.add_bytes(buf.len() as u64);
        buf.clear();
        Ok(())
    }

    async fn check_still_linked(&mut self) -> Result<(), RecordingError> {
        let meta = self.file.metadata().await.map_err(|e| self.io_error(e))?;
        if meta.nlink() == 0 {
            return Err(RecordingError::Removed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    async fn write_trailer(mut self) -> Result<Finished, RecordingError> {
        let (buf, digest) = self.encoder.trailer(self.now_us(), self.hasher.clone());
        let result = async {
            self.file.write_all(&buf).await?;
            self.file.flush().await?;
            self.file.sync_all().await
        }
        .await;
        if let Err(e) = result {
            let e = self.io_error(e);
            self.fail(&e);
            return Err(e);
        }
        self.written += buf.len() as u64;
        self.stats.add_bytes(buf.len() as u64);
        // A file removed while the session ran gets no trailer it could be trusted by.
        if let Err(e) = self.check_still_linked().await {
            self.fail(&e);
            return Err(e);
        }
        Ok(Finished {
            name: self.name.clone(),
            path: self.path.clone(),
            sha256: cast::hex(&digest),
            bytes: self.written,
        })
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn io_error(&self, e: std::io::Error) -> RecordingError {
        RecordingError::Write {
            path: self.path.clone(),
            cause: e.to_string(),
        }
    }

    /// Marks the recording failed, counts it, logs it and ends the session.
    fn fail(&mut self, e: &RecordingError) {
        let reason = e.session_reason();
        self.shared.failure.set(reason.clone());
        self.stats.add_failed();
        tracing::warn!(recording = %self.name, cause = %e, "session recording failed; the session is ended");
        if let Some(f) = self.on_fail.take() {
            f(reason);
        }
    }
}

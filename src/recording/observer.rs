//! The recorder's side of the tap ([`crate::tap::Observer`]): runs on the relay's
//! task, between a read and the write it feeds, so it only copies bytes into the
//! writer's queue and returns.
//!
//! Three rules are enforced here, where the bytes are classified:
//! - The VNC authentication response is never queued: a redaction marker with its
//!   length goes in its place, for every security type the tap follows.
//! - With input recording off, a VNC browser's client messages pass through a
//!   [`ViewOnlyFilter`] of the recorder's own (whatever the session's `view` claim)
//!   and only what it keeps (pixel format, encodings, update requests) is queued; a
//!   message it cannot classify ends the session, since the site asked that no input
//!   be kept. Serial input is not queued at all.
//! - When the queue is over its budget, or the writer has failed, the call fails and
//!   the tap ends the session: no recorded byte is ever dropped.

use super::writer::{Item, Shared};
use crate::rfb::handshake::UpKind;
use crate::rfb::view::ViewOnlyFilter;
use crate::tap::{Observer, ObserverError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Close reason when the writer cannot keep up (at most 123 bytes).
const CANNOT_KEEP_UP: &str =
    "session recording could not keep up with the session, so it was ended";
/// Close reason when the writer is gone without a recorded failure.
const WRITER_GONE: &str = "session recording stopped, so the session was ended";
/// Close reason when input recording is off and a message cannot be classified.
const UNCLASSIFIED: &str =
    "input is not recorded and the browser sent a message the proxy cannot classify";

/// What happens to the browser's input.
pub(super) enum Input {
    /// Queued as it is.
    Record,
    /// VNC: only non-input client messages are queued.
    VncFiltered(ViewOnlyFilter),
    /// Serial: nothing is queued.
    Drop,
}

/// The recorder one tapped session calls.
pub struct RecordingObserver {
    pub(super) tx: mpsc::UnboundedSender<Item>,
    pub(super) shared: Arc<Shared>,
    /// Most bytes queued at once.
    pub(super) budget: usize,
    pub(super) started: Instant,
    pub(super) input: Input,
    /// Reused for the filter's output.
    pub(super) scratch: Vec<u8>,
}

impl RecordingObserver {
    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn send(&self, item: Item) -> Result<(), ObserverError> {
        if let Some(reason) = self.shared.failure.get() {
            return Err(ObserverError(reason));
        }
        let cost = item.cost();
        let before = self.shared.queued.fetch_add(cost, Ordering::AcqRel);
        if before + cost > self.budget {
            self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
            self.shared.failure.set(CANNOT_KEEP_UP.to_string());
            tracing::warn!(
                queued = before,
                budget = self.budget,
                "session recording cannot keep up; the session is ended"
            );
            return Err(ObserverError(CANNOT_KEEP_UP.into()));
        }
        self.tx.send(item).map_err(|_| {
            ObserverError(
                self.shared
                    .failure
                    .get()
                    .unwrap_or_else(|| WRITER_GONE.to_string()),
            )
        })
    }
}

impl Observer for RecordingObserver {
    fn down(&mut self, bytes: &[u8]) -> Result<(), ObserverError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let at_us = self.now_us();
        self.send(Item::Down {
            at_us,
            bytes: bytes.to_vec(),
        })
    }

    fn up(&mut self, kind: UpKind, bytes: &[u8]) -> Result<(), ObserverError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let at_us = self.now_us();
        match kind {
            UpKind::AuthResponse => {
                let withheld = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                self.send(Item::Redacted { at_us, withheld })
            }
            UpKind::Handshake | UpKind::ClientInit => self.send(Item::Up {
                at_us,
                bytes: bytes.to_vec(),
            }),
            UpKind::Messages => match &mut self.input {
                Input::Record => self.send(Item::Up {
                    at_us,
                    bytes: bytes.to_vec(),
                }),
                Input::Drop => Ok(()),
                Input::VncFiltered(filter) => {
                    self.scratch.clear();
                    if let Err(e) = filter.push(bytes, &mut self.scratch) {
                        tracing::warn!(cause = %e, "input recording is off and a client message cannot be classified; the session is ended");
                        return Err(ObserverError(UNCLASSIFIED.into()));
                    }
                    if self.scratch.is_empty() {
                        return Ok(());
                    }
                    let kept = std::mem::take(&mut self.scratch);
                    self.send(Item::Up { at_us, bytes: kept })
                }
            },
        }
    }
}

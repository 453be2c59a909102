//! The view-only filter: which RFB client messages (RFC 6143 §7.5 and the common
//! extensions) a browser holding a `view` ticket may send to the console server.
//!
//! Forwarded, because a viewer needs them and none can change the VM:
//! SetPixelFormat, SetEncodings, FramebufferUpdateRequest, EnableContinuousUpdates,
//! Fence, and QEMU's audio control (enable, disable, set format).
//!
//! Dropped, because each reaches the guest: KeyEvent, PointerEvent (also in its
//! ExtendedMouseButtons form), ClientCutText (also in its extended-clipboard form),
//! QEMU's extended key event, SetDesktopSize (it resizes the guest) and XVP
//! (shutdown, reboot, reset).
//!
//! One length depends on what was negotiated: a PointerEvent with the marker bit
//! (0x80) of its button mask set is 7 bytes instead of 6 once the browser has asked
//! for the ExtendedMouseButtons pseudo-encoding (-316) in its SetEncodings, as noVNC
//! does from 1.6 on. The filter follows the browser's latest SetEncodings for that.
//! Whatever the filter's view of a dropped message's length, what it writes out is
//! only ever whole allowed messages, which the console server frames as the filter
//! does: a browser that lies about a length can at worst confuse its own session.
//!
//! Anything else, or a message whose lengths make no sense, is an error: the session
//! ends rather than forward bytes the proxy does not understand (fail closed). The
//! filter reads hostile input, so every length is bounded before it is trusted, and
//! only whole allowed messages are ever written out: a message split across reads
//! is held (at most [`MAX_HELD`] bytes) until it is complete, and the bytes of a
//! dropped message are skipped as they arrive, however long it claims to be.
//!
//! Pure: no I/O. Feed it the client-message part of the browser's stream (after
//! ClientInit, see [`super::handshake`]).

/// Message types (RFC 6143 §7.5 and the RFB community registry).
mod msg {
    pub const SET_PIXEL_FORMAT: u8 = 0;
    pub const SET_ENCODINGS: u8 = 2;
    pub const FRAMEBUFFER_UPDATE_REQUEST: u8 = 3;
    pub const KEY_EVENT: u8 = 4;
    pub const POINTER_EVENT: u8 = 5;
    pub const CLIENT_CUT_TEXT: u8 = 6;
    pub const ENABLE_CONTINUOUS_UPDATES: u8 = 150;
    pub const FENCE: u8 = 248;
    pub const XVP: u8 = 250;
    pub const SET_DESKTOP_SIZE: u8 = 251;
    pub const QEMU: u8 = 255;
    /// QEMU client message subtypes.
    pub const QEMU_EXTENDED_KEY: u8 = 0;
    pub const QEMU_AUDIO: u8 = 1;
    /// The ExtendedMouseButtons pseudo-encoding (RFB community registry).
    pub const ENCODING_EXTENDED_MOUSE_BUTTONS: i32 = -316;
    /// The PointerEvent button-mask bit that marks the extended form.
    pub const POINTER_MARKER: u8 = 0x80;
}

/// Most encodings a SetEncodings may list. The protocol allows 65,535; real viewers
/// send a few dozen (noVNC about 30). A list this long is not a viewer.
pub const MAX_ENCODINGS: u16 = 1024;
/// Largest message ever held while incomplete: a SetEncodings of `MAX_ENCODINGS`.
pub const MAX_HELD: usize = 4 + 4 * MAX_ENCODINGS as usize;
/// Longest clipboard text skipped: beyond this a length is not a clipboard but an
/// attempt to make the filter swallow the rest of the stream.
pub const MAX_CUT_TEXT: u32 = 16 << 20;
/// Fence payloads are at most 64 bytes (RFB community registry, "Fence").
const MAX_FENCE_PAYLOAD: u8 = 64;

/// Why the session must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("view only: the browser sent RFB message type {0}, unknown to the proxy, so the session is ended rather than forward it")]
    UnknownMessage(u8),
    #[error("view only: the browser sent QEMU message subtype {0}, which the proxy does not know")]
    UnknownQemuMessage(u8),
    #[error("view only: the browser sent QEMU audio operation {0}, which the proxy does not know")]
    UnknownAudioOperation(u16),
    #[error("view only: the browser's SetEncodings lists {0} encodings (at most {max})", max = MAX_ENCODINGS)]
    TooManyEncodings(u16),
    #[error("view only: the browser's clipboard message claims {0} bytes (at most {max})", max = MAX_CUT_TEXT)]
    CutTextTooLong(u32),
    #[error("view only: the browser's Fence message claims a {0}-byte payload (at most 64)")]
    FenceTooLong(u8),
}

/// What was dropped, by kind, for the session's end log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub keys: u64,
    pub pointer: u64,
    pub clipboard: u64,
    /// SetDesktopSize and XVP.
    pub control: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.keys + self.pointer + self.clipboard + self.control
    }
}

/// The verdict on one message, once its header is known.
enum Verdict {
    /// Forward all `len` bytes.
    Forward(usize),
    /// Drop all `len` bytes (u64: a clipboard message may be long).
    Drop(u64, fn(&mut Dropped)),
}

/// Filters one browser's client messages.
#[derive(Debug, Default)]
pub struct ViewOnlyFilter {
    /// The message being read: its header until the verdict is known, then, for a
    /// forwarded message, the rest of it until complete. Never more than `MAX_HELD`.
    held: Vec<u8>,
    /// Length of the forwarded message in `held`, once known.
    forward_len: Option<usize>,
    /// Bytes still to skip of a dropped message.
    skip: u64,
    dropped: Dropped,
    /// The browser's latest SetEncodings asked for ExtendedMouseButtons: a
    /// PointerEvent with the marker bit is then 7 bytes.
    extended_pointer: bool,
}

impl ViewOnlyFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// True when no message is half read (the stream is at a message boundary).
    pub fn at_boundary(&self) -> bool {
        self.held.is_empty() && self.skip == 0
    }

    /// Takes all of `input`, appends every complete allowed message to `out`, and
    /// keeps a message that is not complete yet for the next call.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), ViewError> {
        while !input.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                self.skip -= n as u64;
                input = &input[n..];
                continue;
            }
            if let Some(len) = self.forward_len {
                let n = (len - self.held.len()).min(input.len());
                self.held.extend_from_slice(&input[..n]);
                input = &input[n..];
                if self.held.len() == len {
                    self.note_forwarded_held();
                    out.extend_from_slice(&self.held);
                    self.held.clear();
                    self.forward_len = None;
                }
                continue;
            }
            // A message starts or its header is incomplete: decide as soon as the
            // header says enough, taking one byte at a time only while it does not
            // (headers are at most 9 bytes, so this is cheap).
            if self.held.is_empty() {
                // Fast path: the run of whole fixed-size messages at the start of
                // `input`, then one message of any type when it is whole.
                input = &input[self.scan(input, out)..];
                if input.is_empty() {
                    break;
                }
                if let Some(verdict) = verdict(input, self.extended_pointer)? {
                    input = self.apply(verdict, input, out);
                    continue;
                }
            }
            self.held.push(input[0]);
            input = &input[1..];
            match verdict(&self.held, self.extended_pointer)? {
                None => {}
                Some(Verdict::Forward(len)) if self.held.len() == len => {
                    self.note_forwarded_held();
                    out.extend_from_slice(&self.held);
                    self.held.clear();
                }
                Some(Verdict::Forward(len)) => self.forward_len = Some(len),
                Some(Verdict::Drop(len, count)) => {
                    count(&mut self.dropped);
                    self.skip = len - self.held.len() as u64;
                    self.held.clear();
                }
            }
        }
        Ok(())
    }

    /// Takes the whole messages of the common fixed-size types (update requests, keys,
    /// pointer, pixel format…) at the start of `input`, forwarding runs of allowed ones
    /// with one copy each, and returns how many bytes it took. Stops at the first
    /// message of another type or that is not whole, which the general path then
    /// takes: this is the same decision as [`verdict`], without its generality, for the
    /// messages a busy browser sends many of.
    #[inline]
    fn scan(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        use msg::*;
        let n = input.len();
        let mut i = 0;
        // Start of the run of forwarded messages not yet copied out.
        let mut run = 0;
        // What is forwarded is at most what came in: one allocation at most.
        out.reserve(n);
        let (mut keys, mut pointer, mut control) = (0, 0, 0);
        while let Some(&t) = input.get(i) {
            // (length, forwarded)
            let (len, forward) = match t {
                FRAMEBUFFER_UPDATE_REQUEST | ENABLE_CONTINUOUS_UPDATES => (10, true),
                KEY_EVENT => (8, false),
                POINTER_EVENT => match input.get(i + 1) {
                    Some(mask) if self.extended_pointer && mask & POINTER_MARKER != 0 => (7, false),
                    Some(_) => (6, false),
                    None => break,
                },
                SET_PIXEL_FORMAT => (20, true),
                XVP => (4, false),
                _ => break,
            };
            if i + len > n {
                break;
            }
            if !forward {
                if run < i {
                    out.extend_from_slice(&input[run..i]);
                }
                match t {
                    KEY_EVENT => keys += 1,
                    POINTER_EVENT => pointer += 1,
                    _ => control += 1,
                }
                run = i + len;
            }
            i += len;
        }
        if run < i {
            out.extend_from_slice(&input[run..i]);
        }
        self.dropped.keys += keys;
        self.dropped.pointer += pointer;
        self.dropped.control += control;
        i
    }

    /// Applies a verdict to a message that starts at `input[0]`, with nothing held.
    fn apply<'a>(&mut self, verdict: Verdict, input: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
        match verdict {
            Verdict::Forward(len) if len <= input.len() => {
                self.note_forwarded(&input[..len]);
                out.extend_from_slice(&input[..len]);
                &input[len..]
            }
            Verdict::Forward(len) => {
                self.held.extend_from_slice(input);
                self.forward_len = Some(len);
                &[]
            }
            Verdict::Drop(len, count) => {
                count(&mut self.dropped);
                let n = usize::try_from(len).unwrap_or(usize::MAX).min(input.len());
                self.skip = len - n as u64;
                &input[n..]
            }
        }
    }
}

impl ViewOnlyFilter {
    /// Follows what a whole forwarded message negotiates: a SetEncodings replaces the
    /// browser's encodings, and with them whether it uses ExtendedMouseButtons.
    fn note_forwarded(&mut self, m: &[u8]) {
        if m.first() == Some(&msg::SET_ENCODINGS) {
            self.extended_pointer = m.get(4..).is_some_and(|list| {
                list.chunks_exact(4).any(|e| {
                    i32::from_be_bytes([e[0], e[1], e[2], e[3]])
                        == msg::ENCODING_EXTENDED_MOUSE_BUTTONS
                })
            });
        }
    }

    fn note_forwarded_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.note_forwarded(&held);
        self.held = held;
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The verdict on the message starting at `h[0]`, or `None` while `h` is too short
/// to tell. Only reads the header; `h` may hold more than one message.
/// `extended_pointer`: the browser asked for ExtendedMouseButtons.
fn verdict(h: &[u8], extended_pointer: bool) -> Result<Option<Verdict>, ViewError> {
    use msg::*;
    let Some(&t) = h.first() else {
        return Ok(None);
    };
    let keys: fn(&mut Dropped) = |d| d.keys += 1;
    let pointer: fn(&mut Dropped) = |d| d.pointer += 1;
    let clipboard: fn(&mut Dropped) = |d| d.clipboard += 1;
    let control: fn(&mut Dropped) = |d| d.control += 1;
    let v = match t {
        SET_PIXEL_FORMAT => Verdict::Forward(20),
        FRAMEBUFFER_UPDATE_REQUEST | ENABLE_CONTINUOUS_UPDATES => Verdict::Forward(10),
        SET_ENCODINGS => {
            if h.len() < 4 {
                return Ok(None);
            }
            let n = be16(&h[2..4]);
            if n > MAX_ENCODINGS {
                return Err(ViewError::TooManyEncodings(n));
            }
            Verdict::Forward(4 + 4 * usize::from(n))
        }
        FENCE => {
            if h.len() < 9 {
                return Ok(None);
            }
            if h[8] > MAX_FENCE_PAYLOAD {
                return Err(ViewError::FenceTooLong(h[8]));
            }
            Verdict::Forward(9 + usize::from(h[8]))
        }
        KEY_EVENT => Verdict::Drop(8, keys),
        POINTER_EVENT if !extended_pointer => Verdict::Drop(6, pointer),
        POINTER_EVENT => {
            if h.len() < 2 {
                return Ok(None);
            }
            // The extended form carries one more byte of buttons.
            let len = if h[1] & POINTER_MARKER != 0 { 7 } else { 6 };
            Verdict::Drop(len, pointer)
        }
        CLIENT_CUT_TEXT => {
            if h.len() < 8 {
                return Ok(None);
            }
            // A negative length is the extended clipboard's: its size is the
            // absolute value (RFB community registry, "Extended Clipboard").
            let len = i32::from_be_bytes([h[4], h[5], h[6], h[7]]).unsigned_abs();
            if len > MAX_CUT_TEXT {
                return Err(ViewError::CutTextTooLong(len));
            }
            Verdict::Drop(8 + u64::from(len), clipboard)
        }
        XVP => Verdict::Drop(4, control),
        SET_DESKTOP_SIZE => {
            if h.len() < 8 {
                return Ok(None);
            }
            Verdict::Drop(8 + 16 * u64::from(h[6]), control)
        }
        QEMU => {
            if h.len() < 2 {
                return Ok(None);
            }
            match h[1] {
                QEMU_EXTENDED_KEY => Verdict::Drop(12, keys),
                QEMU_AUDIO => {
                    if h.len() < 4 {
                        return Ok(None);
                    }
                    match be16(&h[2..4]) {
                        // Enable, disable.
                        0 | 1 => Verdict::Forward(4),
                        // Set format: sample format, channels, frequency.
                        2 => Verdict::Forward(10),
                        op => return Err(ViewError::UnknownAudioOperation(op)),
                    }
                }
                sub => return Err(ViewError::UnknownQemuMessage(sub)),
            }
        }
        other => return Err(ViewError::UnknownMessage(other)),
    };
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_pixel_format() -> Vec<u8> {
        let mut m = vec![0, 0, 0, 0];
        m.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        m
    }
    fn set_encodings(n: u16) -> Vec<u8> {
        let mut m = vec![2, 0];
        m.extend_from_slice(&n.to_be_bytes());
        for i in 0..n {
            m.extend_from_slice(&(i32::from(i) - 300).to_be_bytes());
        }
        m
    }
    fn fbur() -> Vec<u8> {
        vec![3, 1, 0, 0, 0, 0, 3, 32, 2, 88]
    }
    fn key(k: u8) -> Vec<u8> {
        vec![4, 1, 0, 0, 0, 0, 0, k]
    }
    fn pointer() -> Vec<u8> {
        vec![5, 1, 0, 10, 0, 20]
    }
    fn cut_text(text: &[u8]) -> Vec<u8> {
        let mut m = vec![6, 0, 0, 0];
        m.extend_from_slice(&(text.len() as u32).to_be_bytes());
        m.extend_from_slice(text);
        m
    }
    fn extended_clipboard(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![6, 0, 0, 0];
        m.extend_from_slice(&(-(payload.len() as i32)).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }
    fn continuous_updates() -> Vec<u8> {
        vec![150, 1, 0, 0, 0, 0, 3, 32, 2, 88]
    }
    fn fence(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![248, 0, 0, 0, 0x80, 0, 0, 3, payload.len() as u8];
        m.extend_from_slice(payload);
        m
    }
    fn xvp(op: u8) -> Vec<u8> {
        vec![250, 0, 1, op]
    }
    fn set_desktop_size(screens: u8) -> Vec<u8> {
        let mut m = vec![251, 0, 4, 0, 3, 0, screens, 0];
        m.extend(std::iter::repeat(7).take(16 * usize::from(screens)));
        m
    }
    fn qemu_key() -> Vec<u8> {
        vec![255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30]
    }
    fn qemu_audio(op: u16) -> Vec<u8> {
        let mut m = vec![255, 1];
        m.extend_from_slice(&op.to_be_bytes());
        if op == 2 {
            m.extend_from_slice(&[3, 2, 0, 0, 0xAC, 0x44]);
        }
        m
    }

    /// Every allowed message, with the input messages interleaved.
    fn session() -> (Vec<u8>, Vec<u8>) {
        let allowed = [
            set_pixel_format(),
            set_encodings(31),
            fbur(),
            continuous_updates(),
            fence(b"abc"),
            fence(b""),
            qemu_audio(0),
            qemu_audio(2),
            qemu_audio(1),
        ];
        let dropped = [
            key(b'a'),
            pointer(),
            cut_text(b"rm -rf /"),
            extended_clipboard(&[0x10, 0, 0, 1, 9, 9]),
            xvp(2),
            set_desktop_size(2),
            qemu_key(),
            cut_text(&[b'x'; 70_000]),
            set_desktop_size(0),
        ];
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (a, d) in allowed.iter().zip(dropped.iter()) {
            input.extend_from_slice(d);
            input.extend_from_slice(a);
            expected.extend_from_slice(a);
        }
        (input, expected)
    }

    fn run(input: &[u8], step: usize) -> (Vec<u8>, ViewOnlyFilter) {
        let mut f = ViewOnlyFilter::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            f.push(chunk, &mut out).unwrap();
        }
        (out, f)
    }

    #[test]
    fn only_the_messages_a_viewer_needs_pass_whole_and_in_order() {
        let (input, expected) = session();
        for step in [1, 2, 3, 5, 7, 8, 9, 13, 64, 4096, input.len()] {
            let (out, f) = run(&input, step);
            assert_eq!(out, expected, "step {step}");
            assert!(f.at_boundary());
            assert_eq!(
                f.dropped(),
                Dropped {
                    keys: 2,
                    pointer: 1,
                    clipboard: 3,
                    control: 3
                },
                "step {step}"
            );
        }
    }

    #[test]
    fn a_split_allowed_message_is_held_until_complete() {
        let mut f = ViewOnlyFilter::new();
        let mut out = Vec::new();
        let m = set_encodings(3);
        f.push(&m[..3], &mut out).unwrap();
        f.push(&m[3..9], &mut out).unwrap();
        assert!(out.is_empty());
        assert!(!f.at_boundary());
        f.push(&m[9..], &mut out).unwrap();
        assert_eq!(out, m);
    }

    #[test]
    fn every_input_message_alone_is_dropped() {
        for m in [
            key(1),
            pointer(),
            cut_text(b"x"),
            extended_clipboard(b"x"),
            xvp(4),
            set_desktop_size(1),
            qemu_key(),
        ] {
            for step in [1, m.len()] {
                let (out, f) = run(&m, step);
                assert!(out.is_empty(), "{m:?}");
                assert_eq!(f.dropped().total(), 1);
                assert!(f.at_boundary());
            }
        }
    }

    #[test]
    fn unknown_or_malformed_messages_end_the_session() {
        let cases: Vec<(Vec<u8>, ViewError)> = vec![
            (vec![1, 0, 0, 0], ViewError::UnknownMessage(1)),
            (vec![252, 0], ViewError::UnknownMessage(252)),
            (vec![127], ViewError::UnknownMessage(127)),
            (vec![255, 9, 0, 0], ViewError::UnknownQemuMessage(9)),
            (vec![255, 1, 0, 3], ViewError::UnknownAudioOperation(3)),
            (vec![2, 0, 0x04, 0x01], ViewError::TooManyEncodings(1025)),
            (
                vec![6, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF],
                ViewError::CutTextTooLong(0x7FFF_FFFF),
            ),
            (
                vec![6, 0, 0, 0, 0x80, 0, 0, 0],
                ViewError::CutTextTooLong(0x8000_0000),
            ),
            (
                vec![248, 0, 0, 0, 0, 0, 0, 0, 65],
                ViewError::FenceTooLong(65),
            ),
        ];
        for (bytes, err) in cases {
            for step in [1, bytes.len()] {
                let mut f = ViewOnlyFilter::new();
                let mut out = Vec::new();
                let mut result = Ok(());
                for chunk in bytes.chunks(step) {
                    result = f.push(chunk, &mut out);
                    if result.is_err() {
                        break;
                    }
                }
                assert_eq!(result, Err(err.clone()), "{bytes:?} step {step}");
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn every_reason_fits_a_close_frame_whole() {
        for e in [
            ViewError::UnknownMessage(u8::MAX),
            ViewError::UnknownQemuMessage(u8::MAX),
            ViewError::UnknownAudioOperation(u16::MAX),
            ViewError::TooManyEncodings(u16::MAX),
            ViewError::CutTextTooLong(u32::MAX),
            ViewError::FenceTooLong(u8::MAX),
        ] {
            let reason = e.to_string();
            assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
            assert!(reason.starts_with("view only: "), "{reason}");
        }
    }

    #[test]
    fn what_was_forwarded_before_a_bad_message_stays_forwarded() {
        let mut input = fbur();
        input.push(99);
        let mut f = ViewOnlyFilter::new();
        let mut out = Vec::new();
        assert_eq!(f.push(&input, &mut out), Err(ViewError::UnknownMessage(99)));
        assert_eq!(out, fbur());
    }

    #[test]
    fn a_long_clipboard_is_skipped_without_holding_it() {
        let m = cut_text(&[b'y'; 1 << 20]);
        let mut f = ViewOnlyFilter::new();
        let mut out = Vec::new();
        for chunk in m.chunks(1000) {
            f.push(chunk, &mut out).unwrap();
            assert!(f.held.capacity() <= MAX_HELD);
        }
        assert!(out.is_empty());
        assert!(f.at_boundary());
    }

    fn set_encodings_list(list: &[i32]) -> Vec<u8> {
        let mut m = vec![2, 0];
        m.extend_from_slice(&(list.len() as u16).to_be_bytes());
        for e in list {
            m.extend_from_slice(&e.to_be_bytes());
        }
        m
    }
    /// noVNC's extended PointerEvent: marker bit set, one more byte of buttons.
    fn extended_pointer(high: u8) -> Vec<u8> {
        vec![5, 0x80 | 1, 0, 10, 0, 20, high]
    }

    /// Every allowed message type, each on its own, at its size limits too.
    fn every_allowed_message() -> Vec<Vec<u8>> {
        vec![
            set_pixel_format(),
            set_encodings(0),
            set_encodings(1),
            set_encodings(MAX_ENCODINGS),
            fbur(),
            continuous_updates(),
            fence(b""),
            fence(&[0xEE; 64]),
            qemu_audio(0),
            qemu_audio(1),
            qemu_audio(2),
        ]
    }

    /// Every input message type, each on its own, at its size limits too.
    fn every_input_message() -> Vec<Vec<u8>> {
        vec![
            key(1),
            pointer(),
            cut_text(b""),
            cut_text(b"x"),
            cut_text(&vec![b'z'; MAX_CUT_TEXT as usize]),
            extended_clipboard(b""),
            extended_clipboard(b"x"),
            xvp(2),
            xvp(3),
            xvp(4),
            set_desktop_size(0),
            set_desktop_size(1),
            set_desktop_size(255),
            qemu_key(),
        ]
    }

    #[test]
    fn every_allowed_message_alone_passes_whole_however_it_is_split() {
        for m in every_allowed_message() {
            for step in [1, 2, 3, 4, 8, 9, m.len()] {
                let (out, f) = run(&m, step);
                assert_eq!(out, m, "type {} step {step}", m[0]);
                assert_eq!(f.dropped().total(), 0);
                assert!(f.at_boundary());
            }
        }
    }

    #[test]
    fn every_input_message_at_its_limits_is_dropped_and_the_next_message_still_passes() {
        for m in every_input_message() {
            let mut input = m.clone();
            input.extend_from_slice(&fbur());
            for step in [1, 7, 4096, input.len()] {
                if step == 1 && input.len() > 100_000 {
                    continue;
                }
                let (out, f) = run(&input, step);
                assert_eq!(out, fbur(), "type {} step {step}", m[0]);
                assert_eq!(f.dropped().total(), 1);
                assert!(f.at_boundary());
            }
        }
    }

    /// A small session (no long clipboard), cut into two reads at every byte, and into
    /// many reads of varying sizes.
    #[test]
    fn the_answer_does_not_depend_on_where_reads_split_or_coalesce() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (a, d) in every_allowed_message()
            .into_iter()
            .filter(|m| m.len() < 100)
            .zip(
                every_input_message()
                    .into_iter()
                    .filter(|m| m.len() < 100)
                    .cycle(),
            )
        {
            input.extend_from_slice(&d);
            input.extend_from_slice(&a);
            expected.extend_from_slice(&a);
        }
        for cut in 0..=input.len() {
            let mut f = ViewOnlyFilter::new();
            let mut out = Vec::new();
            f.push(&input[..cut], &mut out).unwrap();
            f.push(&input[cut..], &mut out).unwrap();
            assert_eq!(out, expected, "cut at {cut}");
            assert!(f.at_boundary());
        }
        // Reads of 1 to 17 bytes, in a fixed pseudo-random order.
        let mut seed = 0x2545_F491u32;
        let mut f = ViewOnlyFilter::new();
        let mut out = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let n = (1 + seed as usize % 17).min(rest.len());
            f.push(&rest[..n], &mut out).unwrap();
            rest = &rest[n..];
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn extended_pointer_events_are_seven_bytes_once_the_browser_asks_for_them() {
        let with = set_encodings_list(&[7, -223, -316, -258]);
        let without = set_encodings_list(&[7, -223]);
        let mut input = Vec::new();
        let mut expected = Vec::new();
        // Before any SetEncodings: the classic 6-byte form, marker bit or not.
        input.extend_from_slice(&pointer());
        input.extend_from_slice(&fbur());
        expected.extend_from_slice(&fbur());
        // Asked for: extended events (7 bytes, the last byte not a message of its
        // own, even when it looks like SetPixelFormat) and plain ones (6 bytes).
        input.extend_from_slice(&with);
        expected.extend_from_slice(&with);
        input.extend_from_slice(&extended_pointer(0));
        input.extend_from_slice(&extended_pointer(3));
        input.extend_from_slice(&pointer());
        input.extend_from_slice(&fbur());
        expected.extend_from_slice(&fbur());
        // A later SetEncodings without it: back to 6 bytes.
        input.extend_from_slice(&without);
        expected.extend_from_slice(&without);
        input.extend_from_slice(&[5, 0x80, 0, 1, 0, 1]);
        input.extend_from_slice(&fbur());
        expected.extend_from_slice(&fbur());
        for step in [1, 2, 5, 6, 7, 11, input.len()] {
            let (out, f) = run(&input, step);
            assert_eq!(out, expected, "step {step}");
            assert_eq!(f.dropped().pointer, 5, "step {step}");
            assert!(f.at_boundary());
        }
    }

    #[test]
    fn the_output_of_the_filter_passes_the_filter_unchanged() {
        let (input, _) = session();
        let (out, _) = run(&input, 11);
        let (again, f) = run(&out, 3);
        assert_eq!(again, out);
        assert_eq!(f.dropped().total(), 0);
    }
}

//! RFC 6455 framing for the server side, without I/O.
//!
//! Server frames are never masked, so a header is at most [`MAX_HEADER`] bytes and can be
//! written into the bytes in front of a payload that was read at that offset: the relay
//! then sends header and payload with one write and no copy. Client frames are parsed
//! in place: payload bytes are unmasked a machine word at a time inside the read buffer
//! and handed back as ranges of it, so the up direction does not copy either.

use thiserror::Error;

/// Longest unmasked (server) frame header: 2 bytes + 8-byte extended length.
pub(super) const MAX_HEADER: usize = 10;
/// Longest masked (client) frame header: 2 + 8 + 4-byte mask key.
const MAX_CLIENT_HEADER: usize = 14;
/// RFC 6455 §5.5: control frame payloads are at most 125 bytes.
pub(super) const MAX_CONTROL: usize = 125;
/// A close payload is a 2-byte code and a reason: the reason gets what is left.
pub(super) const MAX_CLOSE_REASON: usize = MAX_CONTROL - 2;

pub(super) const OP_CONT: u8 = 0x0;
pub(super) const OP_TEXT: u8 = 0x1;
pub(super) const OP_BINARY: u8 = 0x2;
pub(super) const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xA;

/// Why a client frame was refused. One variant per rule, so tests and logs can say which.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum FrameError {
    #[error("text frames are not supported")]
    Text,
    #[error("message larger than {limit} bytes")]
    TooBig { limit: usize },
    #[error("client frame is not masked")]
    Unmasked,
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    #[error("payload length has the most significant bit set")]
    LengthOverflow,
    #[error("close frame with a 1-byte payload")]
    ShortClose,
    #[error("close code {0} may not be sent")]
    BadCloseCode(u16),
    #[error("close reason is not UTF-8")]
    CloseReasonNotUtf8,
}

/// Writes a FIN frame header for `opcode` and `len` payload bytes so that it ends exactly
/// at `payload_start`, and returns where the frame starts. `payload_start` must be at
/// least [`MAX_HEADER`] (the callers reserve that much room in front of their payloads).
pub(super) fn put_header(buf: &mut [u8], payload_start: usize, opcode: u8, len: usize) -> usize {
    let first = 0x80 | opcode;
    let (start, ext) = if len < 126 {
        (payload_start - 2, 0)
    } else if len <= usize::from(u16::MAX) {
        (payload_start - 4, 2)
    } else {
        (payload_start - 10, 8)
    };
    buf[start] = first;
    match ext {
        0 => buf[start + 1] = len as u8,
        2 => {
            buf[start + 1] = 126;
            buf[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            buf[start + 1] = 127;
            buf[start + 2..start + 10].copy_from_slice(&(len as u64).to_be_bytes());
        }
    }
    start
}

/// XORs `data` with the mask `key`, where `data[0]` is payload byte number `offset` of
/// its frame. Works on `u64` words: the 4-byte key repeated twice lines up with every
/// 8-byte chunk because 8 is a multiple of 4, and byte order does not matter for XOR as
/// long as data and key use the same one.
pub(super) fn unmask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let r = offset % 4;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(super) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Codes an endpoint may put on the wire (RFC 6455 §7.4, IANA registry); 1005, 1006 and
/// 1015 are for reporting only.
pub(super) fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A control frame ready to send: header + payload, at most 2 + 125 bytes, kept inline
/// so that pongs, pings and closes never allocate.
#[derive(Clone)]
pub(super) struct ControlFrame {
    bytes: [u8; 2 + MAX_CONTROL],
    len: u8,
}

impl ControlFrame {
    pub(super) fn new(opcode: u8, payload: &[u8]) -> Self {
        let n = payload.len().min(MAX_CONTROL);
        let mut bytes = [0u8; 2 + MAX_CONTROL];
        bytes[0] = 0x80 | opcode;
        bytes[1] = n as u8;
        bytes[2..2 + n].copy_from_slice(&payload[..n]);
        ControlFrame {
            bytes,
            len: (2 + n) as u8,
        }
    }

    /// A close frame; an unsendable code becomes 1011 so that 1005/1006/1015 never leave.
    pub(super) fn close(code: u16, reason: &str) -> Self {
        let code = if sendable_close_code(code) {
            code
        } else {
            1011
        };
        let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
        let mut payload = [0u8; MAX_CONTROL];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        Self::new(OP_CLOSE, &payload[..2 + reason.len()])
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What the parser found at the front of its input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Item {
    /// Not enough bytes for the next header; read more.
    NeedMore,
    /// A header was consumed.
    Header { used: usize },
    /// `input[..len]` is data payload, now unmasked in place.
    Data { len: usize },
    /// Control payload bytes were consumed into the parser; the frame is not complete.
    ControlPart { used: usize },
    /// A complete ping; its payload is [`Parser::control_payload`].
    Ping { used: usize },
    /// A complete pong.
    Pong { used: usize },
    /// A complete close frame, checked.
    Close {
        used: usize,
        code: Option<u16>,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Data {
        remaining: u64,
        key: [u8; 4],
        offset: usize,
    },
    Control {
        opcode: u8,
        remaining: usize,
        key: [u8; 4],
    },
}

/// Incremental parser of client frames. Holds only the current frame's state, the
/// running message size and a control payload (≤ 125 bytes), never the data itself.
pub(super) struct Parser {
    state: State,
    /// Inside a fragmented binary message (the last data frame had FIN clear).
    in_message: bool,
    /// Bytes of the current message so far, including the frame being read.
    message_size: u64,
    max_message: u64,
    control: [u8; MAX_CONTROL],
    control_len: u8,
}

impl Parser {
    pub(super) fn new(max_message: usize) -> Self {
        Parser {
            state: State::Header,
            in_message: false,
            message_size: 0,
            max_message: max_message as u64,
            control: [0; MAX_CONTROL],
            control_len: 0,
        }
    }

    /// Payload of the last complete ping.
    pub(super) fn control_payload(&self) -> &[u8] {
        &self.control[..usize::from(self.control_len)]
    }

    /// Parses one step at the front of `input`. Never panics on any input.
    pub(super) fn next(&mut self, input: &mut [u8]) -> Result<Item, FrameError> {
        match self.state {
            State::Header => self.header(input),
            State::Data {
                remaining,
                key,
                offset,
            } => {
                if input.is_empty() {
                    return Ok(Item::NeedMore);
                }
                let len = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                unmask(&mut input[..len], key, offset);
                let remaining = remaining - len as u64;
                self.state = if remaining == 0 {
                    State::Header
                } else {
                    State::Data {
                        remaining,
                        key,
                        offset: (offset + len) % 4,
                    }
                };
                Ok(Item::Data { len })
            }
            State::Control {
                opcode,
                remaining,
                key,
            } => {
                let n = remaining.min(input.len());
                if n == 0 && remaining > 0 {
                    return Ok(Item::NeedMore);
                }
                let have = usize::from(self.control_len);
                let dst = &mut self.control[have..have + n];
                dst.copy_from_slice(&input[..n]);
                unmask(dst, key, have);
                self.control_len += n as u8;
                if remaining > n {
                    self.state = State::Control {
                        opcode,
                        remaining: remaining - n,
                        key,
                    };
                    return Ok(Item::ControlPart { used: n });
                }
                self.state = State::Header;
                self.finish_control(opcode, n)
            }
        }
    }

    fn header(&mut self, input: &[u8]) -> Result<Item, FrameError> {
        let (b0, b1) = match input {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(Item::NeedMore),
        };
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        if b0 & 0x70 != 0 {
            return Err(FrameError::ReservedBits);
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let used = 2 + ext + 4;
        let Some(h) = input.get(..used) else {
            debug_assert!(used <= MAX_CLIENT_HEADER);
            return Ok(Item::NeedMore);
        };
        // Lenient about non-minimal length encodings: RFC 6455 asks senders for the
        // minimal form but nothing breaks if a client uses a longer one.
        let len: u64 = match ext {
            0 => u64::from(b1 & 0x7F),
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            _ => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        };
        if len >> 63 != 0 {
            return Err(FrameError::LengthOverflow);
        }
        let key = [h[used - 4], h[used - 3], h[used - 2], h[used - 1]];
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin {
                    return Err(FrameError::FragmentedControl);
                }
                if len > MAX_CONTROL as u64 {
                    return Err(FrameError::ControlTooLong);
                }
                self.control_len = 0;
                if len == 0 {
                    // Complete now: no payload bytes will come to finish it later.
                    return self.finish_control(opcode, used);
                }
                self.state = State::Control {
                    opcode,
                    remaining: len as usize,
                    key,
                };
                Ok(Item::Header { used })
            }
            OP_TEXT => Err(FrameError::Text),
            OP_BINARY | OP_CONT => {
                if opcode == OP_BINARY {
                    if self.in_message {
                        return Err(FrameError::ExpectedContinuation);
                    }
                    self.message_size = 0;
                } else if !self.in_message {
                    return Err(FrameError::UnexpectedContinuation);
                }
                // Checked at the header, before any payload is read, so that a client
                // announcing a huge frame is refused at once.
                self.message_size = self.message_size.saturating_add(len);
                if self.message_size > self.max_message {
                    return Err(FrameError::TooBig {
                        limit: self.max_message as usize,
                    });
                }
                self.in_message = !fin;
                if len > 0 {
                    self.state = State::Data {
                        remaining: len,
                        key,
                        offset: 0,
                    };
                }
                Ok(Item::Header { used })
            }
            other => Err(FrameError::UnknownOpcode(other)),
        }
    }

    fn finish_control(&mut self, opcode: u8, used: usize) -> Result<Item, FrameError> {
        match opcode {
            OP_PING => Ok(Item::Ping { used }),
            OP_PONG => Ok(Item::Pong { used }),
            _ => {
                let (code, reason) = match self.control_payload() {
                    [] => (None, String::new()),
                    [_] => return Err(FrameError::ShortClose),
                    [hi, lo, rest @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !sendable_close_code(code) {
                            return Err(FrameError::BadCloseCode(code));
                        }
                        let reason = std::str::from_utf8(rest)
                            .map_err(|_| FrameError::CloseReasonNotUtf8)?;
                        (Some(code), reason.to_owned())
                    }
                };
                Ok(Item::Close { used, code, reason })
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A masked client frame (`first`: FIN bit and opcode) under `key`; the relay's
    /// tests use it too.
    pub(crate) fn masked(first: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    /// Feeds `bytes` to a parser in pieces of `step` and collects data and items.
    fn parse_all(
        bytes: &[u8],
        step: usize,
        max: usize,
    ) -> Result<(Vec<u8>, Vec<Item>), FrameError> {
        let mut p = Parser::new(max);
        let mut buf = Vec::new();
        let mut data = Vec::new();
        let mut items = Vec::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match p.next(&mut buf)? {
                    Item::NeedMore => break,
                    Item::Data { len } => {
                        data.extend_from_slice(&buf[..len]);
                        buf.drain(..len);
                    }
                    item @ (Item::Header { used }
                    | Item::ControlPart { used }
                    | Item::Ping { used }
                    | Item::Pong { used }
                    | Item::Close { used, .. }) => {
                        buf.drain(..used);
                        if !matches!(item, Item::Header { .. } | Item::ControlPart { .. }) {
                            items.push(item);
                        }
                    }
                }
                if buf.is_empty() {
                    break;
                }
            }
        }
        Ok((data, items))
    }

    #[test]
    fn word_wise_unmask_matches_byte_wise_at_every_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for offset in 0..8 {
            for len in 0..40 {
                let original: Vec<u8> = (0..len as u8).collect();
                let mut fast = original.clone();
                unmask(&mut fast, key, offset);
                let slow: Vec<u8> = original
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn headers_use_the_shortest_length_form_and_end_at_the_payload() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut buf = [0u8; MAX_HEADER];
            let start = put_header(&mut buf, MAX_HEADER, OP_BINARY, len);
            assert_eq!(MAX_HEADER - start, header_len, "len {len}");
            assert_eq!(buf[start], 0x82);
        }
    }

    #[test]
    fn frames_split_at_every_byte_parse_the_same() {
        let mut bytes = masked(0x02, b"hello", [1, 2, 3, 4]);
        bytes.extend(masked(0x89, b"ping!", [5, 6, 7, 8]));
        bytes.extend(masked(0x80, &[7u8; 300], [9, 9, 9, 9]));
        for step in 1..20 {
            let (data, items) = parse_all(&bytes, step, 1 << 20).expect("valid frames");
            let mut want = b"hello".to_vec();
            want.extend([7u8; 300]);
            assert_eq!(data, want, "step {step}");
            assert!(matches!(&items[..], [Item::Ping { .. }]), "step {step}");
        }
    }

    #[test]
    fn empty_control_frames_complete_with_their_header() {
        let mut p = Parser::new(100);
        let mut close = masked(0x88, b"", [1, 2, 3, 4]);
        assert!(matches!(
            p.next(&mut close),
            Ok(Item::Close {
                used: 6,
                code: None,
                ..
            })
        ));
        let mut pong = masked(0x8A, b"", [1, 2, 3, 4]);
        assert_eq!(p.next(&mut pong), Ok(Item::Pong { used: 6 }));
    }

    #[test]
    fn malformed_frames_are_refused_with_their_rule() {
        let key = [1, 2, 3, 4];
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (masked(0x81, b"hi", key), FrameError::Text),
            (vec![0x82, 0x02, b'h', b'i'], FrameError::Unmasked),
            (masked(0xC2, b"hi", key), FrameError::ReservedBits),
            (masked(0x83, b"hi", key), FrameError::UnknownOpcode(3)),
            (masked(0x8B, b"hi", key), FrameError::UnknownOpcode(0xB)),
            (masked(0x89, &[0; 126], key), FrameError::ControlTooLong),
            (masked(0x09, b"hi", key), FrameError::FragmentedControl),
            (masked(0x80, b"hi", key), FrameError::UnexpectedContinuation),
            (masked(0x88, &[3], key), FrameError::ShortClose),
            (
                masked(0x88, &1005u16.to_be_bytes(), key),
                FrameError::BadCloseCode(1005),
            ),
            (
                masked(0x88, &[0x03, 0xE8, 0xFF], key),
                FrameError::CloseReasonNotUtf8,
            ),
            (
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
                FrameError::LengthOverflow,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_all(&bytes, 64, 1 << 20).err(), Some(want));
        }
        let mut two = masked(0x02, b"a", key);
        two.extend(masked(0x82, b"b", key));
        assert_eq!(
            parse_all(&two, 64, 1 << 20).err(),
            Some(FrameError::ExpectedContinuation)
        );
    }

    #[test]
    fn message_size_counts_every_fragment() {
        let key = [1, 2, 3, 4];
        let mut bytes = masked(0x02, &[0; 60], key);
        bytes.extend(masked(0x80, &[0; 60], key));
        assert!(parse_all(&bytes, 200, 120).is_ok());
        assert_eq!(
            parse_all(&bytes, 200, 119).err(),
            Some(FrameError::TooBig { limit: 119 })
        );
    }

    #[test]
    fn close_frames_report_code_and_reason() {
        let mut payload = 4000u16.to_be_bytes().to_vec();
        payload.extend_from_slice("bye ✓".as_bytes());
        let (_, items) = parse_all(&masked(0x88, &payload, [1, 2, 3, 4]), 3, 100).expect("valid");
        assert!(matches!(
            &items[..],
            [Item::Close { code: Some(4000), reason, .. }] if reason == "bye ✓"
        ));
    }

    #[test]
    fn close_frames_never_carry_reserved_codes_and_cut_reasons_on_char_boundaries() {
        let f = ControlFrame::close(1006, "x");
        assert_eq!(&f.as_bytes()[2..4], &1011u16.to_be_bytes());
        let long = "é".repeat(100); // 200 bytes
        let f = ControlFrame::close(1008, &long);
        let reason = &f.as_bytes()[4..];
        assert_eq!(reason.len(), 122);
        assert!(std::str::from_utf8(reason).is_ok());
        assert_eq!(f.as_bytes()[1] as usize, 124);
    }
}

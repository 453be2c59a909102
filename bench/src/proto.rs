//! The little protocol the load generator speaks to the bench backend, through every
//! proxy under test.
//!
//! The backend sends a 12-byte banner as soon as a connection arrives (like an RFB
//! server), so "first byte back" and "banner-then-idle" need no request. After the
//! banner the client may send 16-byte commands, one at a time, each a byte of opcode,
//! seven of padding and a little-endian `u64` count:
//!
//! - `D n`: the backend streams `n` bytes of the [`Pattern`] down;
//! - `U n`: the client sends `n` pattern bytes up; the backend answers with a 16-byte
//!   reply, the byte count and the CRC-32 of what it received;
//! - `E n`: the backend echoes the next `n` bytes back as they arrive.
//!
//! A command that is never sent leaves the session idle. Because every proxy relays the
//! same byte stream, integrity is checked end to end: downloads byte for byte against the
//! known pattern, uploads by count and CRC, echoes byte for byte.

use anyhow::{bail, Result};

/// Sent by the backend on every new connection.
pub const BANNER: &[u8; 12] = b"CGBENCH 001\n";
/// Size of a command and of an upload reply.
pub const MSG_LEN: usize = 16;
/// The pattern repeats every `PERIOD` bytes: a prime, so a chunk relayed to the wrong
/// place (a frame or buffer boundary mistake) cannot line up with the expected bytes.
pub const PERIOD: usize = 65_521;
/// Longest slice [`Pattern::slice`] hands out in one piece.
pub const MAX_SLICE: usize = 1 << 20;

pub const OP_DOWN: u8 = b'D';
pub const OP_UP: u8 = b'U';
pub const OP_ECHO: u8 = b'E';

/// Encodes a command.
pub fn command(op: u8, n: u64) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[0] = op;
    m[8..].copy_from_slice(&n.to_le_bytes());
    m
}

/// Decodes a command; an unknown opcode is an error (the stream is out of step).
pub fn parse_command(m: &[u8; MSG_LEN]) -> Result<(u8, u64)> {
    let n = u64::from_le_bytes(m[8..].try_into().expect("8 bytes"));
    match m[0] {
        OP_DOWN | OP_UP | OP_ECHO => Ok((m[0], n)),
        other => bail!("unknown command byte {other:#04x}"),
    }
}

/// The upload reply: byte count and CRC-32.
pub fn reply(count: u64, crc: u32) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[..8].copy_from_slice(&count.to_le_bytes());
    m[8..12].copy_from_slice(&crc.to_le_bytes());
    m
}

/// Decodes an upload reply into (count, crc).
pub fn parse_reply(m: &[u8; MSG_LEN]) -> (u64, u32) {
    let count = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(m[8..12].try_into().expect("4 bytes"));
    (count, crc)
}

/// The endless, periodic pseudo-random byte stream every transfer carries. Each
/// transfer starts at offset 0.
pub struct Pattern {
    /// One period plus `MAX_SLICE`, so any offset has a contiguous slice behind it.
    buf: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(PERIOD + MAX_SLICE);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..PERIOD {
            // xorshift64*: cheap and far from any byte pattern a proxy bug would produce.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            buf.push((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8);
        }
        for i in 0..MAX_SLICE {
            buf.push(buf[i % PERIOD]);
        }
        Pattern { buf }
    }

    /// The pattern bytes at stream offset `off`, `len` ≤ [`MAX_SLICE`] of them.
    pub fn slice(&self, off: u64, len: usize) -> &[u8] {
        let start = (off % PERIOD as u64) as usize;
        &self.buf[start..start + len.min(MAX_SLICE)]
    }

    /// True when `data` is exactly the pattern at stream offset `off`.
    pub fn matches(&self, mut off: u64, data: &[u8]) -> bool {
        for chunk in data.chunks(MAX_SLICE) {
            if chunk != self.slice(off, chunk.len()) {
                return false;
            }
            off += chunk.len() as u64;
        }
        true
    }

    /// CRC-32 of the first `n` pattern bytes: what the backend must report for `U n`.
    pub fn crc(&self, n: u64) -> u32 {
        let mut h = crc32fast::Hasher::new();
        let mut off = 0u64;
        while off < n {
            let len = (n - off).min(MAX_SLICE as u64) as usize;
            h.update(self.slice(off, len));
            off += len as u64;
        }
        h.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_wrap_around_the_period() {
        let p = Pattern::new();
        assert_eq!(p.slice(PERIOD as u64 + 5, 10), p.slice(5, 10));
        assert!(p.matches(PERIOD as u64 - 3, p.slice(PERIOD as u64 - 3, 100)));
        assert!(!p.matches(1, p.slice(0, 100)));
    }

    #[test]
    fn crc_is_streaming_consistent() {
        let p = Pattern::new();
        let mut h = crc32fast::Hasher::new();
        h.update(p.slice(0, 1000));
        h.update(p.slice(1000, 1000));
        assert_eq!(h.finalize(), p.crc(2000));
    }

    #[test]
    fn commands_round_trip_and_junk_is_refused() {
        assert_eq!(parse_command(&command(OP_UP, 42)).unwrap(), (OP_UP, 42));
        assert!(parse_command(&[b'X'; MSG_LEN]).is_err());
        assert_eq!(parse_reply(&reply(7, 9)), (7, 9));
    }
}

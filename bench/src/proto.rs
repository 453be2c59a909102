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
//! - `B ms` with a seed in bytes 4..8: a busy console for `ms` milliseconds. Both sides
//!   derive the same [`BusyPlan`] from the seed: the backend sends its framebuffer-like
//!   bursts on schedule while the client sends its input messages on schedule; once the
//!   backend has read every input byte and sent every burst it answers with the count
//!   and CRC-32 of the inputs, like `U`.
//!
//! A command that is never sent leaves the session idle. Because every proxy relays the
//! same byte stream, integrity is checked end to end: downloads byte for byte against the
//! known pattern, uploads by count and CRC, echoes byte for byte.

use anyhow::{bail, Result};

/// RFB mode (`cgbench backend --rfb`, `vnc+ws://` and `vncview+ws://` targets): the
/// backend is a VNC server first (RFB 3.8, security None, ClientInit), so that a proxy
/// that follows RFB (consolegate's view-only filter, its session recording) sees a real
/// VNC session; then the banner and the commands as usual. Every command travels as
/// an RFB message a view-only filter forwards: a SetEncodings listing four encodings,
/// which are the command's 16 bytes. This is its 4-byte header.
pub const RFB_COMMAND_HEADER: [u8; 4] = [2, 0, 0, 4];

/// A command as RFB mode sends it.
pub fn rfb_command(cmd: &[u8; MSG_LEN]) -> [u8; 4 + MSG_LEN] {
    let mut m = [0u8; 4 + MSG_LEN];
    m[..4].copy_from_slice(&RFB_COMMAND_HEADER);
    m[4..].copy_from_slice(cmd);
    m
}

/// Bytes of one unit of a view-only upload.
pub const VIEW_UNIT: usize = 32;
/// Bytes of a unit a view-only filter forwards (the update request).
pub const VIEW_KEPT: usize = 10;

/// What a browser with a view ticket sends up, as RFB messages: 32-byte units of a
/// FramebufferUpdateRequest (10 bytes, forwarded) and a key press, a pointer move
/// and a key release (22 bytes, dropped). [`ViewUpload::kept`] is what a view-only
/// proxy must deliver, so the backend's count and CRC check the filter: nothing
/// dropped that should pass, nothing passed that should be dropped.
pub struct ViewUpload {
    /// `MAX_SLICE` bytes of units.
    pub mixed: Vec<u8>,
    /// The update requests of `mixed`, in order.
    pub kept: Vec<u8>,
}

impl Default for ViewUpload {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewUpload {
    pub fn new() -> ViewUpload {
        let units = MAX_SLICE / VIEW_UNIT;
        let mut mixed = Vec::with_capacity(MAX_SLICE);
        let mut kept = Vec::with_capacity(units * VIEW_KEPT);
        for i in 0..units {
            let x = (i as u16).to_be_bytes();
            let y = ((i >> 16) as u16).to_be_bytes();
            let fbur = [3, (i & 1) as u8, x[0], x[1], y[0], y[1], 0, 64, 0, 48];
            mixed.extend_from_slice(&fbur);
            kept.extend_from_slice(&fbur);
            let keysym = (0x61 + (i % 26) as u32).to_be_bytes();
            mixed.extend_from_slice(&[4, 1, 0, 0]);
            mixed.extend_from_slice(&keysym);
            mixed.extend_from_slice(&[5, 0, x[0], x[1], y[0], y[1]]);
            mixed.extend_from_slice(&[4, 0, 0, 0]);
            mixed.extend_from_slice(&keysym);
        }
        ViewUpload { mixed, kept }
    }

    /// The forwarded part of the first `len` bytes of `mixed` (`len` whole units).
    pub fn kept_of(&self, len: usize) -> &[u8] {
        &self.kept[..len / VIEW_UNIT * VIEW_KEPT]
    }
}

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
pub const OP_BUSY: u8 = b'B';

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
        OP_DOWN | OP_UP | OP_ECHO | OP_BUSY => Ok((m[0], n)),
        other => bail!("unknown command byte {other:#04x}"),
    }
}

/// A `B` command: a busy console for `ms` milliseconds, its schedule drawn from `seed`.
pub fn busy_command(seed: u32, ms: u64) -> [u8; MSG_LEN] {
    let mut m = command(OP_BUSY, ms);
    m[4..8].copy_from_slice(&seed.to_le_bytes());
    m
}

/// The seed of a `B` command.
pub fn busy_seed(m: &[u8; MSG_LEN]) -> u32 {
    u32::from_le_bytes([m[4], m[5], m[6], m[7]])
}

/// What one busy console does, in milliseconds from the `B` command: the console
/// server's framebuffer updates and the browser's input events. Drawn per session from
/// its seed, so that sessions differ but both ends (and every target) agree.
///
/// - Updates come in active spells of 0.3–1.5 s separated by quiet gaps of 1–6 s (the
///   first gap 0–3 s, so sessions do not start in step). Within a spell a session sends
///   10–30 bursts a second (its own rate, ±25% jitter per burst), each 16–256 KiB,
///   log-uniform: mostly small incremental updates, now and then a large one.
/// - Input goes on all the time: 10–60 messages a second (the session's own rate, with
///   jitter), each 6–20 bytes, like RFB key (8 bytes) and pointer (6 bytes) events.
#[derive(Debug, Clone)]
pub struct BusyPlan {
    /// (at ms, bytes) of each burst down.
    pub bursts: Vec<(u64, usize)>,
    /// (at ms, bytes) of each input message up.
    pub inputs: Vec<(u64, usize)>,
    pub down_total: u64,
    pub up_total: u64,
}

/// splitmix64: a small, well-mixed generator so that seeds 0, 1, 2... differ.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

impl BusyPlan {
    pub fn new(seed: u32, ms: u64) -> BusyPlan {
        let mut r = Mix((u64::from(seed) << 17) ^ 0x5EED);
        let end = ms as f64;
        let rate = r.range(10.0, 30.0);
        let mut bursts = Vec::new();
        let mut t = r.range(0.0, 3000.0);
        while t < end {
            let spell_end = (t + r.range(300.0, 1500.0)).min(end);
            while t < spell_end {
                let kib = (16f64.ln() + r.unit() * (256f64 / 16.0).ln()).exp();
                bursts.push((t as u64, (kib * 1024.0) as usize));
                t += 1000.0 / rate * r.range(0.75, 1.25);
            }
            t = spell_end + r.range(1000.0, 6000.0);
        }
        let input_rate = r.range(10.0, 60.0);
        let mut inputs = Vec::new();
        let mut t = r.range(0.0, 1000.0 / input_rate);
        while t < end {
            inputs.push((t as u64, r.range(6.0, 21.0) as usize));
            t += 1000.0 / input_rate * r.range(0.5, 1.5);
        }
        let down_total = bursts.iter().map(|b| b.1 as u64).sum();
        let up_total = inputs.iter().map(|i| i.1 as u64).sum();
        BusyPlan {
            bursts,
            inputs,
            down_total,
            up_total,
        }
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
    fn busy_plans_stay_in_their_bounds_and_differ_by_seed() {
        let (a, b) = (BusyPlan::new(0, 20_000), BusyPlan::new(1, 20_000));
        assert_ne!(a.bursts, b.bursts);
        for p in [&a, &b] {
            assert!(p
                .bursts
                .iter()
                .all(|&(t, n)| t < 20_000 && (16 << 10..=256 << 10).contains(&n)));
            assert!(p
                .inputs
                .iter()
                .all(|&(t, n)| t < 20_000 && (6..=20).contains(&n)));
            assert!(p.inputs.len() >= 10 * 19, "{} inputs", p.inputs.len());
            assert_eq!(
                p.down_total,
                p.bursts.iter().map(|b| b.1 as u64).sum::<u64>()
            );
        }
        let m = busy_command(7, 20_000);
        assert_eq!(
            (parse_command(&m).unwrap(), busy_seed(&m)),
            ((OP_BUSY, 20_000), 7)
        );
    }

    #[test]
    fn a_view_upload_keeps_ten_bytes_of_every_thirty_two() {
        let v = ViewUpload::new();
        assert_eq!(v.mixed.len(), MAX_SLICE);
        assert_eq!(v.kept.len(), MAX_SLICE / VIEW_UNIT * VIEW_KEPT);
        assert_eq!(v.kept_of(64), [&v.mixed[..10], &v.mixed[32..42]].concat());
        assert_eq!(rfb_command(&command(OP_UP, 3))[..4], RFB_COMMAND_HEADER);
    }

    #[test]
    fn commands_round_trip_and_junk_is_refused() {
        assert_eq!(parse_command(&command(OP_UP, 42)).unwrap(), (OP_UP, 42));
        assert!(parse_command(&[b'X'; MSG_LEN]).is_err());
        assert_eq!(parse_reply(&reply(7, 9)), (7, 9));
    }
}

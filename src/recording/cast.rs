//! The serial recording format: asciicast v2 (`.cast`, asciinema's format), so that
//! `asciinema play`, asciinema-player and every tool that reads casts can replay a
//! serial console session as it is.
//!
//! - Header: the standard keys (`version` 2, `width`, `height`, `timestamp`, `title`,
//!   `env`) and the session's metadata under the key `consolegate`, which players
//!   ignore (asciinema's own reader and asciinema-player read only the keys they know).
//! - Output is `o` events, the browser's input `i` events, times in seconds since the
//!   start with microsecond precision.
//! - The last line is the trailer, `[<end time>, "sha256", "<hex>"]`: an event whose
//!   code players do not know and skip (the format's event list is open to
//!   extension), holding the SHA-256 of every byte before the hex digits (so the end
//!   time is covered too): `head -c -67 FILE | sha256sum` checks it with standard
//!   tools (64 hex digits, `"]` and the newline are the 67 bytes left out).
//!
//! Event data must be text, while a serial console sends bytes. [`Utf8Decoder`] keeps
//! a multi-byte character split across two reads whole (it is held until its last
//! byte arrives) and turns bytes that are not UTF-8 into U+FFFD, as asciinema does;
//! how many were replaced is reported when the recording ends.

use super::meta::Meta;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};

/// File name extension.
pub const EXTENSION: &str = "cast";
/// The trailer's event code.
pub const TRAILER_CODE: &str = "sha256";
/// Terminal size written in the header. A serial line has no size of its own; the
/// guest's getty assumes 80×24 unless told otherwise.
pub const WIDTH: u16 = 80;
pub const HEIGHT: u16 = 24;
/// Longest line a reader accepts (one event holds one read: at most the relay's
/// buffer, escaped).
pub const MAX_LINE: usize = 8 << 20;

#[derive(Serialize)]
struct Header<'a> {
    version: u32,
    width: u16,
    height: u16,
    timestamp: i64,
    title: String,
    env: BTreeMap<&'static str, &'static str>,
    consolegate: &'a Meta,
}

/// The header line, newline included.
pub fn header(meta: &Meta) -> Result<Vec<u8>, serde_json::Error> {
    let who = meta.sub.as_deref().unwrap_or("unknown user");
    let mut line = serde_json::to_vec(&Header {
        version: 2,
        width: WIDTH,
        height: HEIGHT,
        timestamp: meta.start_unix_ms.div_euclid(1000),
        title: format!(
            "consolegate session {}: {who} on {}",
            meta.session, meta.target
        ),
        env: BTreeMap::from([("TERM", "xterm-256color")]),
        consolegate: meta,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Seconds since the start with six decimals, as asciinema writes them.
pub fn format_time(at_us: u64) -> String {
    format!("{}.{:06}", at_us / 1_000_000, at_us % 1_000_000)
}

/// Appends one event line.
pub fn push_event(out: &mut Vec<u8>, at_us: u64, code: &str, data: &str) {
    out.push(b'[');
    out.extend_from_slice(format_time(at_us).as_bytes());
    out.extend_from_slice(b", ");
    push_json_str(out, code);
    out.extend_from_slice(b", ");
    push_json_str(out, data);
    out.extend_from_slice(b"]\n");
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The trailer line up to its digest: `[<time>, "sha256", "`. The digest covers it.
pub fn trailer_head(at_us: u64) -> Vec<u8> {
    format!("[{}, \"{TRAILER_CODE}\", \"", format_time(at_us)).into_bytes()
}

/// What follows the digest on the trailer line.
pub const TRAILER_TAIL: &[u8] = b"\"]\n";

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns a byte stream into text across reads: an incomplete character at the end
/// of one read waits for the next; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    /// The start of a character whose remaining bytes have not arrived (at most 3).
    held: Vec<u8>,
    replaced: u64,
}

impl Utf8Decoder {
    /// Appends the text of `bytes` to `out`.
    pub fn decode(&mut self, bytes: &[u8], out: &mut String) {
        let joined;
        let mut input: &[u8] = if self.held.is_empty() {
            bytes
        } else {
            let mut v = std::mem::take(&mut self.held);
            v.extend_from_slice(bytes);
            joined = v;
            &joined
        };
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let (valid, rest) = input.split_at(e.valid_up_to());
                    if let Ok(s) = std::str::from_utf8(valid) {
                        out.push_str(s);
                    }
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            self.replaced += n as u64;
                            input = &rest[n..];
                        }
                        None => {
                            self.held = rest.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// At the end: a character that never completed is replaced.
    pub fn finish(&mut self, out: &mut String) {
        if !self.held.is_empty() {
            self.replaced += self.held.len() as u64;
            self.held.clear();
            out.push('\u{FFFD}');
        }
    }

    /// Bytes replaced by U+FFFD so far.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }
}

/// Why a file cannot be read as a consolegate asciicast.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not an asciicast v2 file")]
    NotRecording,
    #[error("line {line} is longer than {MAX_LINE} bytes")]
    LineTooLong { line: u64 },
    #[error("line {line} is not an asciicast event")]
    BadEvent { line: u64 },
    #[error("line {line} goes back in time")]
    TimeWentBack { line: u64 },
    #[error("line {line} comes after the trailer")]
    DataAfterTrailer { line: u64 },
}

/// One event as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An `o`, `i` or other event.
    Data { at: f64, code: String, data: String },
    /// `computed` is the SHA-256 of the file up to the trailer's digest.
    Trailer {
        at: f64,
        recorded: String,
        computed: [u8; 32],
    },
}

/// Streaming reader: header first ([`Reader::open`]), then events until `None`.
pub struct Reader<R> {
    inner: R,
    hasher: Sha256,
    line: u64,
    last_at: f64,
    trailer_seen: bool,
}

impl<R: BufRead> Reader<R> {
    /// Reads the header line; returns the reader and the header.
    pub fn open(mut inner: R) -> Result<(Reader<R>, serde_json::Value), FormatError> {
        let line = read_line(&mut inner, 1)?.ok_or(FormatError::NotRecording)?;
        let header: serde_json::Value =
            serde_json::from_slice(&line).map_err(|_| FormatError::NotRecording)?;
        if header.get("version").and_then(|v| v.as_u64()) != Some(2) {
            return Err(FormatError::NotRecording);
        }
        let mut hasher = Sha256::new();
        hasher.update(&line);
        Ok((
            Reader {
                inner,
                hasher,
                line: 1,
                last_at: 0.0,
                trailer_seen: false,
            },
            header,
        ))
    }

    pub fn next_event(&mut self) -> Result<Option<Event>, FormatError> {
        let (n, raw) = loop {
            let n = self.line + 1;
            let Some(raw) = read_line(&mut self.inner, n)? else {
                return Ok(None);
            };
            self.line = n;
            // Blank lines carry no event (asciinema skips them too) but are hashed.
            if !raw.iter().all(u8::is_ascii_whitespace) {
                break (n, raw);
            }
            if self.trailer_seen {
                return Err(FormatError::DataAfterTrailer { line: n });
            }
            self.hasher.update(&raw);
        };
        if self.trailer_seen {
            return Err(FormatError::DataAfterTrailer { line: n });
        }
        let bad = || FormatError::BadEvent { line: n };
        let v: (f64, String, String) = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let (at, code, data) = v;
        if !at.is_finite() || at < self.last_at {
            return Err(FormatError::TimeWentBack { line: n });
        }
        self.last_at = at;
        if code == TRAILER_CODE {
            // The digest covers the line up to its hex digits, which must be the
            // line's last 64 bytes before `"]`.
            let body = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let head_len = body
                .strip_suffix(b"\"]")
                .and_then(|b| b.len().checked_sub(64))
                .ok_or_else(bad)?;
            if body.get(head_len..head_len + 64) != Some(data.as_bytes()) {
                return Err(bad());
            }
            self.hasher.update(&raw[..head_len]);
            let computed: [u8; 32] = self.hasher.clone().finalize().into();
            self.hasher.update(&raw[head_len..]);
            self.trailer_seen = true;
            return Ok(Some(Event::Trailer {
                at,
                recorded: data,
                computed,
            }));
        }
        self.hasher.update(&raw);
        Ok(Some(Event::Data { at, code, data }))
    }
}

/// One line, newline included; `None` at the end.
fn read_line<R: BufRead>(r: &mut R, line: u64) -> Result<Option<Vec<u8>>, FormatError> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_LINE {
        return Err(FormatError::LineTooLong { line });
    }
    Ok(Some(buf))
}

/// Convenience for tests and tools: reads a whole cast from bytes.
pub fn read_all(bytes: &[u8]) -> Result<(serde_json::Value, Vec<Event>), FormatError> {
    let (mut r, h) = Reader::open(bytes)?;
    let mut v = Vec::new();
    while let Some(e) = r.next_event()? {
        v.push(e);
    }
    Ok((h, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::meta::sample;

    #[test]
    fn a_character_split_across_reads_is_kept_whole() {
        let text = "bc → 2^10 = 1024 ✓";
        let bytes = text.as_bytes();
        for split in 0..bytes.len() {
            let mut d = Utf8Decoder::default();
            let mut out = String::new();
            d.decode(&bytes[..split], &mut out);
            d.decode(&bytes[split..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, text, "split at {split}");
            assert_eq!(d.replaced(), 0);
        }
        // One byte at a time.
        let mut d = Utf8Decoder::default();
        let mut out = String::new();
        for b in bytes {
            d.decode(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, text);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_are_counted() {
        let mut d = Utf8Decoder::default();
        let mut out = String::new();
        d.decode(b"a\xffb\xc3", &mut out);
        assert_eq!(out, "a\u{FFFD}b");
        d.decode(b"(", &mut out); // \xc3 followed by a non-continuation byte
        assert_eq!(out, "a\u{FFFD}b\u{FFFD}(");
        d.decode(b"\xe2\x82", &mut out);
        d.finish(&mut out);
        assert_eq!(out, "a\u{FFFD}b\u{FFFD}(\u{FFFD}");
        assert_eq!(d.replaced(), 4);
    }

    #[test]
    fn a_cast_has_the_standard_header_events_and_a_checkable_trailer() {
        let mut out = header(&sample("serial")).unwrap();
        push_event(&mut out, 1_500_000, "o", "2^10\r\n1024\r\n");
        push_event(&mut out, 2_000_001, "i", "quit\r");
        out.extend_from_slice(&trailer_head(3_000_000));
        let digest: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(hex(&digest).as_bytes());
        out.extend_from_slice(TRAILER_TAIL);
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], r#"[1.500000, "o", "2^10\r\n1024\r\n"]"#);
        assert_eq!(lines[2], r#"[2.000001, "i", "quit\r"]"#);
        assert!(lines[3].starts_with(r#"[3.000000, "sha256", ""#));
        let (h, events) = read_all(&out).unwrap();
        assert_eq!(h["version"], 2);
        assert_eq!(h["width"], 80);
        assert_eq!(h["consolegate"]["sub"], "alice");
        assert_eq!(events.len(), 3);
        match &events[2] {
            Event::Trailer {
                recorded, computed, ..
            } => assert_eq!(recorded, &hex(computed)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_casts_are_errors() {
        let mut out = header(&sample("serial")).unwrap();
        out.extend_from_slice(b"[1.0, \"o\"]\n");
        assert!(matches!(
            read_all(&out),
            Err(FormatError::BadEvent { line: 2 })
        ));
        let mut out = header(&sample("serial")).unwrap();
        push_event(&mut out, 2_000_000, "o", "a");
        push_event(&mut out, 1_000_000, "o", "b");
        assert!(matches!(
            read_all(&out),
            Err(FormatError::TimeWentBack { line: 3 })
        ));
        let mut out = header(&sample("serial")).unwrap();
        push_event(&mut out, 1, TRAILER_CODE, &hex(&[0; 32]));
        push_event(&mut out, 2, "o", "late");
        assert!(matches!(
            read_all(&out),
            Err(FormatError::DataAfterTrailer { line: 3 })
        ));
        assert!(matches!(
            read_all(b"{\"version\":3}\n"),
            Err(FormatError::NotRecording)
        ));
    }
}

//! The VNC recording format (`.vncrec`), documented in docs/recording-format.md: one
//! JSON header line, then binary records of both directions with their times, then a
//! trailer with the SHA-256 of everything before it.
//!
//! ```text
//! {"format":"consolegate-rfb","version":1,"session":7,…}\n
//! type u8 | time u64 BE (µs since start) | length u32 BE | payload     (repeated)
//! 'T'     | time of the end              | 32            | SHA-256 of every byte before the digest
//! ```
//!
//! Record types: `S` console server → browser bytes (exactly what the browser
//! received), `C` browser → console server bytes (as forwarded), `R` a redaction (the
//! VNC authentication response: its payload is only the number of bytes withheld, as
//! a u32), `T` the trailer. Binary rather than JSON lines because VNC sessions are
//! mostly framebuffer updates: base64 would add a third to every file.
//!
//! Writing is [`header`] and [`push_record`]; reading is [`Reader`], a streaming
//! parser (recordings can be gigabytes) that hashes as it reads, so `verify` needs no
//! second pass. The reader takes untrusted files: every length is checked before it
//! is used and a malformed file is an error naming the offset, never a panic.

use super::meta::Meta;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, Read};

/// The `format` value of the header.
pub const FORMAT: &str = "consolegate-rfb";
/// The format version this module writes and reads.
pub const VERSION: u32 = 1;
/// File name extension.
pub const EXTENSION: &str = "vncrec";
/// Every file of this format starts with these bytes (the header's first two keys).
pub const MAGIC: &[u8] = br#"{"format":"consolegate-rfb","version":1,"#;
/// Type, time and length.
pub const RECORD_HEADER_LEN: usize = 13;
/// Largest payload of one record; longer runs of bytes are split into several.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Longest header line a reader accepts.
pub const MAX_HEADER_LINE: usize = 64 << 10;

/// Record types (their byte is the ASCII letter, so `xxd` shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// Console server → browser.
    Server,
    /// Browser → console server.
    Client,
    /// Browser bytes withheld from the recording (the VNC authentication response).
    Redacted,
    /// The file's SHA-256, last.
    Trailer,
}

impl RecordType {
    pub fn byte(self) -> u8 {
        match self {
            RecordType::Server => b'S',
            RecordType::Client => b'C',
            RecordType::Redacted => b'R',
            RecordType::Trailer => b'T',
        }
    }

    fn from_byte(b: u8) -> Option<RecordType> {
        match b {
            b'S' => Some(RecordType::Server),
            b'C' => Some(RecordType::Client),
            b'R' => Some(RecordType::Redacted),
            b'T' => Some(RecordType::Trailer),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Header<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    meta: &'a Meta,
}

/// The header line, newline included.
pub fn header(meta: &Meta) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(&Header {
        format: FORMAT,
        version: VERSION,
        meta,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Appends one record (several when `payload` is longer than [`MAX_PAYLOAD`]).
pub fn push_record(out: &mut Vec<u8>, kind: RecordType, at_us: u64, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        let (part, tail) = rest.split_at(n);
        out.push(kind.byte());
        out.extend_from_slice(&at_us.to_be_bytes());
        // n <= MAX_PAYLOAD, which fits a u32.
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(part);
        rest = tail;
        if rest.is_empty() {
            return;
        }
    }
}

/// A redaction record: `withheld` bytes of the browser's stream are not in the file.
pub fn push_redaction(out: &mut Vec<u8>, at_us: u64, withheld: u32) {
    push_record(out, RecordType::Redacted, at_us, &withheld.to_be_bytes());
}

/// The trailer record's type, time and length: the digest in it covers these too
/// (the SHA-256 of the whole file but its last 32 bytes), so the end time cannot be
/// changed unseen either.
pub fn trailer_head(at_us: u64) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0] = RecordType::Trailer.byte();
    h[1..9].copy_from_slice(&at_us.to_be_bytes());
    h[9..13].copy_from_slice(&32u32.to_be_bytes());
    h
}

/// Why a file cannot be read as a VNC recording.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a consolegate VNC recording (the file does not start with its header)")]
    NotRecording,
    #[error("the header line is longer than {MAX_HEADER_LINE} bytes")]
    HeaderTooLong,
    #[error("the header is not valid JSON: {0}")]
    BadHeader(String),
    #[error("unknown record type {byte:#04x} at byte {offset}")]
    BadRecordType { offset: u64, byte: u8 },
    #[error("record at byte {offset} claims {len} bytes (at most {MAX_PAYLOAD})")]
    PayloadTooLarge { offset: u64, len: u32 },
    #[error("the file ends inside the record at byte {offset}")]
    Truncated { offset: u64 },
    #[error("record at byte {offset} goes back in time")]
    TimeWentBack { offset: u64 },
    #[error("malformed {what} record at byte {offset}")]
    BadRecord { offset: u64, what: &'static str },
    #[error("data after the trailer at byte {offset}")]
    DataAfterTrailer { offset: u64 },
}

/// One record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Server {
        at_us: u64,
        bytes: Vec<u8>,
    },
    Client {
        at_us: u64,
        bytes: Vec<u8>,
    },
    Redacted {
        at_us: u64,
        withheld: u32,
    },
    /// `computed` is the SHA-256 of the file up to the digest.
    Trailer {
        at_us: u64,
        recorded: [u8; 32],
        computed: [u8; 32],
    },
}

/// Streaming reader: the header first ([`Reader::open`]), then records until `None`.
pub struct Reader<R> {
    inner: R,
    hasher: Sha256,
    offset: u64,
    last_at: u64,
    trailer_seen: bool,
}

impl<R: BufRead> Reader<R> {
    /// Reads and checks the header line; returns the reader and the header as JSON.
    pub fn open(mut inner: R) -> Result<(Reader<R>, serde_json::Value), FormatError> {
        let mut line = Vec::new();
        let n = (&mut inner)
            .take(MAX_HEADER_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if !line.starts_with(MAGIC) {
            return Err(FormatError::NotRecording);
        }
        if line.last() != Some(&b'\n') {
            return Err(if n > MAX_HEADER_LINE {
                FormatError::HeaderTooLong
            } else {
                FormatError::Truncated { offset: 0 }
            });
        }
        let header: serde_json::Value = serde_json::from_slice(&line[..line.len() - 1])
            .map_err(|e| FormatError::BadHeader(e.to_string()))?;
        if !header.is_object() {
            return Err(FormatError::BadHeader("not an object".into()));
        }
        let mut hasher = Sha256::new();
        hasher.update(&line);
        Ok((
            Reader {
                inner,
                hasher,
                offset: line.len() as u64,
                last_at: 0,
                trailer_seen: false,
            },
            header,
        ))
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        let start = self.offset;
        let mut head = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if self.trailer_seen {
            return Err(FormatError::DataAfterTrailer { offset: start });
        }
        if got < RECORD_HEADER_LEN {
            return Err(FormatError::Truncated { offset: start });
        }
        let kind = RecordType::from_byte(head[0]).ok_or(FormatError::BadRecordType {
            offset: start,
            byte: head[0],
        })?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&head[1..9]);
        let at_us = u64::from_be_bytes(at);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[9..13]);
        let len = u32::from_be_bytes(len);
        if len as usize > MAX_PAYLOAD {
            return Err(FormatError::PayloadTooLarge { offset: start, len });
        }
        if at_us < self.last_at {
            return Err(FormatError::TimeWentBack { offset: start });
        }
        self.last_at = at_us;
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut self.inner, &mut payload)? < payload.len() {
            return Err(FormatError::Truncated { offset: start });
        }
        self.hasher.update(head);
        let before: [u8; 32] = self.hasher.clone().finalize().into();
        self.hasher.update(&payload);
        self.offset += (RECORD_HEADER_LEN + payload.len()) as u64;
        let bad = |what| FormatError::BadRecord {
            offset: start,
            what,
        };
        Ok(Some(match kind {
            RecordType::Server => Record::Server {
                at_us,
                bytes: payload,
            },
            RecordType::Client => Record::Client {
                at_us,
                bytes: payload,
            },
            RecordType::Redacted => {
                let b: [u8; 4] = payload
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("redaction"))?;
                Record::Redacted {
                    at_us,
                    withheld: u32::from_be_bytes(b),
                }
            }
            RecordType::Trailer => {
                let recorded: [u8; 32] =
                    payload.as_slice().try_into().map_err(|_| bad("trailer"))?;
                self.trailer_seen = true;
                Record::Trailer {
                    at_us,
                    recorded,
                    computed: before,
                }
            }
        }))
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::meta::sample;

    fn file(records: &[(RecordType, u64, &[u8])], trailer: bool) -> Vec<u8> {
        let mut out = header(&sample("vnc")).unwrap();
        for (k, at, p) in records {
            push_record(&mut out, *k, *at, p);
        }
        if trailer {
            out.extend_from_slice(&trailer_head(99));
            let d: [u8; 32] = Sha256::digest(&out).into();
            out.extend_from_slice(&d);
        }
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
        let (mut r, _) = Reader::open(bytes)?;
        let mut v = Vec::new();
        while let Some(rec) = r.next_record()? {
            v.push(rec);
        }
        Ok(v)
    }

    #[test]
    fn the_header_starts_with_the_magic_and_is_one_line() {
        let h = header(&sample("vnc")).unwrap();
        assert!(h.starts_with(MAGIC));
        assert_eq!(h.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&h).unwrap();
        assert_eq!(v["sub"], "alice");
        assert_eq!(v["kind"], "vnc");
    }

    #[test]
    fn records_read_back_as_written_and_the_trailer_digest_matches() {
        let bytes = file(
            &[
                (RecordType::Server, 1, b"RFB 003.008\n"),
                (RecordType::Client, 2, b"RFB 003.008\n"),
                (RecordType::Redacted, 3, &16u32.to_be_bytes()),
            ],
            true,
        );
        let recs = read_all(&bytes).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(
            recs[2],
            Record::Redacted {
                at_us: 3,
                withheld: 16
            }
        );
        match &recs[3] {
            Record::Trailer {
                recorded, computed, ..
            } => assert_eq!(recorded, computed),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_payloads_are_split_into_several_records() {
        let big = vec![7u8; MAX_PAYLOAD * 2 + 5];
        let mut out = Vec::new();
        push_record(&mut out, RecordType::Server, 5, &big);
        assert_eq!(out.len(), 3 * RECORD_HEADER_LEN + big.len());
    }

    #[test]
    fn malformed_files_are_errors_naming_the_offset() {
        let good = file(&[(RecordType::Server, 1, b"abc")], true);
        let h = header(&sample("vnc")).unwrap().len();
        // Truncated anywhere inside a record.
        for cut in [h + 1, h + 12, h + 14, good.len() - 1] {
            assert!(
                matches!(read_all(&good[..cut]), Err(FormatError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let mut bad = good.clone();
        bad[h] = b'Z';
        assert!(matches!(
            read_all(&bad),
            Err(FormatError::BadRecordType { byte: b'Z', .. })
        ));
        let mut huge = good.clone();
        huge[h + 9..h + 13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            read_all(&huge),
            Err(FormatError::PayloadTooLarge { .. })
        ));
        let mut after = good.clone();
        after.extend_from_slice(&good[h..h + 16]);
        assert!(matches!(
            read_all(&after),
            Err(FormatError::DataAfterTrailer { .. })
        ));
        assert!(matches!(
            read_all(b"{\"version\":2}\n"),
            Err(FormatError::NotRecording)
        ));
        let mut back = file(
            &[(RecordType::Server, 9, b"a"), (RecordType::Server, 8, b"b")],
            false,
        );
        back.truncate(back.len());
        assert!(matches!(
            read_all(&back),
            Err(FormatError::TimeWentBack { .. })
        ));
    }
}

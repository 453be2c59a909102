//! Checking a recording: reads it whole (streaming, any size), recomputes the SHA-256
//! of everything before its trailer, compares it with the trailer's, and sums up what
//! the file holds. `consolegate recording verify FILE` prints this; an operator
//! compares the digest with the one on the session's end log line, which proves the
//! file is the one the proxy wrote (the trailer alone only proves it is whole: anyone
//! who changes a byte can recompute a digest, nobody can change the log line kept
//! elsewhere).
//!
//! The format is recognised by the file's first bytes, not its name.

use super::cast::{self, hex};
use super::store::Format;
use super::vnc;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What a verified file says about itself.
#[derive(Debug, Clone)]
pub struct Report {
    pub format: Format,
    /// The header as written (for a cast, the whole asciicast header).
    pub header: serde_json::Value,
    pub integrity: Integrity,
    /// Time of the last record (the trailer's: the end of the session).
    pub duration_us: u64,
    /// Console server → browser bytes (VNC) or output characters' bytes (serial).
    pub bytes_down: u64,
    /// Browser → console server bytes recorded.
    pub bytes_up: u64,
    /// VNC authentication responses withheld.
    pub redactions: u64,
    /// The file's size.
    pub size: u64,
}

impl Report {
    /// The session metadata, wherever the format keeps it.
    pub fn meta(&self) -> &serde_json::Value {
        match self.format {
            Format::Vnc => &self.header,
            Format::Cast => self.header.get("consolegate").unwrap_or(&self.header),
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The trailer's digest matches the file.
    Intact { sha256: String },
    /// The file was changed after it was written.
    Altered { recorded: String, computed: String },
    /// No trailer: the proxy stopped before the session ended (a crash, a failed
    /// disk, a recording that failed mid-session) or the file was cut.
    Unfinished,
}

impl Integrity {
    pub fn is_intact(&self) -> bool {
        matches!(self, Integrity::Intact { .. })
    }
}

/// Why a file could not be verified at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: String },
    #[error("{}: not a consolegate recording (neither its VNC format nor an asciicast)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: damaged or altered: {cause}", path.display())]
    Vnc {
        path: PathBuf,
        cause: vnc::FormatError,
    },
    #[error("{}: damaged or altered: {cause}", path.display())]
    Cast {
        path: PathBuf,
        cause: cast::FormatError,
    },
}

/// Verifies the file at `path`.
pub fn verify_file(path: &Path) -> Result<Report, VerifyError> {
    let io = |e: std::io::Error| VerifyError::Io {
        path: path.to_path_buf(),
        cause: e.to_string(),
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(256 << 10, file);
    let first = r.fill_buf().map_err(io)?;
    if first.starts_with(vnc::MAGIC) {
        verify_vnc(r, size).map_err(|cause| VerifyError::Vnc {
            path: path.to_path_buf(),
            cause,
        })
    } else if first.first() == Some(&b'{') {
        match verify_cast(r, size) {
            Err(cast::FormatError::NotRecording) => Err(VerifyError::UnknownFormat {
                path: path.to_path_buf(),
            }),
            other => other.map_err(|cause| VerifyError::Cast {
                path: path.to_path_buf(),
                cause,
            }),
        }
    } else {
        Err(VerifyError::UnknownFormat {
            path: path.to_path_buf(),
        })
    }
}

fn verify_vnc<R: BufRead>(r: R, size: u64) -> Result<Report, vnc::FormatError> {
    let (mut reader, header) = vnc::Reader::open(r)?;
    let mut report = Report {
        format: Format::Vnc,
        header,
        integrity: Integrity::Unfinished,
        duration_us: 0,
        bytes_down: 0,
        bytes_up: 0,
        redactions: 0,
        size,
    };
    let mut trailer = None;
    while let Some(rec) = reader.next_record()? {
        match rec {
            vnc::Record::Server { at_us, bytes } => {
                report.duration_us = at_us;
                report.bytes_down += bytes.len() as u64;
            }
            vnc::Record::Client { at_us, bytes } => {
                report.duration_us = at_us;
                report.bytes_up += bytes.len() as u64;
            }
            vnc::Record::Redacted { at_us, .. } => {
                report.duration_us = at_us;
                report.redactions += 1;
            }
            vnc::Record::Trailer {
                at_us,
                recorded,
                computed,
            } => {
                report.duration_us = at_us;
                trailer = Some((recorded, computed));
            }
        }
    }
    report.integrity = match trailer {
        Some((recorded, computed)) if recorded == computed => Integrity::Intact {
            sha256: hex(&computed),
        },
        Some((recorded, computed)) => Integrity::Altered {
            recorded: hex(&recorded),
            computed: hex(&computed),
        },
        None => Integrity::Unfinished,
    };
    Ok(report)
}

fn verify_cast<R: BufRead>(r: R, size: u64) -> Result<Report, cast::FormatError> {
    let (mut reader, header) = cast::Reader::open(r)?;
    let mut report = Report {
        format: Format::Cast,
        header,
        integrity: Integrity::Unfinished,
        duration_us: 0,
        bytes_down: 0,
        bytes_up: 0,
        redactions: 0,
        size,
    };
    let mut trailer = None;
    while let Some(ev) = reader.next_event()? {
        match ev {
            cast::Event::Data { at, code, data } => {
                report.duration_us = seconds_to_us(at);
                match code.as_str() {
                    "o" => report.bytes_down += data.len() as u64,
                    "i" => report.bytes_up += data.len() as u64,
                    _ => {}
                }
            }
            cast::Event::Trailer {
                at,
                recorded,
                computed,
            } => {
                report.duration_us = seconds_to_us(at);
                trailer = Some((recorded, computed));
            }
        }
    }
    report.integrity = match trailer {
        Some((recorded, computed)) if recorded == hex(&computed) => {
            Integrity::Intact { sha256: recorded }
        }
        Some((recorded, computed)) => Integrity::Altered {
            recorded,
            computed: hex(&computed),
        },
        None => Integrity::Unfinished,
    };
    Ok(report)
}

fn seconds_to_us(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1e6).round() as u64
    } else {
        0
    }
}

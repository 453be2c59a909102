//! The recording directory: its creation (mode 0750, files 0640), file names, the
//! listing, retention (by age and total size, oldest first) and the free-space check.
//!
//! File names are `<start, UTC>-<session id>-<6 hex>.<vncrec|cast>`, e.g.
//! `20261202T162000Z-12-3f9a1c.vncrec`: they sort by start time, name the session
//! of the log lines, and the random part keeps two proxies (or one restarted) from
//! ever picking the same name. Only names of this shape are listed, served or
//! pruned: anything else an operator keeps in the directory is left alone.

use super::{cast, vnc};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Mode of the recording directory when the proxy creates it.
pub const DIR_MODE: u32 = 0o750;
/// Mode of each recording file.
pub const FILE_MODE: u32 = 0o640;

/// Creates the directory (and its parents) with [`DIR_MODE`] if it does not exist.
/// Returns the mode of an existing directory that others can read or enter, so the
/// caller can warn: the proxy does not change modes an operator chose.
pub fn prepare_dir(dir: &Path) -> io::Result<Option<u32>> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode() & 0o7777;
            Ok((mode & 0o007 != 0).then_some(mode))
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
            // Exactly DIR_MODE, whatever the umask (the systemd unit's is 0077).
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A new file name for a session starting at `start_unix_ms`.
pub fn file_name(start_unix_ms: i64, session: u64, extension: &str) -> String {
    let mut r = [0u8; 3];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
    format!(
        "{}-{session}-{}.{extension}",
        super::meta::compact_utc(start_unix_ms),
        cast::hex(&r)
    )
}

/// The recording format a file name says, when the name is one this proxy writes.
pub fn parse_name(name: &str) -> Option<Format> {
    let (stem, ext) = name.rsplit_once('.')?;
    let format = match ext {
        vnc::EXTENSION => Format::Vnc,
        cast::EXTENSION => Format::Cast,
        _ => return None,
    };
    let mut parts = stem.splitn(3, '-');
    let time = parts.next()?;
    let session = parts.next()?;
    let random = parts.next()?;
    let time_ok = time.len() == 16
        && time.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    let session_ok =
        !session.is_empty() && session.len() <= 20 && session.bytes().all(|b| b.is_ascii_digit());
    let random_ok = random.len() == 6
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (time_ok && session_ok && random_ok).then_some(format)
}

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// consolegate's VNC recording (`.vncrec`).
    Vnc,
    /// asciicast v2 (`.cast`), serial consoles.
    Cast,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Vnc => "vnc",
            Format::Cast => "asciicast",
        }
    }
}

/// One recording file in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
    pub size: u64,
    pub modified: SystemTime,
}

/// The recordings in `dir`, oldest first (by the start time in their names).
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(format) = parse_name(&name) else {
            continue;
        };
        // symlink_metadata: a link planted in the directory is not a recording.
        let Ok(m) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        out.push(Entry {
            path: e.path(),
            name,
            format,
            size: m.len(),
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Recordings last written longer ago than this are removed.
    pub max_age: Option<Duration>,
    /// While the recordings take more than this, the oldest are removed.
    pub max_total_bytes: Option<u64>,
}

/// Applies `retention` to `dir` at `now`, never touching the names in `active`
/// (recordings being written). Returns the removed entries, oldest first.
pub fn prune(
    dir: &Path,
    retention: Retention,
    active: &HashSet<String>,
    now: SystemTime,
) -> io::Result<Vec<Entry>> {
    let entries = list(dir)?;
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    let mut removed = Vec::new();
    for e in entries {
        if active.contains(&e.name) {
            continue;
        }
        let too_old = retention
            .max_age
            .is_some_and(|max| now.duration_since(e.modified).is_ok_and(|age| age > max));
        let too_big = retention.max_total_bytes.is_some_and(|max| total > max);
        if !(too_old || too_big) {
            continue;
        }
        match fs::remove_file(&e.path) {
            Ok(()) => {
                total = total.saturating_sub(e.size);
                removed.push(e);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                total = total.saturating_sub(e.size);
            }
            Err(err) => {
                tracing::warn!(recording = %e.name, cause = %err, "retention could not remove a recording");
            }
        }
    }
    Ok(removed)
}

/// Bytes an unprivileged user may still write in the file system holding `dir`.
pub fn available_space(dir: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_sort_by_time_and_only_our_names_are_recognised() {
        let a = file_name(1_764_000_000_000, 3, "vncrec");
        let b = file_name(1_764_000_001_000, 1, "cast");
        assert!(a < b);
        assert_eq!(parse_name(&a), Some(Format::Vnc));
        assert_eq!(parse_name(&b), Some(Format::Cast));
        for bad in [
            "notes.txt",
            "20251124T160000Z-3-abcdef.txt",
            "20251124T160000Z-3-abcdeg.cast",
            "20251124T160000Z--abcdef.cast",
            "../20251124T160000Z-3-abcdef.cast",
            "20251124X160000Z-3-abcdef.cast",
            "20251124T160000Z-3-abcdef.cast/x",
            "20251124T160000Z-3-ABCDEF.cast",
            "",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_directory_is_created_0750_and_an_open_one_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert_eq!(prepare_dir(&dir).unwrap(), None);
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(prepare_dir(&dir).unwrap(), Some(0o755));
        let file = tmp.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(prepare_dir(&file).is_err());
    }

    fn touch(dir: &Path, name: &str, size: usize, age: Duration) {
        let p = dir.join(name);
        fs::write(&p, vec![0u8; size]).unwrap();
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn retention_removes_the_oldest_first_and_never_an_active_recording() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let day = Duration::from_secs(86400);
        touch(d, "20250101T000000Z-1-000001.vncrec", 100, day * 40);
        touch(d, "20250102T000000Z-2-000002.cast", 100, day * 39);
        touch(d, "20250201T000000Z-3-000003.vncrec", 100, day * 5);
        touch(d, "20250202T000000Z-4-000004.vncrec", 100, day * 4);
        touch(d, "20250203T000000Z-5-000005.cast", 100, day * 3);
        touch(d, "operator-notes.txt", 1000, day * 400);
        let active: HashSet<String> = ["20250201T000000Z-3-000003.vncrec".to_string()].into();
        // Age: the two 40-day-old ones go.
        let removed = prune(
            d,
            Retention {
                max_age: Some(day * 30),
                max_total_bytes: None,
            },
            &active,
            SystemTime::now(),
        )
        .unwrap();
        let names: Vec<&str> = removed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "20250101T000000Z-1-000001.vncrec",
                "20250102T000000Z-2-000002.cast"
            ]
        );
        // Size: 300 bytes left, at most 150: the oldest that is not active goes, then
        // the next, until it fits.
        let removed = prune(
            d,
            Retention {
                max_age: None,
                max_total_bytes: Some(150),
            },
            &active,
            SystemTime::now(),
        )
        .unwrap();
        let names: Vec<&str> = removed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "20250202T000000Z-4-000004.vncrec",
                "20250203T000000Z-5-000005.cast"
            ]
        );
        let left: Vec<String> = list(d).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(left, ["20250201T000000Z-3-000003.vncrec"]);
        assert!(d.join("operator-notes.txt").exists());
    }

    #[test]
    fn free_space_is_measured() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(available_space(tmp.path()).unwrap() > 0);
        assert!(available_space(&tmp.path().join("missing")).is_err());
    }
}

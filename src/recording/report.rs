//! What `consolegate recording verify` and `consolegate recording list` print: kept in
//! the library, next to the formats they describe, so the text is tested with them.

use super::store::{self, Entry, Format};
use super::verify::{self, Integrity, Report, VerifyError};
use super::vnc;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The verify report as aligned `key  value` lines.
pub fn verify_text(path: &Path, r: &Report) -> String {
    let m = r.meta();
    let s = |k: &str| match m.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".to_string(),
        Some(v) => v.to_string(),
    };
    let yes_no = |k: &str| match m.get(k).and_then(|v| v.as_bool()) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("file", path.display().to_string()),
        ("format", r.format.as_str().to_string()),
        ("session", s("session")),
        ("sub", s("sub")),
        ("jti", s("jti")),
        ("kid", s("kid")),
        ("client", s("client")),
        ("target", s("target")),
        ("address", s("address")),
        ("kind", s("kind")),
        ("tls", s("tls")),
        ("view only", yes_no("view").to_string()),
        ("input recorded", yes_no("input").to_string()),
        ("start", s("start")),
        ("duration", duration(r.duration_us)),
        ("proxy", s("proxy")),
        ("size", format!("{} bytes", r.size)),
    ];
    match r.format {
        Format::Vnc => {
            rows.push(("server bytes", r.bytes_down.to_string()));
            rows.push(("browser bytes", r.bytes_up.to_string()));
            rows.push(("redactions", r.redactions.to_string()));
        }
        Format::Cast => {
            rows.push(("output bytes", r.bytes_down.to_string()));
            rows.push(("input bytes", r.bytes_up.to_string()));
        }
    }
    match &r.integrity {
        Integrity::Intact { sha256 } => {
            rows.push(("sha256", sha256.clone()));
            rows.push(("integrity", "intact".into()));
        }
        Integrity::Altered { recorded, computed } => {
            rows.push(("sha256", format!("{recorded} (trailer)")));
            rows.push(("computed", computed.clone()));
            rows.push((
                "integrity",
                "ALTERED: the file does not match its trailer".into(),
            ));
        }
        Integrity::Unfinished => {
            rows.push(("sha256", "-".into()));
            rows.push((
                "integrity",
                "UNFINISHED: no trailer (the proxy stopped before the session ended, or the file was cut)".into(),
            ));
        }
    }
    // The metadata is the ticket's (`sub`, `jti`) and the file may have been altered:
    // nothing in it may drive the terminal or fake a line of the report.
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<15} {}\n", crate::util::text::escape(&v)));
    }
    out
}

/// `h:mm:ss.mmm` or `m:ss.mmm`.
pub fn duration(us: u64) -> String {
    let ms = us / 1000;
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{rest:03}")
    } else {
        format!("{m}:{s:02}.{rest:03}")
    }
}

/// The session metadata of a recording, from its header line only (fast).
pub fn read_meta(path: &Path) -> Option<serde_json::Value> {
    let f = File::open(path).ok()?;
    let mut line = Vec::new();
    BufReader::new(f)
        .take(vnc::MAX_HEADER_LINE as u64)
        .read_until(b'\n', &mut line)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&line).ok()?;
    if line.starts_with(vnc::MAGIC) {
        Some(v)
    } else {
        v.get("consolegate").cloned()
    }
}

/// The listing: one line per recording, oldest first. With `verify`, every file is
/// read whole and the table gains its duration and integrity; returns whether all
/// listed files verified.
pub fn list_text(entries: &[Entry], verify: bool) -> (String, bool) {
    let mut head = vec!["NAME", "KIND", "SESSION", "SUB", "TARGET", "START", "SIZE"];
    if verify {
        head.extend(["DURATION", "INTEGRITY"]);
    }
    let mut rows: Vec<Vec<String>> = vec![head.into_iter().map(String::from).collect()];
    let mut all_ok = true;
    for e in entries {
        let meta = read_meta(&e.path).unwrap_or(serde_json::Value::Null);
        let s = |k: &str| match meta.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".to_string(),
            Some(v) => v.to_string(),
        };
        let kind = match e.format {
            Format::Vnc => "vnc",
            Format::Cast => "serial",
        };
        let mut row = vec![
            e.name.clone(),
            kind.to_string(),
            s("session"),
            s("sub"),
            s("target"),
            s("start"),
            e.size.to_string(),
        ];
        if verify {
            match verify::verify_file(&e.path) {
                Ok(r) => {
                    row.push(duration(r.duration_us));
                    row.push(
                        match r.integrity {
                            Integrity::Intact { .. } => "intact",
                            Integrity::Altered { .. } => "ALTERED",
                            Integrity::Unfinished => "UNFINISHED",
                        }
                        .to_string(),
                    );
                    all_ok &= r.integrity.is_intact();
                }
                Err(err) => {
                    row.push("-".into());
                    row.push(match err {
                        VerifyError::Io { .. } => "UNREADABLE".into(),
                        _ => "DAMAGED".into(),
                    });
                    all_ok = false;
                }
            }
        }
        // Names, subs and targets come from files and tickets: escaped for the
        // terminal, as in `verify_text`.
        for cell in row.iter_mut() {
            if let std::borrow::Cow::Owned(escaped) = crate::util::text::escape(cell) {
                *cell = escaped;
            }
        }
        rows.push(row);
    }
    let cols = rows[0].len();
    let mut widths = vec![0usize; cols];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if entries.is_empty() {
        out.push_str("(no recordings)\n");
    }
    (out, all_ok)
}

/// Lists a directory (for the CLI): the recordings in it, oldest first.
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<Entry>> {
    store::list(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short_and_exact() {
        assert_eq!(duration(0), "0:00.000");
        assert_eq!(duration(61_250_000), "1:01.250");
        assert_eq!(duration(3_723_004_000), "1:02:03.004");
    }

    #[test]
    fn control_characters_in_a_recordings_metadata_are_escaped_in_both_reports() {
        let evil = "eve\n\u{1b}[1A\u{1b}[2Kintegrity      intact\u{9b}";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("20261202T162000Z-1-abc.cast");
        let header = serde_json::json!({
            "version": 2, "width": 80, "height": 24,
            "consolegate": {"sub": evil, "jti": evil, "target": "127.0.0.1:7000"},
        });
        std::fs::write(&path, format!("{header}\n")).unwrap();
        let report = Report {
            format: Format::Cast,
            header,
            integrity: Integrity::Unfinished,
            duration_us: 0,
            bytes_down: 0,
            bytes_up: 0,
            redactions: 0,
            size: 1,
        };
        let entry = Entry {
            name: "20261202T162000Z-1-abc.cast".into(),
            path: path.clone(),
            format: Format::Cast,
            size: 1,
            modified: std::time::SystemTime::now(),
        };
        for text in [verify_text(&path, &report), list_text(&[entry], false).0] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
            assert!(text.contains(r"eve\n\u{1b}[1A"), "{text}");
            assert!(
                !text.lines().any(|l| l.starts_with("integrity      intact")),
                "{text}"
            );
        }
    }

    #[test]
    fn an_empty_listing_says_so() {
        let (text, ok) = list_text(&[], true);
        assert!(text.contains("(no recordings)"));
        assert!(ok);
    }
}

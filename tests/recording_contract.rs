//! The recording format is a contract between two readers: the Rust side that writes
//! and verifies recordings, and the browser player (web/recording.js) that replays
//! them. This test writes recordings through the real recorder and tap, then has the
//! player's parser read them under node and checks that both sides see the same
//! metadata, bytes, digest and verdict, including on a file with one changed byte.
//! Without node the test says it skipped, visibly (and fails under CI).

mod common;

use common::recordings::{meta_for, recorder};
use common::tools;
use consolegate::recording::verify::verify_file;
use consolegate::recording::Recorder;
use consolegate::rfb::handshake::UpKind;
use consolegate::tap::{Observer, Tap, TapOptions};
use consolegate::ticket::Kind;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A VNC session through a tap: the server offers `types`, the browser answers with
/// `client_version` and picks `choice`.
async fn record_vnc(
    rec: &Recorder,
    session: u64,
    client_version: &[u8; 12],
    types: &[u8],
    choice: u8,
) -> PathBuf {
    let (obs, recording) = rec
        .start(Kind::Vnc, meta_for(Kind::Vnc, session), Box::new(|_| {}))
        .await
        .unwrap();
    let (tap_side, mut server) = tokio::io::duplex(1 << 16);
    let mut browser = Tap::new(
        tap_side,
        TapOptions {
            kind: Kind::Vnc,
            view: false,
            observer: Some(Box::new(obs)),
        },
    );
    let mut buf = vec![0u8; 1 << 16];
    server.write_all(b"RFB 003.008\n").await.unwrap();
    browser.read_exact(&mut buf[..12]).await.unwrap();
    browser.write_all(client_version).await.unwrap();
    let mut list = vec![types.len() as u8];
    list.extend_from_slice(types);
    server.write_all(&list).await.unwrap();
    browser.read_exact(&mut buf[..list.len()]).await.unwrap();
    browser.write_all(&[choice]).await.unwrap();
    if choice == 2 {
        server.write_all(&[0x11; 16]).await.unwrap();
        browser.read_exact(&mut buf[..16]).await.unwrap();
        browser.write_all(&[0xEE; 16]).await.unwrap();
    }
    if choice == 2 || client_version == b"RFB 003.008\n" {
        server.write_all(&[0, 0, 0, 0]).await.unwrap();
        browser.read_exact(&mut buf[..4]).await.unwrap();
    }
    browser.write_all(&[1]).await.unwrap(); // ClientInit
    browser.flush().await.unwrap();
    // ServerInit: 8×8, 32 bpp, name "t"; then a 1-rectangle raw update.
    let mut init = vec![
        0, 8, 0, 8, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
    ];
    init.extend_from_slice(&[0, 0, 0, 1, b't']);
    init.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 8, 0, 8, 0, 0, 0, 0]);
    init.extend_from_slice(&[0x80; 8 * 8 * 4]);
    server.write_all(&init).await.unwrap();
    browser.read_exact(&mut buf[..init.len()]).await.unwrap();
    browser
        .write_all(&[3, 1, 0, 0, 0, 0, 0, 8, 0, 8])
        .await
        .unwrap();
    browser.flush().await.unwrap();
    browser.shutdown().await.unwrap();
    drop(browser);
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await.unwrap();
    recording.finish().await.unwrap().path
}

async fn record_serial(rec: &Recorder) -> PathBuf {
    let (mut obs, recording) = rec
        .start(Kind::Serial, meta_for(Kind::Serial, 9), Box::new(|_| {}))
        .await
        .unwrap();
    let out = "2^64\r\n18446744073709551616\r\n½ → ok\r\n".as_bytes();
    let cut = out.len() - 9;
    obs.down(&out[..cut]).unwrap();
    obs.up(UpKind::Messages, b"2^64\r").unwrap();
    obs.down(&out[cut..]).unwrap();
    drop(obs);
    recording.finish().await.unwrap().path
}

fn parse_with_player(files: &[&Path]) -> Vec<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recording_parse.mjs");
    let out = Command::new("node")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_player_reads_what_the_recorder_writes() {
    // The player's parser runs under node.
    if !tools::have(&["node"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = recorder(tmp.path());
    let vnc_auth = record_vnc(&rec, 1, b"RFB 003.008\n", &[2], 2).await;
    let vnc_none_37 = record_vnc(&rec, 2, b"RFB 003.007\n", &[2, 1], 1).await;
    let cast = record_serial(&rec).await;
    let got = parse_with_player(&[&vnc_auth, &vnc_none_37, &cast]);

    for (path, js) in [&vnc_auth, &vnc_none_37, &cast].iter().zip(&got) {
        assert!(js.get("error").is_none(), "{js}");
        let report = verify_file(path).unwrap();
        let consolegate::recording::verify::Integrity::Intact { sha256 } = &report.integrity else {
            panic!("{path:?}: {:?}", report.integrity)
        };
        assert_eq!(js["integrity"], "intact", "{js}");
        assert_eq!(js["sha256"], sha256.as_str());
        assert_eq!(js["js_sha256_agrees"], true);
        let meta = report.meta();
        for key in [
            "session",
            "sub",
            "jti",
            "kid",
            "client",
            "target",
            "address",
            "kind",
            "tls",
            "view",
            "input",
            "start",
            "start_unix_ms",
            "proxy",
        ] {
            assert_eq!(js["meta"][key], meta[key], "{key} in {path:?}");
        }
        let js_ms = js["duration_ms"].as_f64().unwrap();
        assert!(
            (js_ms - report.duration_us as f64 / 1000.0).abs() < 0.01,
            "{js_ms} vs {}",
            report.duration_us
        );
        if report.format == consolegate::recording::store::Format::Vnc {
            assert_eq!(js["format"], "vnc");
            assert_eq!(js["server_bytes"], report.bytes_down);
            assert_eq!(js["client_bytes"], report.bytes_up);
        }
    }

    // VNC authentication: the response is withheld and the player replays 3.8 with
    // type 2, as the browser chose.
    assert_eq!(got[0]["withheld"], 16);
    assert_eq!(got[0]["client_version"], "RFB 003.008");
    assert_eq!(got[0]["security_type"], 2);
    assert!(got[0]["playback_head"]
        .as_str()
        .unwrap()
        .starts_with(&hex(b"RFB 003.008\n\x01\x02")));
    // RFB 3.7 with None out of [2, 1]: the player speaks 3.7 and is offered only 1.
    assert_eq!(got[1]["withheld"], 0);
    assert_eq!(got[1]["security_type"], 1);
    assert!(got[1]["playback_head"]
        .as_str()
        .unwrap()
        .starts_with(&hex(b"RFB 003.007\n\x01\x01")));
    // The rewrite shortens the list by one byte, nothing else.
    assert_eq!(
        got[1]["playback_bytes"].as_u64().unwrap(),
        got[1]["server_bytes"].as_u64().unwrap() - 1
    );
    // Serial: text whole across the split character, input as typed.
    assert_eq!(got[2]["format"], "asciicast");
    assert_eq!(
        got[2]["output"],
        "2^64\r\n18446744073709551616\r\n½ → ok\r\n"
    );
    assert_eq!(got[2]["input"], "2^64\r");
    assert_eq!(got[2]["width"], 80);

    // One changed byte: both sides notice.
    let mut altered = Vec::new();
    for (i, path) in [&vnc_auth, &cast].iter().enumerate() {
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        let copy = tmp.path().join(format!("altered-{i}"));
        std::fs::write(&copy, &bytes).unwrap();
        assert!(!verify_file(&copy)
            .map(|r| r.integrity.is_intact())
            .unwrap_or(false));
        altered.push(copy);
    }
    let refs: Vec<&Path> = altered.iter().map(PathBuf::as_path).collect();
    for js in parse_with_player(&refs) {
        assert!(
            js["integrity"] == "altered" || js.get("error").is_some(),
            "the player did not notice: {js}"
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

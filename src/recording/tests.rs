//! The recorder end to end in one process: a tap, a fake console server speaking
//! just enough RFB or serial, the observer, the writer task and the file it leaves,
//! read back with the verifier.

use super::verify::{verify_file, Integrity};
use super::*;
use crate::tap::{Observer, Tap, TapOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The VNC authentication response the browser sends in these tests: it must never
/// appear in a recording.
const RESPONSE: [u8; 16] = [
    0xd1, 0x5e, 0xa5, 0xe0, 0x7a, 0x1b, 0x33, 0x90, 0x0f, 0xc4, 0x28, 0x6e, 0x5d, 0xb2, 0x47, 0x81,
];

fn config(dir: &Path) -> RecordingConfig {
    RecordingConfig {
        min_free_bytes: 0,
        ..RecordingConfig::new(dir.to_path_buf())
    }
}

fn no_fail() -> OnFail {
    Box::new(|_| {})
}

async fn start(rec: &Recorder, kind: Kind) -> (RecordingObserver, Recording) {
    let mut m = meta::sample(kind.as_str());
    m.start_unix_ms = unix_ms_now();
    m.start = meta::rfc3339_ms(m.start_unix_ms);
    rec.start(kind, m, no_fail()).await.unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn read_vnc(path: &Path) -> Vec<vnc::Record> {
    let bytes = std::fs::read(path).unwrap();
    let (mut r, _) = vnc::Reader::open(bytes.as_slice()).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        v.push(rec);
    }
    v
}

/// How the fake console server and the browser go through the handshake.
#[derive(Debug, Clone, Copy)]
enum Security {
    /// RFB 3.8 / 3.7: the server offers types, the browser picks one.
    Pick {
        version: &'static [u8; 12],
        kind: u8,
    },
    /// RFB 3.3: the server names the type.
    Server33 { kind: u32 },
}

/// Runs a VNC session through a tap with `observer`: handshake, one key event, one
/// pointer event, one update request; the server answers with a small update.
/// Returns what the browser received.
async fn vnc_session(security: Security, observer: RecordingObserver) -> Vec<u8> {
    let (tap_side, mut server) = tokio::io::duplex(1 << 16);
    let mut browser = Tap::new(
        tap_side,
        TapOptions {
            kind: Kind::Vnc,
            view: false,
            observer: Some(Box::new(observer)),
        },
    );
    let mut seen = Vec::new();
    let server_version: &[u8; 12] = match security {
        Security::Pick { version, .. } => version,
        Security::Server33 { .. } => b"RFB 003.003\n",
    };
    server.write_all(server_version).await.unwrap();
    let mut v = [0u8; 12];
    browser.read_exact(&mut v).await.unwrap();
    seen.extend_from_slice(&v);
    browser.write_all(server_version).await.unwrap();
    let vnc_auth = match security {
        Security::Pick { kind, .. } => {
            server.write_all(&[2, 2, 1]).await.unwrap();
            let mut t = [0u8; 3];
            browser.read_exact(&mut t).await.unwrap();
            seen.extend_from_slice(&t);
            browser.write_all(&[kind]).await.unwrap();
            kind == 2
        }
        Security::Server33 { kind } => {
            server.write_all(&kind.to_be_bytes()).await.unwrap();
            let mut t = [0u8; 4];
            browser.read_exact(&mut t).await.unwrap();
            seen.extend_from_slice(&t);
            kind == 2
        }
    };
    if vnc_auth {
        server.write_all(&[0x42; 16]).await.unwrap();
        let mut c = [0u8; 16];
        browser.read_exact(&mut c).await.unwrap();
        seen.extend_from_slice(&c);
        // The response arrives in two pieces, as it may on the wire.
        browser.write_all(&RESPONSE[..5]).await.unwrap();
        browser.flush().await.unwrap();
        browser.write_all(&RESPONSE[5..]).await.unwrap();
    }
    let is_33 = matches!(security, Security::Server33 { .. });
    if vnc_auth || !is_33 {
        server.write_all(&[0, 0, 0, 0]).await.unwrap(); // SecurityResult OK
        let mut ok = [0u8; 4];
        browser.read_exact(&mut ok).await.unwrap();
        seen.extend_from_slice(&ok);
    }
    // ClientInit, then a key, a pointer move and an update request.
    let mut msgs = vec![1u8];
    msgs.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61]);
    msgs.extend_from_slice(&[5, 0, 0, 1, 0, 1]);
    msgs.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 8, 0, 8]);
    browser.write_all(&msgs).await.unwrap();
    browser.flush().await.unwrap();
    server.write_all(b"SERVERINIT-AND-UPDATE").await.unwrap();
    let mut u = [0u8; 21];
    browser.read_exact(&mut u).await.unwrap();
    seen.extend_from_slice(&u);
    browser.shutdown().await.unwrap();
    drop(browser);
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await.unwrap();
    assert!(
        contains(&rest, &RESPONSE) || !vnc_auth,
        "the server got the response"
    );
    seen
}

#[tokio::test]
async fn the_vnc_authentication_response_is_never_recorded_in_any_security_type() {
    let cases = [
        Security::Pick {
            version: b"RFB 003.008\n",
            kind: 2,
        },
        Security::Pick {
            version: b"RFB 003.007\n",
            kind: 2,
        },
        Security::Server33 { kind: 2 },
        Security::Pick {
            version: b"RFB 003.008\n",
            kind: 1,
        },
        Security::Server33 { kind: 1 },
    ];
    for input in [true, false] {
        for case in cases {
            let tmp = tempfile::tempdir().unwrap();
            let rec = Recorder::new(Some(RecordingConfig {
                input,
                ..config(tmp.path())
            }))
            .unwrap();
            let (obs, recording) = start(&rec, Kind::Vnc).await;
            let seen = vnc_session(case, obs).await;
            let done = recording.finish().await.unwrap();
            let file = std::fs::read(&done.path).unwrap();
            assert!(
                !contains(&file, &RESPONSE),
                "{case:?} input={input}: the response is in the file"
            );
            let records = read_vnc(&done.path);
            let server: Vec<u8> = records
                .iter()
                .filter_map(|r| match r {
                    vnc::Record::Server { bytes, .. } => Some(bytes.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(server, seen, "{case:?}: every byte the browser saw");
            let redacted: Vec<u32> = records
                .iter()
                .filter_map(|r| match r {
                    vnc::Record::Redacted { withheld, .. } => Some(*withheld),
                    _ => None,
                })
                .collect();
            let vnc_auth = matches!(
                case,
                Security::Pick { kind: 2, .. } | Security::Server33 { kind: 2 }
            );
            assert_eq!(redacted.iter().sum::<u32>(), if vnc_auth { 16 } else { 0 });
            let client: Vec<u8> = records
                .iter()
                .filter_map(|r| match r {
                    vnc::Record::Client { bytes, .. } => Some(bytes.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            let key_event = [4, 1, 0, 0, 0, 0, 0, 0x61];
            assert_eq!(
                contains(&client, &key_event),
                input,
                "{case:?} input={input}"
            );
            assert!(contains(&client, &[3, 1, 0, 0, 0, 0, 0, 8, 0, 8]));
            let report = verify_file(&done.path).unwrap();
            assert_eq!(
                report.integrity,
                Integrity::Intact {
                    sha256: done.sha256.clone()
                }
            );
            assert_eq!(report.redactions > 0, vnc_auth);
            assert_eq!(report.header["input"], input);
        }
    }
}

#[tokio::test]
async fn a_serial_session_is_a_valid_asciicast_with_input_and_split_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(config(tmp.path()))).unwrap();
    let (mut obs, recording) = start(&rec, Kind::Serial).await;
    let out = "2^10\r\n1024 → done\r\n".as_bytes();
    let cut = out.len() - 8; // inside the arrow
    obs.down(&out[..cut]).unwrap();
    obs.up(crate::rfb::handshake::UpKind::Messages, b"2^10\r")
        .unwrap();
    obs.down(&out[cut..]).unwrap();
    drop(obs);
    let done = recording.finish().await.unwrap();
    let bytes = std::fs::read(&done.path).unwrap();
    let (header, events) = cast::read_all(&bytes).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["consolegate"]["kind"], "serial");
    let mut output = String::new();
    let mut input = String::new();
    for e in &events[..events.len() - 1] {
        match e {
            cast::Event::Data { code, data, .. } if code == "o" => output.push_str(data),
            cast::Event::Data { code, data, .. } if code == "i" => input.push_str(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(output, "2^10\r\n1024 → done\r\n");
    assert_eq!(input, "2^10\r");
    // The file without its last 67 bytes hashes to the trailer's digest.
    assert_eq!(
        cast::hex(&Sha256::digest(&bytes[..bytes.len() - 67])),
        done.sha256
    );
    assert!(bytes.ends_with(format!("\"{}\"]\n", done.sha256).as_bytes()));
    assert!(verify_file(&done.path).unwrap().integrity.is_intact());
}

#[tokio::test]
async fn serial_input_is_not_recorded_when_input_recording_is_off() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(RecordingConfig {
        input: false,
        ..config(tmp.path())
    }))
    .unwrap();
    let (mut obs, recording) = start(&rec, Kind::Serial).await;
    obs.up(crate::rfb::handshake::UpKind::Messages, b"secret\r")
        .unwrap();
    obs.down(b"Password: ").unwrap();
    drop(obs);
    let done = recording.finish().await.unwrap();
    let bytes = std::fs::read(&done.path).unwrap();
    assert!(!contains(&bytes, b"secret"));
    let (header, _) = cast::read_all(&bytes).unwrap();
    assert_eq!(header["consolegate"]["input"], false);
}

#[tokio::test]
async fn verify_detects_a_change_to_any_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(config(tmp.path()))).unwrap();
    for kind in [Kind::Vnc, Kind::Serial] {
        let (mut obs, recording) = start(&rec, kind).await;
        obs.down(b"RFB 003.008\n").unwrap();
        obs.up(crate::rfb::handshake::UpKind::Handshake, b"RFB 003.008\n")
            .unwrap();
        obs.down(b"some output").unwrap();
        drop(obs);
        let done = recording.finish().await.unwrap();
        let original = std::fs::read(&done.path).unwrap();
        assert!(verify_file(&done.path).unwrap().integrity.is_intact());
        let copy = tmp.path().join("copy");
        for i in 0..original.len() {
            let mut changed = original.clone();
            changed[i] ^= 0x01;
            std::fs::write(&copy, &changed).unwrap();
            // An error (the file no longer parses) is a detection too.
            if let Ok(r) = verify_file(&copy) {
                assert!(
                    !r.integrity.is_intact(),
                    "{kind:?}: byte {i} changed and the file still verifies"
                );
            }
        }
        // Cut short: no trailer.
        std::fs::write(&copy, &original[..original.len() - 40]).unwrap();
        if let Ok(r) = verify_file(&copy) {
            assert_eq!(r.integrity, Integrity::Unfinished);
        }
    }
}

#[tokio::test]
async fn a_full_queue_ends_the_session_instead_of_dropping_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(RecordingConfig {
        queue_bytes: 4096,
        ..config(tmp.path())
    }))
    .unwrap();
    let (mut obs, recording) = start(&rec, Kind::Vnc).await;
    // The writer task cannot run between these calls (no await): the queue fills.
    let chunk = [0xABu8; 1000];
    let mut accepted = 0;
    let err = loop {
        match obs.down(&chunk) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the budget is never reached");
    };
    assert_eq!(
        accepted, 3,
        "three 1000-byte chunks fit in 4096 with overhead"
    );
    assert!(err.0.contains("could not keep up"), "{}", err.0);
    // Every later call fails the same way.
    assert!(obs.down(b"x").is_err());
    drop(obs);
    // What was accepted is in the file, whole.
    let done = recording.finish().await.unwrap();
    let down: usize = read_vnc(&done.path)
        .iter()
        .map(|r| match r {
            vnc::Record::Server { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(down, 3000);
}

#[tokio::test]
async fn a_recording_file_removed_mid_session_ends_the_session_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(config(tmp.path()))).unwrap();
    let called = Arc::new(Mutex::new(None::<String>));
    let c = called.clone();
    let mut m = meta::sample("vnc");
    m.start_unix_ms = unix_ms_now();
    let (mut obs, recording) = rec
        .start(
            Kind::Vnc,
            m,
            Box::new(move |reason| *c.lock().unwrap() = Some(reason)),
        )
        .await
        .unwrap();
    obs.down(b"RFB 003.008\n").unwrap();
    std::fs::remove_file(recording.path()).unwrap();
    // The writer looks every second; no byte needs to flow for it to notice.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while called.lock().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = called.lock().unwrap().clone().unwrap();
    assert!(reason.contains("recording file was removed"), "{reason}");
    assert!(reason.len() <= 123);
    let err = obs.down(b"more").unwrap_err();
    assert_eq!(err.0, reason);
    drop(obs);
    assert!(matches!(
        recording.finish().await,
        Err(RecordingError::Removed { .. })
    ));
    assert_eq!(rec.stats().failed(), 1);
}

#[tokio::test]
async fn a_proxy_without_recording_or_space_refuses_and_spice_is_unsupported() {
    let off = Recorder::disabled();
    assert!(off.wanted(true));
    assert!(!off.wanted(false));
    assert_eq!(off.check(Kind::Vnc), Err(RecordingError::NotConfigured));
    assert_eq!(
        RecordingError::NotConfigured.code(),
        "recording_unavailable"
    );
    assert_eq!(RecordingError::NotConfigured.status(), 503);
    let tmp = tempfile::tempdir().unwrap();
    let all = Recorder::new(Some(RecordingConfig {
        policy: Policy::All,
        ..config(tmp.path())
    }))
    .unwrap();
    assert!(all.wanted(false));
    let e = all.check(Kind::Spice).unwrap_err();
    assert_eq!((e.status(), e.code()), (501, "recording_unsupported"));
    let floor = Recorder::new(Some(RecordingConfig {
        min_free_bytes: u64::MAX,
        ..config(tmp.path())
    }))
    .unwrap();
    let e = floor.check(Kind::Serial).unwrap_err();
    assert!(matches!(e, RecordingError::LowSpace { .. }), "{e}");
    assert_eq!(e.code(), "recording_unavailable");
    let m = meta::sample("serial");
    assert!(floor.start(Kind::Serial, m, no_fail()).await.is_err());
    assert!(
        store::list(tmp.path()).unwrap().is_empty(),
        "no file was left"
    );
}

#[tokio::test]
async fn files_are_0640_and_listed_while_active_then_finished() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::new(Some(config(tmp.path()))).unwrap();
    let (obs, recording) = start(&rec, Kind::Vnc).await;
    let mode = std::fs::metadata(recording.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, store::FILE_MODE, "mode {mode:o}");
    let listed = rec.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].1, "active while written");
    assert_eq!(
        rec.path_of(recording.name()).as_deref(),
        Some(recording.path())
    );
    assert_eq!(rec.path_of("../etc/passwd"), None);
    drop(obs);
    let done = recording.finish().await.unwrap();
    assert!(!rec.list().unwrap()[0].1);
    assert_eq!(rec.stats().started(), 1);
    assert_eq!(rec.stats().bytes_written(), done.bytes);
    assert_eq!(std::fs::metadata(&done.path).unwrap().len(), done.bytes);
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(parse_size("512"), Some(Some(512)));
    assert_eq!(parse_size("10K"), Some(Some(10 << 10)));
    assert_eq!(parse_size("1G"), Some(Some(1 << 30)));
    assert_eq!(parse_size("1GiB"), Some(Some(1 << 30)));
    assert_eq!(parse_size("2 TB"), Some(Some(2 << 40)));
    assert_eq!(parse_size("off"), Some(None));
    assert_eq!(parse_size("0"), Some(None));
    assert_eq!(parse_size("3 parsecs"), None);
    assert_eq!(parse_size("-1G"), None);
    assert_eq!(parse_size("99999999999T"), None);
}

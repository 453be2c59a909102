//! Session recording through the `consolegate` binary and a running proxy: the
//! `recording verify|list` subcommands, and the fail-closed cases (a `rec` ticket on a
//! proxy that cannot record, a directory that cannot be written, a file removed
//! mid-session).

mod common;

use common::recordings::{meta_for, recorder};
use common::*;
use consolegate::ops::admin::Admin;
use consolegate::ops::client::request;
use consolegate::recording::store;
use consolegate::recording::verify::verify_file;
use consolegate::rfb::handshake::UpKind;
use consolegate::tap::Observer;
use consolegate::ticket::Kind;
use futures_util::SinkExt;
use hyper::{Method, StatusCode};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn bin() -> Command {
    Command::new(consolegate_bin())
}

async fn write_recording(dir: &Path, kind: Kind) -> (PathBuf, String) {
    let (mut obs, recording) = recorder(dir)
        .start(kind, meta_for(kind, 3), Box::new(|_| {}))
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
    assert!(text.contains("sub             alice"), "{text}");
    assert!(
        text.contains("target          console.example:5901"),
        "{text}"
    );
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
        assert!(line.contains("alice") && line.ends_with("intact"), "{line}");
    }
    assert!(!text.contains("notes.txt"));
    let out = bin()
        .args(["recording", "list"])
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

// ------------------------------------------------------------------ through a proxy

const TOKEN: &str = "recording-test-token-0123456789abcdef";

/// A proxy recording every session (policy `all`) into `dir`, serial consoles allowed
/// on every port; `tweak` adjusts the flags further.
async fn recording_proxy(
    dir: &Path,
    tweak: impl FnOnce(&mut consolegate::config::ServeArgs),
) -> TestProxy {
    let dir = dir.to_path_buf();
    TestProxy::start(move |a| {
        a.allow_serial_port = vec!["1-65535".into()];
        a.allow_spice_port = vec!["1-65535".into()];
        a.recording_dir = Some(dir);
        a.recording_policy = Some("all".into());
        a.recording_min_free = Some("0".into());
        tweak(a);
    })
    .await
}

fn serial_ticket(p: &TestProxy, target: std::net::SocketAddr) -> String {
    let mut c = p.claims(target);
    c.kind = Kind::Serial;
    p.signer.sign(&c)
}

/// Waits until exactly `n` recordings in `dir` are finished (intact) and returns them.
async fn finished(dir: &Path, n: usize) -> Vec<PathBuf> {
    let what = format!("{n} finished recordings in {}", dir.display());
    wait_for(&what, LIMIT, || {
        let files: Vec<PathBuf> = store::list(dir)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        let intact = files
            .iter()
            .filter(|p| verify_file(p).is_ok_and(|r| r.integrity.is_intact()))
            .count();
        std::future::ready((files.len() == n && intact == n).then_some(files))
    })
    .await
}

/// Reads the `n` bytes the console server sent, as the browser gets them.
async fn browser_reads<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, n: usize) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    read_binary(ws, n).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_serial_session_through_the_proxy_is_recorded_whole_with_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let p = recording_proxy(tmp.path(), |_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&serial_ticket(&p, target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"login: ").await.unwrap();
    assert_eq!(browser_reads(&mut ws, 7).await, b"login: ");
    ws.send(Message::binary(b"root\r".to_vec())).await.unwrap();
    let mut got = [0u8; 5];
    tcp.read_exact(&mut got).await.unwrap();
    // "é" split across two reads of the console.
    tcp.write_all(b"caf\xc3").await.unwrap();
    tcp.flush().await.unwrap();
    browser_reads(&mut ws, 4).await;
    tcp.write_all(b"\xa9\r\n").await.unwrap();
    browser_reads(&mut ws, 3).await;
    ws.close(None).await.unwrap();
    let files = finished(tmp.path(), 1).await;
    assert!(files[0].extension().is_some_and(|e| e == "cast"));
    let bytes = std::fs::read(&files[0]).unwrap();
    let (header, events) = consolegate::recording::cast::read_all(&bytes).unwrap();
    assert_eq!(header["consolegate"]["kind"], "serial");
    assert_eq!(header["consolegate"]["sub"], "alice");
    assert_eq!(
        header["consolegate"]["address"],
        target.to_string().as_str()
    );
    let text = |code: &str| -> String {
        events
            .iter()
            .filter_map(|e| match e {
                consolegate::recording::cast::Event::Data { code: c, data, .. } if c == code => {
                    Some(data.as_str())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(text("o"), "login: café\r\n");
    assert_eq!(text("i"), "root\r");
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "mode {mode:o}");
}

#[tokio::test]
async fn a_vnc_session_is_recorded_as_the_browser_saw_it_without_the_auth_response() {
    let tmp = tempfile::tempdir().unwrap();
    let p = recording_proxy(tmp.path(), |_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    let response = [
        0x5Au8, 0xC3, 0x11, 0x99, 0x01, 0x7E, 0x42, 0xF0, 0x0D, 0x60, 0xB5, 0x28, 0xE1, 0x3C, 0x87,
        0x14,
    ];
    let mut seen = Vec::new();
    tcp.write_all(b"RFB 003.008\n").await.unwrap();
    seen.extend(browser_reads(&mut ws, 12).await);
    ws.send(Message::binary(b"RFB 003.008\n".to_vec()))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    tcp.read_exact(&mut buf[..12]).await.unwrap();
    tcp.write_all(&[1, 2]).await.unwrap();
    seen.extend(browser_reads(&mut ws, 2).await);
    ws.send(Message::binary(vec![2])).await.unwrap();
    tcp.read_exact(&mut buf[..1]).await.unwrap();
    tcp.write_all(&[0x77; 16]).await.unwrap();
    seen.extend(browser_reads(&mut ws, 16).await);
    ws.send(Message::binary(response.to_vec())).await.unwrap();
    tcp.read_exact(&mut buf[..16]).await.unwrap();
    assert_eq!(buf[..16], response, "the server got the response");
    tcp.write_all(&[0, 0, 0, 0]).await.unwrap();
    seen.extend(browser_reads(&mut ws, 4).await);
    // ClientInit and a key press.
    ws.send(Message::binary(vec![1, 4, 1, 0, 0, 0, 0, 0, 0x61]))
        .await
        .unwrap();
    tcp.read_exact(&mut buf[..9]).await.unwrap();
    ws.close(None).await.unwrap();
    let files = finished(tmp.path(), 1).await;
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(
        !bytes.windows(16).any(|w| w == response),
        "the VNC authentication response is in the recording"
    );
    let (mut r, header) = consolegate::recording::vnc::Reader::open(bytes.as_slice()).unwrap();
    assert_eq!(header["kind"], "vnc");
    let mut server = Vec::new();
    let mut client = Vec::new();
    let mut withheld = 0;
    while let Some(rec) = r.next_record().unwrap() {
        match rec {
            consolegate::recording::vnc::Record::Server { bytes, .. } => server.extend(bytes),
            consolegate::recording::vnc::Record::Client { bytes, .. } => client.extend(bytes),
            consolegate::recording::vnc::Record::Redacted { withheld: n, .. } => withheld += n,
            consolegate::recording::vnc::Record::Trailer { .. } => {}
        }
    }
    assert_eq!(server, seen);
    assert_eq!(withheld, 16);
    let mut expected_client = b"RFB 003.008\n".to_vec();
    expected_client.extend([2, 1, 4, 1, 0, 0, 0, 0, 0, 0x61]);
    assert_eq!(client, expected_client);
}

#[tokio::test]
async fn a_recording_directory_that_cannot_be_written_refuses_the_session_with_503() {
    // Tests run as root, for whom permission bits mean nothing: /proc/self is a
    // directory nobody can create files in.
    let p = recording_proxy(Path::new("/proc/self"), |_| {}).await;
    let (target, _accepted) = one_shot_target().await;
    let (status, body) = refused(&p.url(&p.ticket(target))).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot record"), "{body}");
    assert!(!body.contains("/proc"), "no paths for the browser: {body}");
}

#[tokio::test]
async fn a_free_space_floor_above_what_is_free_refuses_the_session_with_503() {
    let tmp = tempfile::tempdir().unwrap();
    let p = recording_proxy(tmp.path(), |a| {
        a.recording_min_free = Some("16000000T".into());
    })
    .await;
    let (target, _accepted) = one_shot_target().await;
    let (status, body) = refused(&p.url(&serial_ticket(&p, target))).await;
    assert_eq!(status, 503, "{body}");
    assert!(store::list(tmp.path()).unwrap().is_empty());
    assert!(p
        .proxy
        .metrics()
        .render()
        .contains("consolegate_refusals_total{code=\"recording_unavailable\"} 1"));
}

#[tokio::test]
async fn spice_sessions_that_must_be_recorded_are_refused_with_their_own_code() {
    let tmp = tempfile::tempdir().unwrap();
    let p = recording_proxy(tmp.path(), |_| {}).await;
    let (target, _accepted) = one_shot_target().await;
    let mut c = p.claims(target);
    c.kind = Kind::Spice;
    let (status, body) = refused(&p.url(&p.signer.sign(&c))).await;
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("SPICE consoles cannot be recorded"), "{body}");
    assert!(p.proxy.metrics().render().contains("recording_unsupported"));
}

#[tokio::test]
async fn a_recording_file_removed_mid_session_ends_the_session_with_a_readable_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let p = recording_proxy(tmp.path(), |_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&serial_ticket(&p, target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"$ ").await.unwrap();
    browser_reads(&mut ws, 2).await;
    let files = store::list(tmp.path()).unwrap();
    assert_eq!(files.len(), 1);
    std::fs::remove_file(&files[0].path).unwrap();
    // Nothing flows: the writer notices on its own within a second or two.
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("recording file was removed"), "{reason}");
    assert!(p
        .proxy
        .metrics()
        .render()
        .contains("consolegate_recordings_failed_total 1"));
}

#[tokio::test]
async fn retention_prunes_the_oldest_recordings_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let old = [
        "20200101T000000Z-1-aaaaaa.vncrec",
        "20200102T000000Z-2-bbbbbb.cast",
        "20200103T000000Z-3-cccccc.vncrec",
    ];
    for name in old {
        std::fs::write(tmp.path().join(name), vec![0u8; 1000]).unwrap();
    }
    let p = recording_proxy(tmp.path(), |a| {
        a.recording_max_size = Some("1500".into());
    })
    .await;
    wait_until("retention to leave only the newest", LIMIT, || {
        let left: Vec<String> = store::list(tmp.path())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        left == [old[2]]
    })
    .await;
    assert!(p
        .proxy
        .metrics()
        .render()
        .contains("consolegate_recordings_pruned_total 2"));
}

#[tokio::test]
async fn the_admin_listener_lists_and_streams_recordings_with_the_token_only() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rec_dir = tmp.path().join("recordings");
    let tf = token_file.clone();
    let p = recording_proxy(&rec_dir, move |a| a.admin_token_file = Some(tf)).await;
    let admin = Admin::new(p.proxy.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(admin.serve(listener));

    let (target, accepted) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&serial_ticket(&p, target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"hello").await.unwrap();
    browser_reads(&mut ws, 5).await;
    ws.close(None).await.unwrap();
    let files = finished(&rec_dir, 1).await;
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();

    let a = request(&url, Method::GET, "/recordings", None, None)
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = request(
        &url,
        Method::GET,
        &format!("/recordings/{name}"),
        Some("wrong-token-wrong-token-wrong"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    let a = request(&url, Method::GET, "/recordings", Some(TOKEN), None)
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let list: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["format"], "asciicast");
    assert_eq!(list[0]["active"], false);
    assert_eq!(list[0]["session"]["sub"], "alice");

    let a = request(
        &url,
        Method::GET,
        &format!("/recordings/{name}"),
        Some(TOKEN),
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.as_bytes(), std::fs::read(&files[0]).unwrap());

    for bad in [
        "/recordings/..%2Fadmin.token",
        "/recordings/admin.token",
        "/recordings/20200101T000000Z-1-aaaaaa.cast",
    ] {
        let a = request(&url, Method::GET, bad, Some(TOKEN), None)
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{bad}");
    }
    // The public listener never serves recordings.
    let a = request(
        &format!("http://{}", p.addr),
        Method::GET,
        &format!("/recordings/{name}"),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rec_ticket_on_a_proxy_without_recording_is_refused_with_503_and_the_check_says_so() {
    let p = TestProxy::start(|_| {}).await;
    let (target, _accepted) = one_shot_target().await;
    let ticket = p.signer.sign(&p.claims(target).with_rec(true));
    let (status, body) = refused(&p.url(&ticket)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("does not record sessions"), "{body}");
    let check = preflight_check(p.addr, &ticket).await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["code"], "recording_unavailable");
    assert_eq!(check["status"], 503);
}

#[tokio::test]
async fn with_policy_ticket_only_rec_tickets_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let p = recording_proxy(tmp.path(), |a| {
        a.recording_policy = Some("ticket".into());
    })
    .await;
    for rec in [false, true] {
        let (target, accepted) = one_shot_target().await;
        let mut c = p.claims(target).with_rec(rec);
        c.kind = Kind::Serial;
        let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&p.signer.sign(&c)))
            .await
            .unwrap();
        let mut tcp = accepted.await.unwrap();
        tcp.write_all(if rec { b"recorded" } else { b"not rec." })
            .await
            .unwrap();
        browser_reads(&mut ws, 8).await;
        ws.close(None).await.unwrap();
        drop(tcp);
    }
    let files = finished(tmp.path(), 1).await;
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(bytes.windows(8).any(|w| w == b"recorded"));
    assert!(!bytes.windows(8).any(|w| w == b"not rec."));
}

//! View-only tickets (`view: true`), enforced by the proxy whatever the browser does:
//! a WebSocket client with a view ticket against a console server that records what
//! it receives.
//!
//! - VNC: every input message type the browser sends (keys, pointer in both forms,
//!   clipboard in both forms, QEMU's extended keys, SetDesktopSize, XVP) is dropped,
//!   every message a viewer needs arrives whole and in order, however the messages
//!   are split across or packed into WebSocket messages; ClientInit's `shared` flag
//!   arrives as 1; an unknown or malformed message ends the session with a reason of
//!   its own (fail closed).
//! - Against QEMU: a watcher asking for an exclusive session does not take the console
//!   from its user, also when the proxy speaks VeNCrypt to QEMU (the filter then works
//!   on the plain RFB the browser speaks).
//! - Serial: the browser's bytes are dropped; the console's reach the browser.
//! - SPICE: a view ticket is refused before the upgrade (`view_unsupported`).
//! - A recorded view-only session records no input.
//!
//! The QEMU tests print a `SKIPPED:` line and pass without `qemu-system-x86_64` (and
//! `openssl` for VeNCrypt), except under CI (`CI=true`), where they fail.

mod common;

use common::pki::{self, Key, Pki};
use common::qemu::{Display, Qemu};
use common::rfb::{framebuffer_update, msg, vnc_response, RfbBrowser, RfbServer, Sec};
use common::*;
use consolegate::recording::store;
use consolegate::recording::verify::verify_file;
use consolegate::ticket::{Kind, TargetTls};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "view-Pw9";

fn view_ticket(p: &TestProxy, target: SocketAddr) -> String {
    p.signer.sign(&p.claims(target).with_view(true))
}

/// Every input message type a browser can send, noVNC's and the extensions'.
fn input_messages() -> Vec<Vec<u8>> {
    vec![
        msg::key_event(true, 0x72),
        msg::key_event(false, 0x72),
        msg::pointer_event(1, 10, 20),
        msg::pointer_event(0, 11, 21),
        msg::client_cut_text(b"sudo reboot\n"),
        msg::extended_clipboard(&[0x10, 0, 0, 1, 0, 0, 0, 5, b'x', b'y']),
        msg::qemu_key_event(true, 0xFFE3, 0x1D),
        msg::qemu_key_event(false, 0xFFE3, 0x1D),
        msg::set_desktop_size(1920, 1080),
        msg::xvp(2),
        msg::xvp(3),
        msg::xvp(4),
        // Sent after the browser asked for ExtendedMouseButtons (see below).
        msg::extended_pointer_event(1, 0, 5, 5),
        msg::extended_pointer_event(0, 2, 6, 6),
    ]
}

/// Every message a viewer needs, in the order they go out (SetEncodings first: it
/// asks for ExtendedMouseButtons, which makes the extended pointer events 7 bytes).
fn viewer_messages() -> Vec<Vec<u8>> {
    vec![
        msg::novnc_encodings(),
        msg::set_pixel_format(),
        msg::fb_update_request(false, 0),
        msg::enable_continuous_updates(true),
        msg::fence(0x8000_0003, b"fence-payload"),
        msg::fence(0, b""),
        msg::qemu_audio(2),
        msg::qemu_audio(0),
        msg::qemu_audio(1),
        msg::fb_update_request(true, 1),
        msg::enable_continuous_updates(false),
    ]
}

/// The viewer's messages with input messages between them (all input after the first
/// viewer message, SetEncodings), and the viewer's alone: what must arrive.
fn mixed() -> (Vec<Vec<u8>>, Vec<u8>) {
    let viewer = viewer_messages();
    let mut input = input_messages().into_iter();
    let mut all = Vec::new();
    let mut expected = Vec::new();
    for v in viewer {
        expected.extend_from_slice(&v);
        all.push(v);
        for _ in 0..2 {
            if let Some(i) = input.next() {
                all.push(i);
            }
        }
    }
    all.extend(input);
    (all, expected)
}

/// The ways the same stream of messages reaches the proxy: one WebSocket message per
/// RFB message, all in one, and cut at every few bytes, across message boundaries.
fn layouts(messages: &[Vec<u8>]) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let joined: Vec<u8> = messages.concat();
    let cut = |sizes: &[usize]| {
        let mut out = Vec::new();
        let mut rest = &joined[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*size).min(rest.len());
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        out
    };
    vec![
        ("one WebSocket message per RFB message", messages.to_vec()),
        ("all in one WebSocket message", vec![joined.clone()]),
        ("1 to 3 bytes per WebSocket message", cut(&[1, 2, 3])),
        ("5, 7 and 13 bytes per WebSocket message", cut(&[5, 7, 13])),
    ]
}

/// A browser through the handshake with the test server (ClientInit `shared`).
async fn connected(url: &str, server: &mut RfbServer, shared: u8) -> (RfbBrowser, ServerSide) {
    let mut b = RfbBrowser::open(url).await;
    b.security(|_| vec![0xAB; 16]).await;
    let (w, h) = b.init(shared).await;
    assert_eq!((w, h), (common::rfb::WIDTH, common::rfb::HEIGHT));
    let conn = server.accepted().await;
    (b, conn)
}

type ServerSide = common::rfb::ServerConn;

#[tokio::test]
async fn a_view_session_forwards_no_input_and_every_message_a_viewer_needs() {
    let p = TestProxy::start(|_| {}).await;
    let mut server = RfbServer::start(Sec::VncAuth).await;
    let url = p.url(&view_ticket(&p, server.addr));
    // An exclusive ClientInit (0): the proxy asks to share all the same.
    let (mut b, conn) = connected(&url, &mut server, 0).await;
    assert_eq!(conn.shared, 1, "ClientInit's shared flag is forced to 1");

    // The console's bytes reach the watcher.
    let update = framebuffer_update(3, [1, 2, 3, 0]);
    conn.send(&update);
    assert_eq!(b.read(update.len()).await, update);

    let (messages, expected) = mixed();
    for (i, (layout, frames)) in layouts(&messages).into_iter().enumerate() {
        let before = conn.received().len();
        for f in &frames {
            b.send(f).await;
        }
        // A last update request, unique to this layout: once it is in, everything
        // sent before it has been through the proxy.
        let sentinel = msg::fb_update_request(true, 1000 + i as u16);
        b.send(&sentinel).await;
        let got = conn.received_through(&sentinel).await;
        let mut want = expected.clone();
        want.extend_from_slice(&sentinel);
        assert_eq!(
            got[before..],
            want[..],
            "{layout}: the console server got exactly the viewer's messages"
        );
    }
    // Still up: the console's bytes still reach the watcher.
    conn.send(&update);
    assert_eq!(b.read(update.len()).await, update);
}

#[tokio::test]
async fn without_view_every_message_arrives_as_sent() {
    // The same stream through an ordinary ticket: the test server sees the input, so
    // its absence above is the filter's doing.
    let p = TestProxy::start(|_| {}).await;
    let mut server = RfbServer::start(Sec::None).await;
    let url = p.url(&p.ticket(server.addr));
    let (mut b, conn) = connected(&url, &mut server, 0).await;
    assert_eq!(conn.shared, 0, "ClientInit as the browser sent it");
    let (messages, _) = mixed();
    let all = messages.concat();
    b.send(&all).await;
    let sentinel = msg::fb_update_request(true, 999);
    b.send(&sentinel).await;
    let got = conn.received_through(&sentinel).await;
    assert_eq!(got[..all.len()], all[..]);
}

#[tokio::test]
async fn an_unknown_or_malformed_message_ends_a_view_session_with_its_own_reason() {
    let p = TestProxy::start(|_| {}).await;
    let mut server = RfbServer::start(Sec::None).await;
    let mut too_many = msg::set_encodings(&[0; 1025]);
    too_many.truncate(8);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![99, 0, 0, 0], "RFB message type 99"),
        (vec![1, 0, 0, 0, 0, 0], "RFB message type 1"),
        (vec![253, 0, 0, 0], "RFB message type 253"),
        (vec![255, 7, 0, 0], "QEMU message subtype 7"),
        (vec![255, 1, 0, 9], "QEMU audio operation 9"),
        (too_many, "1025 encodings"),
        (
            vec![6, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF],
            "clipboard message claims 2147483647 bytes",
        ),
        (vec![248, 0, 0, 0, 0, 0, 0, 0, 200], "200-byte payload"),
    ];
    for (bad, reason) in cases {
        let url = p.url(&view_ticket(&p, server.addr));
        let (mut b, conn) = connected(&url, &mut server, 1).await;
        let before = msg::fb_update_request(true, 7);
        b.send(&before).await;
        conn.received_through(&before).await;
        // The bad message, then an update request and a key in the same breath:
        // nothing after the bad message is forwarded.
        let mut after = bad.clone();
        after.extend_from_slice(&msg::fb_update_request(true, 8));
        after.extend_from_slice(&msg::key_event(true, 0x61));
        b.send(&after).await;
        let (code, said) = b.closed().await;
        assert_eq!(code, 1008, "{bad:?}: {said}");
        assert!(
            said.starts_with("view only: ") && said.contains(reason),
            "{bad:?}: {said}"
        );
        conn.wait_closed().await;
        assert_eq!(conn.received(), before, "{bad:?}: only what came before");
    }
}

#[tokio::test]
async fn a_view_session_whose_browser_picks_a_security_type_the_proxy_cannot_follow_ends() {
    // VeNCrypt chosen by the browser itself would hide the rest of the session from
    // the filter: the session ends instead.
    let p = TestProxy::start(|_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let mut b = RfbBrowser::open(&p.url(&view_ticket(&p, target))).await;
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"RFB 003.008\n").await.unwrap();
    assert_eq!(b.read(12).await, b"RFB 003.008\n");
    b.send(b"RFB 003.008\n").await;
    let mut version = [0u8; 12];
    tcp.read_exact(&mut version).await.unwrap();
    tcp.write_all(&[2, 19, 2]).await.unwrap();
    assert_eq!(b.read(3).await, [2, 19, 2]);
    b.send(&[19]).await;
    let (code, reason) = b.closed().await;
    assert_eq!(code, 1008);
    assert!(reason.contains("security type 19"), "{reason}");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(LIMIT, tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "the choice reached the server: {got:?}");
}

#[tokio::test]
async fn a_serial_view_session_shows_the_console_and_drops_every_browser_byte() {
    let p = TestProxy::start(|a| a.allow_serial_port = vec!["1-65535".into()]).await;
    let (target, accepted) = one_shot_target().await;
    let mut claims = p.claims(target).with_view(true);
    claims.kind = Kind::Serial;
    let mut b = RfbBrowser::open(&p.url(&p.signer.sign(&claims))).await;
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"login: ").await.unwrap();
    assert_eq!(b.read(7).await, b"login: ");
    for typed in [&b"root\r"[..], b"\x03", b"shutdown -h now\r", &[0u8; 4096]] {
        b.send(typed).await;
    }
    // The console keeps talking, and the watcher keeps seeing it.
    tcp.write_all(b"\r\nPassword: ").await.unwrap();
    assert_eq!(b.read(12).await, b"\r\nPassword: ");
    close_politely(&mut b.ws).await;
    let mut got = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut got))
        .await
        .expect("the proxy closes the console connection")
        .unwrap();
    assert!(got.is_empty(), "the console got {got:?}");
}

#[tokio::test]
async fn a_spice_view_ticket_is_refused_before_the_upgrade_with_a_reason() {
    let p = TestProxy::start(|a| a.allow_spice_port = vec!["1-65535".into()]).await;
    let (target, _accepted) = one_shot_target().await;
    let mut claims = p.claims(target).with_view(true);
    claims.kind = Kind::Spice;
    let ticket = p.signer.sign(&claims);
    let (status, body) = refused(&p.url(&ticket)).await;
    assert_eq!(status, 501, "{body}");
    assert!(
        body.contains("a SPICE console cannot be watched view-only"),
        "{body}"
    );
    let check = preflight_check(p.addr, &ticket).await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["code"], "view_unsupported");
    // The same SPICE console without `view` is admitted: the refusal is the claim's.
    let mut claims = p.claims(target);
    claims.kind = Kind::Spice;
    assert_eq!(
        preflight_check(p.addr, &p.signer.sign(&claims)).await["ok"],
        true
    );
}

#[tokio::test]
async fn a_recorded_view_session_records_the_screen_and_no_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let p = TestProxy::start(move |a| {
        a.recording_dir = Some(dir);
        a.recording_policy = Some("all".into());
        a.recording_min_free = Some("0".into());
    })
    .await;
    let mut server = RfbServer::start(Sec::None).await;
    let url = p.url(&view_ticket(&p, server.addr));
    let (mut b, conn) = connected(&url, &mut server, 0).await;
    let update = framebuffer_update(1, [9, 9, 9, 0]);
    conn.send(&update);
    b.read(update.len()).await;
    let (messages, expected) = mixed();
    b.send(&messages.concat()).await;
    let sentinel = msg::fb_update_request(true, 77);
    b.send(&sentinel).await;
    conn.received_through(&sentinel).await;
    close_politely(&mut b.ws).await;

    let file: PathBuf = wait_for("the finished recording", LIMIT, || {
        let files = store::list(tmp.path()).unwrap();
        let done = files.first().filter(|_| files.len() == 1).and_then(|f| {
            verify_file(&f.path)
                .is_ok_and(|r| r.integrity.is_intact())
                .then(|| f.path.clone())
        });
        std::future::ready(done)
    })
    .await;
    let bytes = std::fs::read(&file).unwrap();
    let (mut r, header) = consolegate::recording::vnc::Reader::open(bytes.as_slice()).unwrap();
    assert_eq!(header["view"], true, "{header}");
    let mut client = Vec::new();
    let mut server_bytes = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        match rec {
            consolegate::recording::vnc::Record::Client { bytes, .. } => client.extend(bytes),
            consolegate::recording::vnc::Record::Server { bytes, .. } => server_bytes.extend(bytes),
            _ => {}
        }
    }
    let mut want = b"RFB 003.008\n".to_vec();
    want.extend([1, 1]); // the security choice, then ClientInit as forwarded
    want.extend_from_slice(&expected);
    want.extend_from_slice(&sentinel);
    assert_eq!(
        client, want,
        "the recording holds what was forwarded, no input"
    );
    assert!(server_bytes.ends_with(&update));
}

// ------------------------------------------------------------------ QEMU

/// QEMU's VNC with a password (and VeNCrypt with `x509`), or `None` after a visible
/// skip.
async fn qemu_vnc(x509: Option<&std::path::Path>) -> Option<Qemu> {
    if !tools::have(&["qemu-system-x86_64"]) {
        return None;
    }
    Some(
        Qemu::start(Display::Vnc {
            x509,
            password: Some(PASSWORD),
        })
        .await,
    )
}

/// Through the handshake with QEMU (VNC authentication with the password).
async fn qemu_session(url: &str, shared: u8) -> RfbBrowser {
    let mut b = RfbBrowser::open(url).await;
    assert_eq!(
        b.security(|c| vnc_response(c, PASSWORD)).await,
        Sec::VncAuth
    );
    let (w, h) = b.init(shared).await;
    assert!(w > 0 && h > 0, "framebuffer {w}x{h}");
    b
}

/// Asks for the whole screen and reads the FramebufferUpdate: the session is up and
/// QEMU answers it.
async fn answered(b: &mut RfbBrowser) {
    b.send(&msg::fb_update_request(false, 0)).await;
    assert!(
        b.read_update().await > 0,
        "a FramebufferUpdate with rectangles"
    );
}

/// A user, a watcher asking for an exclusive session through a view ticket, and then
/// an ordinary session asking for one: QEMU's default share policy (allow-exclusive)
/// disconnects everyone else for the latter, and for the watcher it must not. Each
/// session has a ticket of its own (another `jti`), as each person would.
async fn watcher_keeps_the_user(p: &TestProxy, q: &Qemu, tls: TargetTls) {
    let url = |view: bool| {
        p.url(
            &p.signer
                .sign(&p.claims(q.addr()).with_tls(tls).with_view(view)),
        )
    };
    let mut user = qemu_session(&url(false), 1).await;
    answered(&mut user).await;

    let mut watcher = qemu_session(&url(true), 0).await;
    answered(&mut watcher).await;
    // The watcher types, clicks and asks for a reset; the user's session stays.
    let mut input = msg::key_event(true, 0xFF1B);
    input.extend(msg::key_event(false, 0xFF1B));
    input.extend(msg::pointer_event(1, 3, 3));
    input.extend(msg::xvp(4));
    watcher.send(&input).await;
    answered(&mut watcher).await;
    answered(&mut user).await;

    // The control: an ordinary exclusive session does push the others off.
    let _intruder = qemu_session(&url(false), 0).await;
    // QEMU just closes the connection (inside TLS without a close_notify: 1011).
    let (code, reason) = user.closed().await;
    assert!(
        matches!(code, 1000 | 1011),
        "QEMU disconnected the user for an exclusive session: {code} {reason}"
    );
    watcher.closed().await;
}

#[tokio::test]
async fn a_watcher_asking_for_an_exclusive_session_never_takes_qemus_console_from_its_user() {
    let Some(q) = qemu_vnc(None).await else {
        return;
    };
    let p = TestProxy::start(|_| {}).await;
    watcher_keeps_the_user(&p, &q, TargetTls::None).await;
}

#[tokio::test]
async fn through_vencrypt_the_filter_works_on_the_plain_rfb_the_browser_speaks() {
    if !tools::have(&["openssl"]) {
        return;
    }
    let pki = Pki::new();
    pki.self_signed("ca", "consolegate view ca", Key::Ec, pki::CA);
    pki.issue(
        "server",
        "ca",
        "127.0.0.1",
        Key::Ec,
        &pki::server_extensions("IP:127.0.0.1"),
    );
    pki.issue("client", "ca", "consolegate", Key::Ec, pki::CLIENT);
    let x509 = pki.path("qemu");
    std::fs::create_dir_all(&x509).unwrap();
    for f in ["ca-cert.pem", "server-cert.pem", "server-key.pem"] {
        std::fs::copy(pki.path(f), x509.join(f)).unwrap();
    }
    let Some(q) = qemu_vnc(Some(&x509)).await else {
        return;
    };
    let (ca, cert, key) = (pki.cert("ca"), pki.cert("client"), pki.key("client"));
    let p = TestProxy::start(move |a| {
        a.backend_ca = Some(ca);
        a.backend_client_cert = Some(cert);
        a.backend_client_key = Some(key);
    })
    .await;
    watcher_keeps_the_user(&p, &q, TargetTls::Vencrypt).await;

    // An unknown message from a VeNCrypt watcher ends its session with its reason.
    let claims = p.claims(q.addr()).with_tls(TargetTls::Vencrypt);
    let mut watcher = qemu_session(&p.url(&p.signer.sign(&claims.with_view(true))), 1).await;
    answered(&mut watcher).await;
    watcher.send(&[77, 0, 0, 0]).await;
    let (code, reason) = watcher.closed().await;
    assert_eq!(code, 1008);
    assert!(reason.contains("RFB message type 77"), "{reason}");
}

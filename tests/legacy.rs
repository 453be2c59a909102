//! Drop-in credentials end to end: oVirt engine tickets made by an independent Python
//! encoder (tests/ovirt_ticket.py, `cryptography`) with an engine CA and certificate
//! made by `openssl`, and websockify token directories written the way OpenNebula and
//! Abiquo write them, through a real proxy to a real VNC server (QEMU) or stand-ins.

mod common;

use common::pki::{self, Key, Pki};
use common::qemu::{Display, Qemu};
use common::*;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// An engine CA, an engine certificate it signed, and an attacker's self-signed
/// certificate with the engine's name: made once per test binary.
fn engine_pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let pki = Pki::new();
        pki.self_signed("ca", "Test Engine CA", Key::Rsa, pki::CA);
        pki.issue("engine", "ca", "engine.test", Key::Rsa, "");
        pki.self_signed("attacker", "engine.test", Key::Rsa, "");
        pki
    })
}

/// What the engine tickets need: openssl for the certificates, python3 with
/// `cryptography` for the independent encoder. False (after a visible skip) without.
fn have_engine_tools() -> bool {
    tools::have(&["openssl", "python3"]) && tools::have_python_module("cryptography")
}

/// Runs tests/ovirt_ticket.py and returns the ticket it prints.
fn encoder(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ovirt_ticket.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "ovirt_ticket.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A ticket signed by the engine for `target`, with extra encoder flags.
fn engine_ticket(target: SocketAddr, extra: &[&str]) -> String {
    let pki = engine_pki();
    let (key, cert) = (
        path_text(&pki.key("engine")),
        path_text(&pki.cert("engine")),
    );
    let (host, port) = (target.ip().to_string(), target.port().to_string());
    let mut args = vec![
        "sign", "--key", &key, "--cert", &cert, "--host", &host, "--port", &port,
    ];
    args.extend_from_slice(extra);
    encoder(&args)
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

async fn ovirt_proxy() -> TestProxy {
    let cert = engine_pki().cert("engine");
    TestProxy::start(move |a| a.ovirt_certificate = Some(cert)).await
}

/// Opens a session and returns the first bytes the console server sent.
async fn first_bytes(url: &str) -> Vec<u8> {
    let (mut ws, resp) = timeout(LIMIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    loop {
        match timeout(LIMIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => return b.to_vec(),
            Some(Ok(_)) => continue,
            other => panic!("no console bytes: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_genuine_engine_ticket_reaches_a_real_qemu_vnc_server() {
    if !(have_engine_tools() && tools::have(&["qemu-system-x86_64"])) {
        return;
    }
    let qemu = Qemu::start(Display::Vnc {
        x509: None,
        password: None,
    })
    .await;
    let p = ovirt_proxy().await;
    let ticket = engine_ticket(qemu.addr(), &[]);
    assert!(
        ticket.len() > 2000,
        "the ticket carries the engine certificate"
    );
    // The path after the first `/` is the whole ticket, `/` and `+` included.
    let bytes = first_bytes(&format!("ws://{}/{ticket}", p.addr)).await;
    assert_eq!(bytes, b"RFB 003.008\n");
}

#[tokio::test]
async fn a_percent_encoded_engine_ticket_connects_and_passes_the_pre_flight_check() {
    if !have_engine_tools() {
        return;
    }
    let (target, accepted) = one_shot_target().await;
    let p = ovirt_proxy().await;
    let ticket = engine_ticket(target, &[]);
    let check = preflight_check(p.addr, &ticket).await;
    assert_eq!(check["ok"], true, "{check}");
    let escaped = ticket
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let (_ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/{escaped}", p.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    timeout(LIMIT, accepted).await.unwrap().unwrap();
}

async fn refusal_of(p: &TestProxy, ticket: &str) -> (u16, String) {
    refused(&format!("ws://{}/{ticket}", p.addr)).await
}

#[tokio::test]
async fn the_salt_absorption_forgery_is_refused_for_choosing_its_signed_fields() {
    if !have_engine_tools() {
        return;
    }
    let p = ovirt_proxy().await;
    let target: SocketAddr = "127.0.0.1:5901".parse().unwrap();
    let genuine = engine_ticket(target, &[]);
    let forged = encoder(&[
        "forge-absorb",
        "--ticket",
        &genuine,
        "--host",
        "127.0.0.1",
        "--port",
        "22",
    ]);
    let (status, body) = refusal_of(&p, &forged).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signedFields \"salt\" is refused"), "{body}");
}

#[tokio::test]
async fn a_ticket_carrying_an_attackers_certificate_is_refused() {
    if !have_engine_tools() {
        return;
    }
    let p = ovirt_proxy().await;
    let pki = engine_pki();
    let (key, cert) = (
        path_text(&pki.key("attacker")),
        path_text(&pki.cert("attacker")),
    );
    let forged = encoder(&[
        "sign",
        "--key",
        &key,
        "--cert",
        &cert,
        "--host",
        "127.0.0.1",
        "--port",
        "5901",
    ]);
    let (status, body) = refusal_of(&p, &forged).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("v2_signature does not verify with the engine certificate ovirt:")
            && body.contains("carries another certificate, which is never trusted"),
        "{body}"
    );
}

#[tokio::test]
async fn a_ticket_with_only_the_sha1_signature_is_refused() {
    if !have_engine_tools() {
        return;
    }
    let p = ovirt_proxy().await;
    let t = engine_ticket("127.0.0.1:5901".parse().unwrap(), &["--no-v2", "--v1"]);
    let (status, body) = refusal_of(&p, &t).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("has no v2_signature"), "{body}");
}

#[tokio::test]
async fn a_sha1_only_ticket_connects_when_the_operator_allows_it() {
    if !have_engine_tools() {
        return;
    }
    let (target, accepted) = one_shot_target().await;
    let cert = engine_pki().cert("engine");
    let p = TestProxy::start(move |a| {
        a.ovirt_certificate = Some(cert);
        a.ovirt_allow_sha1 = true;
    })
    .await;
    let t = engine_ticket(target, &["--no-v2", "--v1"]);
    let (_ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/{t}", p.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    timeout(LIMIT, accepted).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_expired_engine_ticket_is_refused() {
    if !have_engine_tools() {
        return;
    }
    let p = ovirt_proxy().await;
    let t = engine_ticket(
        "127.0.0.1:5901".parse().unwrap(),
        &["--start=-600", "--lifetime", "120"],
    );
    let (status, body) = refusal_of(&p, &t).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("ticket expired 4"), "{body}");
}

#[tokio::test]
async fn reordered_or_shortened_signed_fields_are_refused_even_when_the_engine_signed_them() {
    if !have_engine_tools() {
        return;
    }
    let p = ovirt_proxy().await;
    for list in ["data,salt,digest,validFrom,validTo", "salt,data", "data"] {
        let t = engine_ticket(
            "127.0.0.1:5901".parse().unwrap(),
            &["--signed-fields", list],
        );
        let (status, body) = refusal_of(&p, &t).await;
        assert_eq!(status, 401, "{list}: {body}");
        assert!(
            body.contains(&format!("signedFields \"{list}\" is refused")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_engine_ticket_for_a_host_outside_the_target_policy_is_refused_with_403() {
    if !have_engine_tools() {
        return;
    }
    let p = ovirt_proxy().await;
    let t = engine_ticket("10.0.0.9:5901".parse().unwrap(), &[]);
    let (status, body) = refusal_of(&p, &t).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("target 10.0.0.9:5901 is outside the allowed targets"),
        "{body}"
    );
}

#[tokio::test]
async fn an_ssl_target_ticket_asks_for_tls_and_is_refused_without_a_console_ca() {
    if !have_engine_tools() {
        return;
    }
    // ssl_target maps to `tls: "tls"`; this proxy has no [backend_tls] CA, so it must
    // refuse rather than fall back to plain TCP.
    let p = ovirt_proxy().await;
    let t = engine_ticket("127.0.0.1:5901".parse().unwrap(), &["--ssl-target"]);
    let (status, body) = refusal_of(&p, &t).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("not set up to reach console servers over")
            && body.contains("ca is not configured"),
        "{body}"
    );
}

#[tokio::test]
async fn ed25519_tickets_still_work_with_ovirt_tickets_on() {
    if !have_engine_tools() {
        return;
    }
    let (target, accepted) = one_shot_target().await;
    let p = ovirt_proxy().await;
    let (_ws, resp) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    timeout(LIMIT, accepted).await.unwrap().unwrap();
}

/// A token directory as OpenNebula Sunstone writes it: one file per VM, named
/// `one-<vm id>`, holding `<token>: <host>:<port>`.
fn write_token(dir: &Path, vm: u32, token: &str, target: SocketAddr) {
    std::fs::write(
        dir.join(format!("one-{vm}")),
        format!("{token}: {}:{}\n", target.ip(), target.port()),
    )
    .unwrap();
}

#[tokio::test]
async fn a_token_directory_connects_listed_tokens_and_refuses_others_with_401() {
    let dir = tempfile::tempdir().unwrap();
    let (target, accepted) = one_shot_target().await;
    write_token(dir.path(), 17, "k3j4h5g6f7d8s9a0q1w2", target);
    // Abiquo's style: one file holding several lines, with a comment.
    std::fs::write(
        dir.path().join("abiquo.tokens"),
        "# written by the Abiquo remote services\nvm-91-token: 10.0.0.9:5901\n",
    )
    .unwrap();
    let src = dir.path().to_path_buf();
    let p = TestProxy::start(move |a| a.token_source = Some(src)).await;
    let url = format!("ws://{}/websockify?token=k3j4h5g6f7d8s9a0q1w2", p.addr);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "binary"
    );
    timeout(LIMIT, accepted).await.unwrap().unwrap();

    let (status, body) = refused(&format!(
        "ws://{}/websockify?token=unlistedtoken0000000",
        p.addr
    ))
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("not listed in the websockify token source"),
        "{body}"
    );
    // The token may also be the path, and the target policy still applies.
    let (status, body) = refused(&format!("ws://{}/vm-91-token", p.addr)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("target 10.0.0.9:5901 is outside the allowed targets"),
        "{body}"
    );
}

#[tokio::test]
async fn an_edited_token_file_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _accepted) = one_shot_target().await;
    write_token(dir.path(), 5, "oldtoken", first);
    let src = dir.path().to_path_buf();
    let p = TestProxy::start(move |a| {
        a.token_source = Some(src);
        a.allow_port = vec!["1024-65535".into()];
        // The test polls with connects until the watcher picks the edit up.
        a.handshakes_per_second_per_client = Some(0.0);
    })
    .await;
    let (second, accepted) = one_shot_target().await;
    // The VM's console moved and got a new token: Sunstone rewrites its file.
    write_token(dir.path(), 5, "newtoken", second);
    let url = format!("ws://{}/websockify?token=newtoken", p.addr);
    let resp = wait_for("the edited token file to be picked up", LIMIT, || async {
        tokio_tungstenite::connect_async(url.as_str()).await.ok()
    })
    .await
    .1;
    assert_eq!(resp.status(), 101);
    timeout(LIMIT, accepted).await.unwrap().unwrap();
    let (status, _) = refused(&format!("ws://{}/websockify?token=oldtoken", p.addr)).await;
    assert_eq!(status, 401);
}

/// Issue 13, finding 4: a token session is identified by a digest of its token, not by
/// the `file:line` that lists it. Rewriting line 1 with another user's token (Alice's
/// moved to line 2) used to make Bob's session "a newer session with the same ticket"
/// and replace Alice's; now each has its own identity, and deleting Alice's line ends
/// her live session as the deny list would.
#[tokio::test]
async fn a_rewritten_token_line_is_another_ticket_and_a_deleted_one_ends_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let console = echo_target().await;
    let line = |token: &str| format!("{token}: {}:{}\n", console.ip(), console.port());
    std::fs::write(&file, line("alice-token-0001")).unwrap();
    let src = file.clone();
    let p = TestProxy::start(move |a| {
        a.token_source = Some(src);
        a.max_sessions_per_ticket = Some(1);
    })
    .await;
    let url = |token: &str| format!("ws://{}/websockify?token={token}", p.addr);
    let mut alice = ws_connect(&url("alice-token-0001"), &[]).await.unwrap();
    echo_once(&mut alice, b"alice").await.unwrap();

    std::fs::write(
        &file,
        line("bob-token-00000002") + &line("alice-token-0001"),
    )
    .unwrap();
    p.proxy.reload().unwrap();
    let mut bob = ws_connect(&url("bob-token-00000002"), &[]).await.unwrap();
    echo_once(&mut bob, b"bob").await.unwrap();
    echo_once(&mut alice, b"alice is still here").await.unwrap();
    let sessions = p.proxy.sessions().list();
    let jtis: Vec<String> = sessions.iter().filter_map(|s| s.jti.clone()).collect();
    assert_eq!(jtis.len(), 2, "{jtis:?}");
    assert_ne!(jtis[0], jtis[1], "two users, one identity: {jtis:?}");
    for jti in &jtis {
        assert!(jti.starts_with("tok:") && !jti.contains("token"), "{jti}");
    }

    // Alice's line is deleted: her live session ends, Bob's runs on.
    std::fs::write(&file, line("bob-token-00000002")).unwrap();
    p.proxy.reload().unwrap();
    let (code, reason) = close_of(&mut alice).await;
    assert_eq!((code, reason.as_str()), (1008, "token no longer listed"));
    echo_once(&mut bob, b"bob is unaffected").await.unwrap();
    assert_eq!(refused(&url("alice-token-0001")).await.0, 401);
}

/// The same without SIGHUP: the watcher's re-read withdraws a token whose line is gone.
#[tokio::test]
async fn a_token_line_deleted_while_its_session_runs_ends_it_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let console = echo_target().await;
    write_token(dir.path(), 7, "vm7-token", console);
    let src = dir.path().to_path_buf();
    let p = TestProxy::start(move |a| a.token_source = Some(src)).await;
    let mut ws = ws_connect(&format!("ws://{}/websockify?token=vm7-token", p.addr), &[])
        .await
        .unwrap();
    echo_once(&mut ws, b"hello").await.unwrap();
    // The VM is gone: Sunstone deletes its file.
    std::fs::remove_file(dir.path().join("one-7")).unwrap();
    let (code, reason) = timeout(LIMIT, close_of(&mut ws)).await.unwrap();
    assert_eq!((code, reason.as_str()), (1008, "token no longer listed"));
}

/// Issue 13, finding 5, for the oVirt engine: a reload that cannot load the engine
/// certificate (replaced after a compromise, and the new file broken) trusts no engine
/// certificate until one loads, rather than keep the old one.
#[tokio::test]
async fn an_engine_certificate_that_no_longer_loads_stops_every_ovirt_ticket() {
    if !have_engine_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("engine.cer");
    std::fs::copy(engine_pki().cert("engine"), &cert).unwrap();
    let path = cert.clone();
    let p = TestProxy::start(move |a| a.ovirt_certificate = Some(path)).await;
    let (target, _accepted) = one_shot_target().await;
    let ticket = engine_ticket(target, &[]);
    assert_eq!(preflight_check(p.addr, &ticket).await["ok"], true);
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let err = p.proxy.reload().unwrap_err();
    assert!(err.to_string().contains("ovirt"), "{err}");
    let check = preflight_check(p.addr, &ticket).await;
    assert_eq!(check["code"], "ovirt_engine_certificate", "{check}");
    assert_eq!(refusal_of(&p, &ticket).await.0, 401);
    // Ed25519 tickets are another part: untouched.
    let (target, _accepted) = one_shot_target().await;
    assert!(ws_connect(&p.url(&p.ticket(target)), &[]).await.is_ok());
    // The certificate restored, oVirt tickets work again.
    std::fs::copy(engine_pki().cert("engine"), &cert).unwrap();
    p.proxy.reload().unwrap();
    assert_eq!(preflight_check(p.addr, &ticket).await["ok"], true);
}

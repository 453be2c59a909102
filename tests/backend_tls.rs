//! Secure console servers end to end: a WebSocket client through the proxy to a real
//! QEMU (VNC with VeNCrypt X.509, SPICE on its TLS port), with certificates made by
//! `openssl` as an administrator would make them.
//!
//! QEMU runs paused (`-S`): its VNC and SPICE servers answer without a guest running.
//! Without `qemu-system-x86_64` or `openssl` these tests print a `SKIPPED:` line and
//! pass, except under CI (`CI=true`), where the setup script installs them and their
//! absence is a failure.

mod common;

use common::pki::{self, Key, Pki};
use common::qemu::{Display, Qemu};
use common::rfb::vnc_response;
use common::*;
use consolegate::ticket::TargetTls;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "tls-Pw7";

// ------------------------------------------------------------------ certificates

/// A console CA, QEMU's server certificate, the proxy's client certificate, and a
/// second CA with its own client certificate that nothing trusts.
fn console_pki() -> Pki {
    let pki = Pki::new();
    pki.self_signed("ca", "consolegate test ca", Key::Ec, pki::CA);
    pki.self_signed("rogue-ca", "consolegate test rogue-ca", Key::Ec, pki::CA);
    let server = pki::server_extensions("IP:127.0.0.1");
    pki.issue("server", "ca", "127.0.0.1", Key::Ec, &server);
    pki.issue("client", "ca", "consolegate", Key::Ec, pki::CLIENT);
    pki.issue(
        "rogue-client",
        "rogue-ca",
        "consolegate",
        Key::Ec,
        pki::CLIENT,
    );
    pki
}

/// QEMU's `x509-dir` / tls-creds-x509 `dir`: ca-cert.pem, server-cert.pem, server-key.pem.
fn qemu_dir(pki: &Pki) -> PathBuf {
    let d = pki.path("qemu");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["ca-cert.pem", "server-cert.pem", "server-key.pem"] {
        std::fs::copy(pki.path(f), d.join(f)).unwrap();
    }
    d
}

/// How the proxy's `[backend_tls]` is set in a test.
#[derive(Clone, Copy)]
enum ProxyCerts {
    /// The right CA and client certificate.
    Good,
    /// The right CA, no client certificate.
    NoClientCert,
    /// The right CA, a client certificate from the rogue CA.
    RogueClientCert,
    /// A CA that did not sign the server's certificate.
    WrongCa,
}

async fn proxy(pki: &Pki, certs: ProxyCerts) -> TestProxy {
    let ca = pki.cert("ca");
    let rogue_ca = pki.cert("rogue-ca");
    let client = (pki.cert("client"), pki.key("client"));
    let rogue = (pki.cert("rogue-client"), pki.key("rogue-client"));
    TestProxy::start(move |a| {
        let (ca, cert) = match certs {
            ProxyCerts::Good => (Some(ca), Some(client)),
            ProxyCerts::NoClientCert => (Some(ca), None),
            ProxyCerts::RogueClientCert => (Some(ca), Some(rogue)),
            ProxyCerts::WrongCa => (Some(rogue_ca), Some(client)),
        };
        a.backend_ca = ca;
        a.backend_client_cert = cert.as_ref().map(|c| c.0.clone());
        a.backend_client_key = cert.map(|c| c.1);
    })
    .await
}

// ------------------------------------------------------------------ QEMU

#[derive(Clone, Copy, PartialEq)]
enum Console {
    /// VNC with tls-creds (verify-peer=yes), with or without a VNC password.
    VencryptVnc { password: bool },
    /// Plain VNC with a password: no VeNCrypt.
    PlainVnc,
    /// SPICE on its TLS port only.
    SpiceTls,
}

async fn qemu(pki: &Pki, console: Console) -> Qemu {
    let x509 = qemu_dir(pki);
    Qemu::start(match console {
        Console::VencryptVnc { password } => Display::Vnc {
            x509: Some(&x509),
            password: password.then_some(PASSWORD),
        },
        Console::PlainVnc => Display::Vnc {
            x509: None,
            password: Some(PASSWORD),
        },
        Console::SpiceTls => Display::SpiceTls {
            x509: &x509,
            password: PASSWORD,
        },
    })
    .await
}

/// The certificates and QEMU serving `console`; `None`, after a visible skip, without
/// QEMU or openssl.
async fn console_server(console: Console) -> Option<(Pki, Qemu)> {
    if !tools::have(&["qemu-system-x86_64", "openssl"]) {
        return None;
    }
    let pki = console_pki();
    let q = qemu(&pki, console).await;
    Some((pki, q))
}

// ------------------------------------------------------------------ the browser side

/// A WebSocket client reading the relayed bytes as one stream, as noVNC does.
struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    buf: Vec<u8>,
}

impl Client {
    async fn open(p: &TestProxy, host: &str, port: u16, tls: TargetTls) -> Client {
        let mut claims = p
            .claims(SocketAddr::from(([127, 0, 0, 1], port)))
            .with_tls(tls);
        claims.host = host.to_string();
        let (ws, resp) = tokio_tungstenite::connect_async(p.url(&p.signer.sign(&claims)))
            .await
            .expect("upgrade");
        assert_eq!(resp.status(), 101);
        Client {
            ws,
            buf: Vec::new(),
        }
    }

    async fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            match timeout(LIMIT, self.ws.next()).await.expect("bytes in time") {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected {n} bytes, have {}: {other:?}", self.buf.len()),
            }
        }
        self.buf.drain(..n).collect()
    }

    async fn send(&mut self, b: &[u8]) {
        self.ws.send(Message::binary(b.to_vec())).await.unwrap();
    }

    /// The close the proxy sent: code and reason.
    async fn closed(mut self) -> (u16, String) {
        loop {
            match timeout(LIMIT, self.ws.next()).await.expect("close in time") {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Binary(b))) => panic!("expected a close, got {} bytes", b.len()),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

/// ClientInit and QEMU's ServerInit: the framebuffer size and the desktop name.
async fn client_init(c: &mut Client) -> (u16, u16) {
    c.send(&[1]).await;
    let init = c.read(24).await;
    let w = u16::from_be_bytes([init[0], init[1]]);
    let h = u16::from_be_bytes([init[2], init[3]]);
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    c.read(name_len).await;
    (w, h)
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn vencrypt_x509vnc_reaches_qemu_and_the_vnc_password_works_end_to_end() {
    let Some((pki, q)) = console_server(Console::VencryptVnc { password: true }).await else {
        return;
    };
    let p = proxy(&pki, ProxyCerts::Good).await;
    let mut c = Client::open(&p, "127.0.0.1", q.port, TargetTls::Vencrypt).await;
    assert_eq!(c.read(12).await, b"RFB 003.008\n");
    c.send(b"RFB 003.008\n").await;
    assert_eq!(
        c.read(2).await,
        [1, 2],
        "one security type: VNC authentication"
    );
    c.send(&[2]).await;
    let challenge = c.read(16).await;
    c.send(&vnc_response(&challenge, PASSWORD)).await;
    assert_eq!(c.read(4).await, [0, 0, 0, 0], "QEMU accepts the password");
    let (w, h) = client_init(&mut c).await;
    assert!(w > 0 && h > 0, "framebuffer {w}x{h}");
}

#[tokio::test]
async fn vencrypt_a_wrong_vnc_password_is_refused_by_qemu_itself() {
    let Some((pki, q)) = console_server(Console::VencryptVnc { password: true }).await else {
        return;
    };
    let p = proxy(&pki, ProxyCerts::Good).await;
    let mut c = Client::open(&p, "127.0.0.1", q.port, TargetTls::Vencrypt).await;
    c.read(12).await;
    c.send(b"RFB 003.008\n").await;
    c.read(2).await;
    c.send(&[2]).await;
    let challenge = c.read(16).await;
    c.send(&vnc_response(&challenge, "wrong")).await;
    assert_ne!(c.read(4).await, [0, 0, 0, 0], "SecurityResult is a failure");
}

#[tokio::test]
async fn vencrypt_x509none_offers_the_browser_security_type_none() {
    let Some((pki, q)) = console_server(Console::VencryptVnc { password: false }).await else {
        return;
    };
    let p = proxy(&pki, ProxyCerts::Good).await;
    let mut c = Client::open(&p, "127.0.0.1", q.port, TargetTls::Vencrypt).await;
    assert_eq!(c.read(12).await, b"RFB 003.008\n");
    c.send(b"RFB 003.008\n").await;
    assert_eq!(c.read(2).await, [1, 1], "one security type: None");
    c.send(&[1]).await;
    assert_eq!(c.read(4).await, [0, 0, 0, 0]);
    let (w, h) = client_init(&mut c).await;
    assert!(w > 0 && h > 0);
}

/// Each failure after the upgrade is a 1011 close with a sentence of its own.
#[tokio::test]
async fn vencrypt_failures_close_with_a_reason_a_person_can_read() {
    let Some((pki, tls_vnc)) = console_server(Console::VencryptVnc { password: true }).await else {
        return;
    };
    let plain_vnc = qemu(&pki, Console::PlainVnc).await;
    for (certs, port, expected) in [
        (
            ProxyCerts::WrongCa,
            tls_vnc.port,
            "the console server's certificate is not trusted (not signed by the proxy's console CA)",
        ),
        (
            ProxyCerts::NoClientCert,
            tls_vnc.port,
            "the console server requires a client certificate; the proxy has none ([backend_tls] client_cert)",
        ),
        (
            ProxyCerts::RogueClientCert,
            tls_vnc.port,
            "the console server refused the proxy's certificate",
        ),
        (
            ProxyCerts::Good,
            plain_vnc.port,
            "the console server does not offer VeNCrypt (it offers VNC authentication)",
        ),
    ] {
        let p = proxy(&pki, certs).await;
        let c = Client::open(&p, "127.0.0.1", port, TargetTls::Vencrypt).await;
        assert_eq!(c.closed().await, (1011, expected.to_string()));
    }
}

#[tokio::test]
async fn tls_reaches_qemus_spice_tls_port_and_spice_bytes_go_through() {
    let Some((pki, q)) = console_server(Console::SpiceTls).await else {
        return;
    };
    let p = proxy(&pki, ProxyCerts::Good).await;
    let mut c = Client::open(&p, "127.0.0.1", q.port, TargetTls::Tls).await;
    // SpiceLinkHeader (magic, version 2.2, size) and SpiceLinkMess for the main channel.
    let mut link = Vec::new();
    link.extend_from_slice(b"REDQ");
    for v in [2u32, 2, 18, 0] {
        link.extend_from_slice(&v.to_le_bytes());
    }
    link.extend_from_slice(&[1, 0]); // channel type main, id 0
    for v in [0u32, 0, 18] {
        link.extend_from_slice(&v.to_le_bytes());
    }
    c.send(&link).await;
    let reply = c.read(16).await;
    assert_eq!(&reply[..4], b"REDQ", "SPICE link reply");
    assert_eq!(
        u32::from_le_bytes([reply[4], reply[5], reply[6], reply[7]]),
        2,
        "SPICE major version"
    );
    let size = u32::from_le_bytes([reply[12], reply[13], reply[14], reply[15]]) as usize;
    let body = c.read(size).await;
    assert_eq!(
        u32::from_le_bytes([body[0], body[1], body[2], body[3]]),
        0,
        "SPICE_LINK_ERR_OK"
    );
}

#[tokio::test]
async fn tls_checks_the_certificate_against_the_tickets_host_name() {
    let Some((pki, q)) = console_server(Console::SpiceTls).await else {
        return;
    };
    let p = proxy(&pki, ProxyCerts::Good).await;
    // The certificate names IP 127.0.0.1, not the DNS name localhost.
    let c = Client::open(&p, "localhost", q.port, TargetTls::Tls).await;
    assert_eq!(
        c.closed().await,
        (
            1011,
            "the console server's certificate is not trusted (not made out to localhost)".into()
        )
    );
    let p = proxy(&pki, ProxyCerts::WrongCa).await;
    let c = Client::open(&p, "127.0.0.1", q.port, TargetTls::Tls).await;
    assert_eq!(
        c.closed().await,
        (1011, "the console server's certificate is not trusted (not signed by the proxy's console CA)".into())
    );
}

#[tokio::test]
async fn secure_tickets_are_refused_before_the_upgrade_without_a_console_ca() {
    let p = TestProxy::start(|_| {}).await;
    let target: SocketAddr = "127.0.0.1:5901".parse().unwrap();
    for tls in [TargetTls::Tls, TargetTls::Vencrypt] {
        let ticket = p.signer.sign(&p.claims(target).with_tls(tls));
        let (status, body) = refused(&p.url(&ticket)).await;
        assert_eq!(status, 403);
        assert_eq!(
            body.trim(),
            format!("this proxy is not set up to reach console servers over {tls} ([backend_tls] ca is not configured)")
        );
        let check = preflight_check(p.addr, &ticket).await;
        assert_eq!(check["code"], "tls_unsupported", "{check}");
    }
}

#[tokio::test]
async fn an_unknown_tls_value_is_refused_with_its_own_reason() {
    if !tools::have(&["openssl"]) {
        return;
    }
    let pki = console_pki();
    let p = proxy(&pki, ProxyCerts::Good).await;
    let exp = consolegate::front::unix_now() + 60;
    let ticket = raw_ticket(
        &p.key,
        &header_for(&p.key),
        &format!(r#"{{"host":"127.0.0.1","port":5901,"exp":{exp},"tls":"starttls"}}"#),
    );
    let (status, body) = refused(&p.url(&ticket)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("starttls"), "{body}");
    assert_eq!(
        preflight_check(p.addr, &ticket).await["code"],
        "unknown_tls"
    );
}

#[tokio::test]
async fn a_tls_ticket_to_a_plain_server_fails_with_a_reason_not_a_hang() {
    if !tools::have(&["openssl"]) {
        return;
    }
    let pki = console_pki();
    let p = proxy(&pki, ProxyCerts::Good).await;
    let (target, accepted) = one_shot_target().await;
    let c = Client::open(&p, "127.0.0.1", target.port(), TargetTls::Tls).await;
    let mut server = accepted.await.unwrap();
    // A plain RFB server answers the ClientHello with its banner: not TLS.
    server.write_all(b"RFB 003.008\n").await.unwrap();
    let (code, reason) = c.closed().await;
    assert_eq!(code, 1011);
    assert!(
        reason.starts_with("TLS with the console server failed"),
        "{reason}"
    );
    let mut rest = Vec::new();
    let _ = timeout(LIMIT, server.read_to_end(&mut rest)).await;
}

#[tokio::test]
async fn the_console_ca_is_reloaded_on_sighup_and_a_bad_file_keeps_the_old_one() {
    if !tools::have(&["openssl"]) {
        return;
    }
    let pki = console_pki();
    let ca_copy = pki.path("reload-ca.pem");
    std::fs::copy(pki.cert("ca"), &ca_copy).unwrap();
    let copy = ca_copy.clone();
    let p = TestProxy::start(move |a| a.backend_ca = Some(copy)).await;
    std::fs::write(&ca_copy, "not a certificate").unwrap();
    let err = p.proxy.reload().unwrap_err();
    assert!(err.to_string().contains("[backend_tls] ca"), "{err}");
    std::fs::copy(pki.cert("rogue-ca"), &ca_copy).unwrap();
    p.proxy.reload().unwrap();
}

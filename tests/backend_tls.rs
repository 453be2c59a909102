//! Secure console servers end to end: a WebSocket client through the proxy to a real
//! QEMU (VNC with VeNCrypt X.509, SPICE on its TLS port), with certificates made by
//! `openssl` as an administrator would make them.
//!
//! QEMU runs paused (`-S`): its VNC and SPICE servers answer without a guest running.
//! Without `qemu-system-x86_64` these tests say so and pass, except under CI
//! (`CI` set), where the setup script installs it and its absence is a failure.

mod common;

use common::*;
use consolegate::ticket::TargetTls;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "tls-Pw7";

// ------------------------------------------------------------------ certificates

/// A console CA, QEMU's server certificate, the proxy's client certificate, and a
/// second CA with its own client certificate that nothing trusts.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
        let ssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            p("ca.cnf"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n",
        )
        .unwrap();
        std::fs::write(p("server.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n").unwrap();
        std::fs::write(p("client.cnf"), "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n").unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "rogue-ca"] {
            let (key, cert) = (p(&format!("{ca}-key.pem")), p(&format!("{ca}-cert.pem")));
            let subj = format!("/CN=consolegate test {ca}");
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &cert, "-days", "2", "-subj", &subj]);
            args.extend([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=keyCertSign,cRLSign",
            ]);
            ssl(&args);
        }
        let issue = |name: &str, ca: &str, cnf: &str, cn: &str| {
            let (key, csr, cert) = (
                p(&format!("{name}-key.pem")),
                p(&format!("{name}.csr")),
                p(&format!("{name}-cert.pem")),
            );
            let mut args = vec!["req"];
            args.extend(ec);
            let subj = format!("/CN={cn}");
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            ssl(&args);
            ssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &p(&format!("{ca}-cert.pem")),
                "-CAkey",
                &p(&format!("{ca}-key.pem")),
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &p(cnf),
            ]);
        };
        issue("server", "ca", "server.cnf", "127.0.0.1");
        issue("client", "ca", "client.cnf", "consolegate");
        issue("rogue-client", "rogue-ca", "client.cnf", "consolegate");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// QEMU's `x509-dir` / tls-creds-x509 `dir`: ca-cert.pem, server-cert.pem, server-key.pem.
    fn qemu_dir(&self) -> PathBuf {
        let d = self.path("qemu");
        std::fs::create_dir_all(&d).unwrap();
        for f in ["ca-cert.pem", "server-cert.pem", "server-key.pem"] {
            std::fs::copy(self.path(f), d.join(f)).unwrap();
        }
        d
    }
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
    let ca = pki.path("ca-cert.pem");
    let rogue_ca = pki.path("rogue-ca-cert.pem");
    let client = (pki.path("client-cert.pem"), pki.path("client-key.pem"));
    let rogue = (
        pki.path("rogue-client-cert.pem"),
        pki.path("rogue-client-key.pem"),
    );
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

fn have_qemu() -> bool {
    let found = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-system-x86_64 is missing under CI"
        );
        eprintln!("qemu-system-x86_64 not installed: skipping");
    }
    found
}

/// A paused QEMU, killed when dropped.
struct Qemu {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Console {
    /// VNC with tls-creds (verify-peer=yes), with or without a VNC password.
    VencryptVnc { password: bool },
    /// Plain VNC with a password: no VeNCrypt.
    PlainVnc,
    /// SPICE on its TLS port only.
    SpiceTls,
}

/// A free loopback port in the proxy's usual range (the bind is released at once;
/// QEMU binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn qemu(pki: &Pki, console: Console) -> Qemu {
    let dir = tempfile::tempdir().unwrap();
    let qmp = dir.path().join("qmp.sock");
    let x509 = pki.qemu_dir();
    let mut args: Vec<String> = [
        "-machine",
        "accel=tcg",
        "-S",
        "-display",
        "none",
        "-nodefaults",
        "-vga",
        "std",
        "-m",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "-qmp".into(),
        format!("unix:{},server,nowait", qmp.display()),
    ]);
    match console {
        Console::VencryptVnc { password } => {
            args.extend([
                "-object".into(),
                format!(
                    "tls-creds-x509,id=tls0,dir={},endpoint=server,verify-peer=yes",
                    x509.display()
                ),
                "-vnc".into(),
                // A free display from :100 on; QMP says which one QEMU took.
                format!(
                    "127.0.0.1:100,to=900,tls-creds=tls0{}",
                    if password { ",password=on" } else { "" }
                ),
            ]);
        }
        Console::PlainVnc => {
            args.extend(["-vnc".into(), "127.0.0.1:100,to=900,password=on".into()]);
        }
        Console::SpiceTls => {
            let port = free_port();
            args.extend([
                "-object".into(),
                format!("secret,id=sp,data={PASSWORD}"),
                "-spice".into(),
                format!(
                    "tls-port={port},addr=127.0.0.1,x509-dir={},password-secret=sp",
                    x509.display()
                ),
            ]);
        }
    }
    let child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu starts");
    let mut q = Qemu {
        child,
        port: 0,
        _dir: dir,
    };
    let deadline = tokio::time::Instant::now() + LIMIT;
    let sock = loop {
        if let Ok(s) = tokio::net::UnixStream::connect(&qmp).await {
            break s;
        }
        assert!(
            q.child.try_wait().unwrap().is_none(),
            "QEMU exited: {args:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "QEMU's QMP socket did not appear"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut qmp = Qmp::new(sock).await;
    q.port = match console {
        Console::SpiceTls => {
            let info = qmp.execute(r#"{"execute":"query-spice"}"#).await;
            info["return"]["tls-port"].as_u64().expect("SPICE TLS port") as u16
        }
        _ => {
            if console != (Console::VencryptVnc { password: false }) {
                let cmd = format!(
                    r#"{{"execute":"change-vnc-password","arguments":{{"password":"{PASSWORD}"}}}}"#
                );
                let r = qmp.execute(&cmd).await;
                assert!(r.get("return").is_some(), "change-vnc-password: {r}");
            }
            let info = qmp.execute(r#"{"execute":"query-vnc"}"#).await;
            info["return"]["service"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("VNC port")
        }
    };
    q
}

/// QEMU's JSON monitor, one command at a time.
struct Qmp {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl Qmp {
    async fn new(sock: tokio::net::UnixStream) -> Qmp {
        let (r, w) = sock.into_split();
        let mut q = Qmp {
            lines: BufReader::new(r).lines(),
            w,
        };
        let greeting = q.reply().await;
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        q.execute(r#"{"execute":"qmp_capabilities"}"#).await;
        q
    }
    async fn reply(&mut self) -> serde_json::Value {
        loop {
            let line = timeout(LIMIT, self.lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .expect("QMP line");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v.get("event").is_none() {
                return v;
            }
        }
    }
    async fn execute(&mut self, cmd: &str) -> serde_json::Value {
        self.w.write_all(cmd.as_bytes()).await.unwrap();
        self.w.write_all(b"\n").await.unwrap();
        self.reply().await
    }
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

/// VNC authentication: the challenge encrypted with DES under the bit-reversed password.
fn vnc_response(challenge: &[u8], password: &str) -> Vec<u8> {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new(GenericArray::from_slice(&key));
    let mut out = challenge.to_vec();
    for block in out.chunks_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
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
    if !have_qemu() {
        return;
    }
    let pki = Pki::new();
    let q = qemu(&pki, Console::VencryptVnc { password: true }).await;
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
    if !have_qemu() {
        return;
    }
    let pki = Pki::new();
    let q = qemu(&pki, Console::VencryptVnc { password: true }).await;
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
    if !have_qemu() {
        return;
    }
    let pki = Pki::new();
    let q = qemu(&pki, Console::VencryptVnc { password: false }).await;
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
    if !have_qemu() {
        return;
    }
    let pki = Pki::new();
    let tls_vnc = qemu(&pki, Console::VencryptVnc { password: true }).await;
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
    if !have_qemu() {
        return;
    }
    let pki = Pki::new();
    let q = qemu(&pki, Console::SpiceTls).await;
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
    if !have_qemu() {
        return;
    }
    let pki = Pki::new();
    let q = qemu(&pki, Console::SpiceTls).await;
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
        let check = check(&p, &ticket).await;
        assert_eq!(check["code"], "tls_unsupported", "{check}");
    }
}

#[tokio::test]
async fn an_unknown_tls_value_is_refused_with_its_own_reason() {
    let pki = Pki::new();
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
    assert_eq!(check(&p, &ticket).await["code"], "unknown_tls");
}

#[tokio::test]
async fn a_tls_ticket_to_a_plain_server_fails_with_a_reason_not_a_hang() {
    let pki = Pki::new();
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
    let pki = Pki::new();
    let ca_copy = pki.path("reload-ca.pem");
    std::fs::copy(pki.path("ca-cert.pem"), &ca_copy).unwrap();
    let copy = ca_copy.clone();
    let p = TestProxy::start(move |a| a.backend_ca = Some(copy)).await;
    std::fs::write(&ca_copy, "not a certificate").unwrap();
    let err = p.proxy.reload().unwrap_err();
    assert!(err.to_string().contains("[backend_tls] ca"), "{err}");
    std::fs::copy(pki.path("rogue-ca-cert.pem"), &ca_copy).unwrap();
    p.proxy.reload().unwrap();
}

async fn check(p: &TestProxy, ticket: &str) -> serde_json::Value {
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let req = format!(
        "POST /consolegate/check HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ticket}",
        p.addr,
        ticket.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

//! Hardening against what strangers' strings and files can reach (issue 13, items 3
//! and 6): control characters in anything a browser, a ticket or a file name
//! controls never forge a text log line; the web directories serve only files whose
//! real path stays inside them; the admin listener answers only to its own names, so
//! a DNS-rebinding page in a browser on the host cannot read it.

mod common;

use common::ChildProxy as Child;
use common::*;
use futures_util::SinkExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// What each forged line would start with; no line of the log may.
const FORGED: &str = "2099-01-01T00:00:00.000000Z  INFO consolegate::front: session ended";

/// Issue 13, item 3: the browser's close reason went into the text-format `session
/// ended` line as it came, so a reason holding a newline and a made-up line produced
/// a complete forged line. Every string a stranger controls is sent here with
/// control characters in it (a newline, a carriage return, ESC, a C1 control): the
/// close reason, a websockify token file's name (in the line naming its bad line), a
/// ticket's `sub`, and a ticket's `kid`, `typ` and `host` (echoed in refusal
/// reasons). No log line may start with the forged text, no raw control character may
/// reach the log, and each string shows up escaped in its own line.
#[tokio::test]
async fn control_characters_in_browser_ticket_and_file_strings_never_forge_text_log_lines() {
    let tokens = tempfile::tempdir().unwrap();
    let file_name = format!("vm-7\n{FORGED} sub=tokenfile\u{1b}[2J");
    std::fs::write(tokens.path().join(&file_name), "not a token line\n").unwrap();
    let source = tokens.path().to_string_lossy().to_string();
    let child = Child::start(&["--log-format", "text", "--token-source", &source], None).await;
    let target = echo_target().await;
    // Short: the ticket's own checks cut what they echo at 64 characters.
    let evil = |who: &str| format!("x\r\n2099 {who} sub=admin\u{1b}[2J\u{9b}1m");

    // The close reason (at most 123 bytes), on a session whose sub is evil too.
    let mut claims = claims_for(target);
    claims.sub = Some(evil("sub"));
    let mut ws = ws_connect(&child.url(&child.signer.sign(&claims)), &[])
        .await
        .unwrap();
    echo_once(&mut ws, b"hello").await.unwrap();
    let reason = format!("bye\n{FORGED} sub=admin\u{1b}[2J");
    assert!(reason.len() <= 123);
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Library(4000),
        reason: reason.into(),
    })))
    .await
    .unwrap();
    close_politely(&mut ws).await;

    // Ticket strings echoed in refusal reasons: an unknown kid, a bad typ, a bad host.
    let signing =
        consolegate::keys::load_signing_key(&child.key_dir.path().join("engine.key")).unwrap();
    let claims_json = |host: &str| {
        serde_json::json!({"host": host, "port": target.port(), "exp": consolegate::unix_now() + 60})
            .to_string()
    };
    let unknown_kid = raw_ticket(
        &signing,
        &serde_json::json!({"alg": "EdDSA", "kid": evil("kid")}).to_string(),
        &claims_json("127.0.0.1"),
    );
    let bad_typ = raw_ticket(
        &signing,
        &serde_json::json!({"alg": "EdDSA", "typ": evil("typ")}).to_string(),
        &claims_json("127.0.0.1"),
    );
    let bad_host = raw_ticket(&signing, &header_for(&signing), &claims_json(&evil("host")));
    for t in [&unknown_kid, &bad_typ, &bad_host] {
        assert!(ws_connect(&child.url(t), &[]).await.is_err());
    }
    wait_until("the three refusals and the session's end", LIMIT, || {
        let lines = child.process.log.lines();
        let refused = lines.iter().filter(|l| l.contains(" refused")).count();
        refused >= 3 && lines.iter().any(|l| l.contains("session ended session="))
    })
    .await;

    let lines = child.process.log.lines();
    for l in &lines {
        assert!(!l.starts_with("2099"), "a forged line: {l:?}");
        assert!(
            !l.chars().any(|c| c.is_control() && c != '\t'),
            "a raw control character reached the log: {l:?}"
        );
    }
    // Each string is in its own line, escaped.
    for (what, line_has, marker) in [
        ("the close reason", "session ended session=", "4000: bye"),
        ("the token file name", "skipped a line", FORGED),
        ("the sub", "session opened", "2099 sub"),
        ("the unknown kid", "unknown_key", "2099 kid"),
        ("the bad typ", "bad_typ", "2099 typ"),
        ("the bad host", "bad_host", "2099 host"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(line_has) && l.contains(marker))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no {line_has:?} line carrying it:\n{}",
                    lines.join("\n")
                )
            });
        println!("{what}: {line}");
        assert!(
            line.contains("\\n") && line.contains("\\u{1b}"),
            "{what} not escaped: {line}"
        );
    }
}

// ---------------------------------------------------------------------------
// Static files: the real path stays inside its root

#[tokio::test]
async fn a_symlink_out_of_a_web_directory_is_not_served() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret\n").unwrap();
    let web = tempfile::tempdir().unwrap();
    let w = web.path();
    std::fs::write(w.join("index.html"), "<p>console</p>\n").unwrap();
    std::fs::write(w.join("inside.txt"), "inside\n").unwrap();
    std::fs::create_dir(w.join("js")).unwrap();
    std::fs::write(w.join("js/app.js"), "1;\n").unwrap();
    // Links that stay inside are fine; links out are not.
    symlink(w.join("inside.txt"), w.join("alias.txt")).unwrap();
    symlink("../inside.txt", w.join("js/up.txt")).unwrap();
    symlink("/etc/passwd", w.join("passwd.txt")).unwrap();
    symlink(outside.path().join("secret.txt"), w.join("leak.txt")).unwrap();
    symlink(outside.path(), w.join("leakdir")).unwrap();
    let novnc = tempfile::tempdir().unwrap();
    let n = novnc.path();
    std::fs::create_dir(n.join("core")).unwrap();
    std::fs::write(n.join("core/rfb.js"), "export default 1;\n").unwrap();
    symlink(outside.path().join("secret.txt"), n.join("core/leak.js")).unwrap();
    // A link from a mount into the web directory leaves the mount, too.
    symlink(w.join("inside.txt"), n.join("core/web.js")).unwrap();
    let (wd, nd) = (w.to_path_buf(), n.to_path_buf());
    let p = TestProxy::start(move |a| {
        a.web_dir = Some(wd);
        a.novnc_dir = Some(nd);
    })
    .await;
    let status = |answer: &str| answer.get(9..12).unwrap_or("").to_string();
    for (path, want) in [
        ("/", "200"),
        ("/inside.txt", "200"),
        ("/alias.txt", "200"),
        ("/js/up.txt", "200"),
        ("/novnc/core/rfb.js", "200"),
        ("/passwd.txt", "404"),
        ("/leak.txt", "404"),
        ("/leakdir/secret.txt", "404"),
        ("/novnc/core/leak.js", "404"),
        ("/novnc/core/web.js", "404"),
    ] {
        for method in ["GET", "HEAD"] {
            let answer = http(p.addr, method, path, "").await;
            assert_eq!(status(&answer), want, "{method} {path}: {answer}");
            assert!(
                !answer.contains("secret") && !answer.contains("root:"),
                "{answer}"
            );
        }
    }
    // A link swapped in after the first request is caught too (no stale answer).
    std::fs::remove_file(w.join("inside.txt")).unwrap();
    symlink(outside.path().join("secret.txt"), w.join("inside.txt")).unwrap();
    let answer = http(p.addr, "GET", "/inside.txt", "").await;
    assert_eq!(status(&answer), "404", "{answer}");
    assert!(Path::new(&outside.path().join("secret.txt")).exists());
}

// ---------------------------------------------------------------------------
// The admin listener and DNS rebinding

/// A page on another site that rebinds its own name to 127.0.0.1 makes the browser
/// send `Host: its.name:6101`; the admin listener answers only to its own address,
/// loopback names and the names configured in `[admin] hosts`.
#[tokio::test]
async fn the_admin_listener_answers_only_to_its_own_names() {
    let p = TestProxy::start(|a| a.admin_host = vec!["hv1.example".into()]).await;
    let admin = p.start_admin().await;
    let port = admin.port();
    let get = |host: String| {
        let req = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        async move { raw_exchange(admin, &req).await }
    };
    for host in [
        format!("rebind.attacker.example:{port}"),
        "rebind.attacker.example".to_string(),
        format!("127.0.0.1.attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        format!("hv1.example.attacker.example:{port}"),
    ] {
        let answer = get(host.clone()).await;
        assert!(answer.starts_with("HTTP/1.1 421"), "{host}: {answer}");
        assert!(!answer.contains("consolegate_"), "{host}: {answer}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
        format!("hv1.example:{port}"),
        format!("HV1.Example:{port}"),
    ] {
        let answer = get(host.clone()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    // The CLI's client sends the address it was given.
    let a = consolegate::ops::client::request(
        &format!("http://{admin}"),
        hyper::Method::GET,
        "/healthz",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, hyper::StatusCode::OK);
}

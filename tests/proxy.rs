//! The proxy end to end: a real WebSocket client (tokio-tungstenite) through the
//! proxy to TCP console-server stand-ins on loopback.

mod common;

use base64::Engine as _;
use common::*;
use consolegate::front::unix_now;
use consolegate::keys;
use consolegate::ticket::Claims;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// A deterministic byte pattern, different for each direction.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

#[tokio::test]
async fn relays_64_mib_each_way_at_once_byte_exact() {
    let p = TestProxy::start(|_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (ws, resp) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let tcp = accepted.await.unwrap();
    const N: usize = 64 << 20;
    let up_data = pattern(3, N);
    let down_data = pattern(7, N);

    let (mut tcp_r, mut tcp_w) = tcp.into_split();
    let (mut ws_w, mut ws_r) = ws.split();
    let down_src = down_data.clone();
    let target_writer = tokio::spawn(async move {
        tcp_w.write_all(&down_src).await.unwrap();
        tcp_w
    });
    let target_reader = tokio::spawn(async move {
        let mut got = vec![0u8; N];
        tcp_r.read_exact(&mut got).await.unwrap();
        got
    });
    let up_src = up_data.clone();
    let client_writer = tokio::spawn(async move {
        for chunk in up_src.chunks(50_000) {
            ws_w.send(Message::binary(chunk.to_vec())).await.unwrap();
        }
        ws_w
    });
    let client_reader = tokio::spawn(async move {
        let mut got = Vec::with_capacity(N);
        while got.len() < N {
            match ws_r.next().await {
                Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("unexpected {other:?} after {} bytes", got.len()),
            }
        }
        got
    });
    let (up, down) = timeout(Duration::from_secs(120), async {
        let _w = client_writer.await.unwrap();
        let _t = target_writer.await.unwrap();
        (target_reader.await.unwrap(), client_reader.await.unwrap())
    })
    .await
    .expect("relay finished in time");
    assert!(up == up_data, "browser → server bytes differ");
    assert!(down == down_data, "server → browser bytes differ");
}

#[tokio::test]
async fn picks_the_binary_subprotocol_only_when_offered() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let p = TestProxy::start(|_| {}).await;
    let (target, _a) = one_shot_target().await;
    let mut req = p.url(&p.ticket(target)).into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "base64, binary".parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "binary"
    );

    let (target, _b) = one_shot_target().await;
    let (_ws, resp) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn accepts_the_ticket_in_the_token_query_parameter() {
    let p = TestProxy::start(|_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let url = format!("ws://{}/websockify?token={}", p.addr, p.ticket(target));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"RFB 003.008\n").await.unwrap();
    let msg = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(msg.into_data().as_ref(), b"RFB 003.008\n");
}

/// The console page's form (contract, "Where the ticket travels"): the ticket in a
/// `ticket.<ticket>` subprotocol next to `binary`, the URL without it; the proxy
/// answers `binary` only, never echoing the ticket.
#[tokio::test]
async fn accepts_the_ticket_in_a_subprotocol_and_answers_binary_only() {
    let p = TestProxy::start(|_| {}).await;
    let target = echo_target().await;
    let ticket = p.ticket(target);
    let url = format!("ws://{}/console", p.addr);
    let offer = format!("binary, ticket.{ticket}");
    let req = request(&url, &[("Sec-WebSocket-Protocol", &offer)]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    let answered: Vec<_> = resp
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .collect();
    assert_eq!(answered, ["binary"]);
    echo_once(&mut ws, b"no ticket in the URL").await.unwrap();
    // The same with the ticket first and the root path.
    let target = echo_target().await;
    let offer = format!("ticket.{}, binary", p.ticket(target));
    let req = request(
        &format!("ws://{}/", p.addr),
        &[("Sec-WebSocket-Protocol", &offer)],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    echo_once(&mut ws, b"root path").await.unwrap();
}

#[tokio::test]
async fn two_tickets_or_a_ticket_subprotocol_without_binary_are_refused_with_a_reason() {
    let p = TestProxy::start(|_| {}).await;
    let (target, _accepted) = one_shot_target().await;
    let (a, b) = (p.ticket(target), p.ticket(target));
    let console = format!("ws://{}/console", p.addr);
    let cases = [
        (
            p.url(&b),
            format!("binary, ticket.{a}"),
            400,
            "a ticket in the URL and another",
        ),
        (
            format!("ws://{}/websockify?token={b}", p.addr),
            format!("binary, ticket.{a}"),
            400,
            "a ticket in the URL and another",
        ),
        (
            console.clone(),
            format!("binary, ticket.{a}, ticket.{b}"),
            400,
            "more than one ticket",
        ),
        (console.clone(), format!("ticket.{a}"), 400, "needs binary"),
        (console.clone(), "binary".to_string(), 400, "no ticket"),
    ];
    for (url, offer, status, reason) in cases {
        let (got, body) = refused_with(&url, &[("Sec-WebSocket-Protocol", &offer)]).await;
        assert_eq!(got, status, "{offer}: {body}");
        assert!(body.contains(reason), "{offer}: {body}");
        assert!(!body.contains(&a) && !body.contains(&b), "{body}");
    }
}

/// Each rule of the contract refuses with its own status and a reason naming it.
#[tokio::test]
async fn every_verification_rule_refuses_with_its_own_status_and_reason() {
    let p = TestProxy::start(|a| a.aud = vec!["proxy-a".into()]).await;
    let target: std::net::SocketAddr = "127.0.0.1:5901".parse().unwrap();
    let now = unix_now();
    let with_aud = |c: Claims| Claims {
        aud: vec!["proxy-a".into()],
        ..c
    };
    let good = with_aud(p.claims(target));
    let other_key = keys::random_signing_key();
    let hdr = header_for(&p.key);
    let claims_json = |extra: &str| {
        format!(
            r#"{{"host":"127.0.0.1","port":5901,"exp":{},"aud":"proxy-a"{extra}}}"#,
            now + 60
        )
    };

    let valid = p.signer.sign(&good);
    let mut parts: Vec<String> = valid.split('.').map(String::from).collect();
    let tampered_claims = {
        let evil = B64.encode(claims_json(r#","sub":"mallory""#));
        format!("{}.{}.{}", parts[0], evil, parts[2])
    };
    let tampered_header = {
        let h = B64.encode(format!(
            r#"{{"alg":"EdDSA","kid":"{}"}}"#,
            keys::thumbprint(&p.key.verifying_key())
        ));
        format!("{}.{}.{}", h, parts[1], parts[2])
    };
    parts[2].push('!');
    let bad_base64 = parts.join(".");

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "expired",
            p.signer.sign(&Claims {
                exp: now - 100,
                ..good.clone()
            }),
            401,
            "expired",
        ),
        (
            "not yet valid",
            p.signer.sign(&Claims {
                nbf: Some(now + 300),
                ..good.clone()
            }),
            401,
            "not",
        ),
        (
            "lifetime over the cap",
            p.signer.sign(&Claims {
                exp: now + 3600,
                ..good.clone()
            }),
            401,
            "lifetime",
        ),
        (
            "wrong key",
            raw_ticket(
                &other_key,
                r#"{"alg":"EdDSA","typ":"JWT"}"#,
                &claims_json(""),
            ),
            401,
            "signature",
        ),
        (
            "unknown kid",
            raw_ticket(&other_key, &header_for(&other_key), &claims_json("")),
            401,
            "unknown key",
        ),
        ("tampered claims", tampered_claims, 401, "signature"),
        ("tampered header", tampered_header, 401, "signature"),
        (
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none"}"#),
                B64.encode(claims_json(""))
            ),
            401,
            "none",
        ),
        (
            "alg HS256",
            raw_ticket(&p.key, r#"{"alg":"HS256","typ":"JWT"}"#, &claims_json("")),
            401,
            "HS256",
        ),
        ("JWE", "a.b.c.d.e".to_string(), 400, "JWE"),
        ("oversize", "a".repeat(5000), 400, "4096"),
        ("bad base64", bad_base64, 400, "base64"),
        (
            "missing host",
            raw_ticket(
                &p.key,
                &hdr,
                &format!(r#"{{"port":5901,"exp":{},"aud":"proxy-a"}}"#, now + 60),
            ),
            400,
            "host",
        ),
        (
            "bad port",
            raw_ticket(
                &p.key,
                &hdr,
                &format!(
                    r#"{{"host":"127.0.0.1","port":"5901","exp":{},"aud":"proxy-a"}}"#,
                    now + 60
                ),
            ),
            400,
            "port",
        ),
        (
            "audience mismatch",
            p.signer.sign(&Claims {
                aud: vec!["proxy-b".into()],
                ..good.clone()
            }),
            403,
            "audience",
        ),
        (
            "target outside policy",
            p.signer.sign(&Claims {
                host: "10.0.0.9".into(),
                port: 22,
                ..good.clone()
            }),
            403,
            "10.0.0.9:22",
        ),
    ];
    for (name, ticket, status, needle) in cases {
        let (got, body) = refused(&p.url(&ticket)).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(
            body.to_lowercase().contains(&needle.to_lowercase()),
            "{name}: reason {body:?} lacks {needle:?}"
        );
    }
}

#[tokio::test]
async fn a_single_use_ticket_is_refused_the_second_time() {
    let p = TestProxy::start(|a| a.single_use = true).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let ticket = p.ticket(target);
    let _first = tokio_tungstenite::connect_async(p.url(&ticket))
        .await
        .unwrap();
    let (status, body) = refused(&p.url(&ticket)).await;
    assert_eq!(status, 403);
    assert!(body.contains("already used"), "{body}");
    let no_jti = p.signer.sign(&Claims {
        jti: None,
        ..p.claims(target)
    });
    let (status, body) = refused(&p.url(&no_jti)).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_proxys_own_is_allowed() {
    let p = TestProxy::start(|_| {}).await;
    let (target, _a) = one_shot_target().await;
    let ticket = p.ticket(target);
    for origin in [
        "https://evil.example",
        "null",
        &format!("https://{}", p.addr),
    ] {
        let (status, body) = refused_with(&p.url(&ticket), &[("Origin", origin)]).await;
        assert_eq!(status, 403, "{origin}: {body}");
        assert!(body.contains("origin"), "{body}");
    }
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = p.url(&ticket).into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", format!("http://{}", p.addr).parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test]
async fn a_refused_console_server_gets_502_and_a_silent_one_504() {
    let p = TestProxy::start(|a| a.connect_timeout = Some("500ms".into())).await;
    let closed = RefusingPort::new();
    let (status, body) = refused(&p.url(&p.ticket(closed.addr))).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("refused"), "{body}");

    // A listener whose accept queue is full drops new SYNs, so connecting hangs.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = sock.listen(0).unwrap();
    let silent = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(silent),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let (status, body) = refused(&p.url(&p.ticket(silent))).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("did not answer"), "{body}");
}

#[tokio::test]
async fn a_text_frame_closes_with_1003() {
    let p = TestProxy::start(|_| {}).await;
    let (target, _a) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(close_of(&mut ws).await.0, 1003);
}

#[tokio::test]
async fn the_console_server_closing_ends_the_session_with_1000_after_its_bytes() {
    let p = TestProxy::start(|_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(b"last words").await.unwrap();
    drop(tcp);
    let mut got = Vec::new();
    let code = loop {
        match timeout(LIMIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            Some(Ok(Message::Close(f))) => break f.map(|f| f.code),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(got, b"last words");
    assert_eq!(code, Some(CloseCode::Normal));
}

#[tokio::test]
async fn the_browser_vanishing_mid_stream_closes_the_console_connection() {
    let p = TestProxy::start(|_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (ws, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    tcp.write_all(&[0u8; 4096]).await.unwrap();
    drop(ws); // no close frame: the TCP connection just ends
    let mut buf = [0u8; 1024];
    let n = timeout(LIMIT, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break 0,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the proxy closed the console connection");
    assert_eq!(n, 0);
    wait_until("the session to leave the registry", LIMIT, || {
        p.proxy.sessions().live_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_browser_that_does_not_read_stops_the_proxy_reading_the_console_server() {
    let p = TestProxy::start(|_| {}).await;
    let (target, accepted) = one_shot_target().await;
    let (_ws, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    let mut tcp = accepted.await.unwrap();
    // The browser never reads. The server writes until its writes block; what it got
    // out is bounded by the kernel's socket buffers plus the relay's own buffer, not
    // by what it tried to send.
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0usize;
    while let Ok(Ok(n)) = timeout(Duration::from_millis(500), tcp.write(&chunk)).await {
        written += n;
        assert!(
            written < 256 << 20,
            "the proxy kept reading: {written} bytes"
        );
    }
    assert!(
        written < 64 << 20,
        "{written} bytes accepted while the browser read nothing"
    );
}

#[tokio::test]
async fn sigterm_drains_then_closes_live_sessions_with_1001() {
    let mut p = TestProxy::start(|a| a.grace = Some("300ms".into())).await;
    let (target, accepted) = one_shot_target().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    let _tcp = accepted.await.unwrap();
    let task = p.shutdown();
    assert_eq!(close_of(&mut ws).await.0, 1001);
    assert!(
        timeout(LIMIT, task).await.unwrap().unwrap(),
        "drain ended cleanly"
    );
}

#[tokio::test]
async fn the_preflight_check_explains_a_refusal_without_consuming_the_ticket() {
    let p = TestProxy::start(|a| a.single_use = true).await;
    let (target, _a) = one_shot_target().await;
    let addr = p.addr;
    let client = |ticket: String| async move { preflight_check(addr, &ticket).await };
    let ticket = p.ticket(target);
    let ok = client(ticket.clone()).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["kind"], "vnc");
    let again = client(ticket.clone()).await;
    assert_eq!(
        again["ok"], true,
        "the check did not consume the ticket: {again}"
    );
    let expired = p.signer.sign(&Claims {
        exp: unix_now() - 100,
        ..p.claims(target)
    });
    let v = client(expired).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 401);
    assert_eq!(v["code"], "expired");
    assert!(v["reason"].as_str().unwrap().contains("expired"));
    // The ticket still opens a session.
    assert!(tokio_tungstenite::connect_async(p.url(&ticket))
        .await
        .is_ok());
}

#[tokio::test]
async fn static_files_are_served_with_security_headers_and_no_traversal() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(
        web.path().join("console.html"),
        "<!doctype html><title>c</title>",
    )
    .unwrap();
    std::fs::write(web.path().join("app.js"), "export {}").unwrap();
    std::fs::create_dir(web.path().join("sub")).unwrap();
    let dir = web.path().to_path_buf();
    let p = TestProxy::start(move |a| {
        a.web_dir = Some(dir);
        a.engine_origin = vec!["https://engine.example".into()];
    })
    .await;
    let get = |path: &'static str| http(p.addr, "GET", path, "");
    let page = get("/console.html").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_lowercase();
    assert!(lower.contains("content-type: text/html"));
    assert!(lower.contains("x-content-type-options: nosniff"));
    assert!(lower.contains("referrer-policy: no-referrer"));
    assert!(lower.contains("frame-ancestors https://engine.example"));
    assert!(lower.contains("script-src 'self'"));
    assert!(get("/app.js")
        .await
        .to_lowercase()
        .contains("content-type: text/javascript"));
    for bad in [
        "/sub/",
        "/sub",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "//evil.example/",
        "/nope.html",
    ] {
        let r = get(bad).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{bad}: {r}");
        assert!(!r.to_lowercase().contains("location:"), "{bad} redirected");
    }
    let cfg = get("/consolegate/config.json").await;
    assert!(
        cfg.contains(r#""engine_origins":["https://engine.example"]"#),
        "{cfg}"
    );
}

//! Observability and control end to end: the admin listener (health, readiness,
//! metrics, session list and kill), the deny list, and the `sessions` and `kill`
//! subcommands, against a proxy on loopback with real WebSocket clients.

mod common;

use common::*;
use consolegate::front::unix_now;
use consolegate::ops::admin::{Admin, SessionView};
use consolegate::ops::client::{request, Answer};
use consolegate::ticket::Claims;
use futures_util::{SinkExt, StreamExt};
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "test-token-0123456789abcdef";

/// A proxy with its admin listener; the files live in `dir`.
struct Ops {
    p: TestProxy,
    admin: String,
    dir: tempfile::TempDir,
    token_file: PathBuf,
    deny_list: PathBuf,
}

impl Ops {
    /// With a token file (mode 0600) and an empty deny list.
    async fn start() -> Ops {
        Self::start_with(true, |_| {}).await
    }

    async fn start_with(
        with_token: bool,
        tweak: impl FnOnce(&mut consolegate::config::ServeArgs),
    ) -> Ops {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let deny_list = dir.path().join("deny.list");
        std::fs::write(&deny_list, "# nothing revoked yet\n").unwrap();
        let (tf, dl) = (token_file.clone(), deny_list.clone());
        let p = TestProxy::start(move |a| {
            a.admin_token_file = with_token.then_some(tf);
            a.deny_list = Some(dl);
            tweak(a);
        })
        .await;
        let admin = Admin::new(p.proxy.clone()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(admin.serve(listener));
        Ops {
            p,
            admin: url,
            dir,
            token_file,
            deny_list,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        request(&self.admin, Method::GET, path, None, None)
            .await
            .unwrap()
    }

    async fn sessions(&self) -> Vec<SessionView> {
        let a = request(&self.admin, Method::GET, "/sessions", Some(TOKEN), None)
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        serde_json::from_str(&a.body).unwrap()
    }

    async fn kill(&self, body: serde_json::Value) -> u64 {
        let a = request(
            &self.admin,
            Method::POST,
            "/sessions/kill",
            Some(TOKEN),
            Some(body.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        v["killed"].as_u64().unwrap()
    }

    async fn metrics(&self) -> String {
        let a = self.get("/metrics").await;
        assert_eq!(a.status, StatusCode::OK);
        a.body
    }

    /// Opens a session for `sub` with ticket id `jti` to a fresh console stand-in.
    async fn open(&self, sub: &str, jti: &str) -> (Ws, TcpStream) {
        let (target, accepted) = one_shot_target().await;
        let claims = Claims {
            sub: Some(sub.into()),
            jti: Some(jti.into()),
            ..self.p.claims(target)
        };
        let (ws, resp) = tokio_tungstenite::connect_async(self.p.url(&self.p.signer.sign(&claims)))
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        (ws, accepted.await.unwrap())
    }

    /// Waits until no session is live.
    async fn wait_no_sessions(&self) {
        self.wait_sessions(0).await
    }

    /// Waits until `n` sessions are live (an ended session leaves the registry once
    /// the browser answered its close frame).
    async fn wait_sessions(&self, n: usize) {
        wait_until(&format!("{n} live sessions"), LIMIT, || {
            self.p.proxy.sessions().live_count() == n
        })
        .await;
    }
}

/// The value of the sample line starting with `series ` in an OpenMetrics text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Sends `up` bytes from the browser and `down` from the console server through an
/// open session, and checks both arrive.
async fn exchange(ws: &mut Ws, tcp: &mut TcpStream, up: usize, down: usize) {
    ws.send(Message::binary(vec![7u8; up])).await.unwrap();
    let mut got = vec![0u8; up];
    timeout(LIMIT, tcp.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    tcp.write_all(&vec![9u8; down]).await.unwrap();
    let mut n = 0;
    while n < down {
        match timeout(LIMIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => n += b.len(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(n, down);
}

/// True when the browser's session is still open (nothing arrives for a moment).
async fn still_open(ws: &mut Ws) -> bool {
    timeout(Duration::from_millis(300), ws.next())
        .await
        .is_err()
}

#[tokio::test]
async fn metrics_count_the_sessions_refusals_and_bytes_the_test_made() {
    let o = Ops::start().await;
    std::fs::write(&o.deny_list, "jti burned\n").unwrap();
    o.p.proxy.reload().unwrap();

    let (mut ws1, mut tcp1) = o.open("alice", "j1").await;
    exchange(&mut ws1, &mut tcp1, 1000, 70_000).await;
    let (mut ws2, mut tcp2) = o.open("bob", "j2").await;
    exchange(&mut ws2, &mut tcp2, 2345, 5).await;
    ws1.close(None).await.unwrap();
    ws2.close(None).await.unwrap();
    o.wait_no_sessions().await;

    // Three refusals of known codes.
    let (status, _) = refused(&format!("ws://{}/", o.p.addr)).await;
    assert_eq!(status, 400);
    let target: SocketAddr = "127.0.0.1:5901".parse().unwrap();
    let expired = Claims {
        iat: Some(unix_now() - 600),
        ..Claims::new("127.0.0.1", 5901, unix_now() - 300)
    };
    let (status, _) = refused(&o.p.url(&o.p.signer.sign(&expired))).await;
    assert_eq!(status, 401);
    let burned = Claims {
        jti: Some("burned".into()),
        ..o.p.claims(target)
    };
    let (status, _) = refused(&o.p.url(&o.p.signer.sign(&burned))).await;
    assert_eq!(status, 403);

    let m = o.metrics().await;
    assert_eq!(sample(&m, "consolegate_sessions_total"), 2.0);
    assert_eq!(sample(&m, "consolegate_sessions_live"), 0.0);
    assert_eq!(
        sample(&m, "consolegate_refusals_total{code=\"no_ticket\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "consolegate_refusals_total{code=\"expired\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "consolegate_refusals_total{code=\"revoked\"}"),
        1.0
    );
    assert_eq!(
        sample(&m, "consolegate_bytes_total{direction=\"up\"}"),
        3345.0
    );
    assert_eq!(
        sample(&m, "consolegate_bytes_total{direction=\"down\"}"),
        70_005.0
    );
    assert_eq!(
        sample(&m, "consolegate_handshake_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        sample(&m, "consolegate_backend_connect_duration_seconds_count"),
        2.0
    );
    assert_eq!(sample(&m, "consolegate_deny_list_rules{kind=\"jti\"}"), 1.0);
    let kid = &o.p.proxy.key_ids()[0];
    let age = sample(
        &m,
        &format!("consolegate_trusted_key_age_seconds{{kid=\"{kid}\"}}"),
    );
    assert!((0.0..120.0).contains(&age), "key age {age}");
    assert!(m.contains(&format!(
        "consolegate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(m.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn healthz_answers_ok_and_readyz_turns_503_while_draining() {
    let mut o = Ops::start_with(true, |a| a.grace = Some("10s".into())).await;
    let h = o.get("/healthz").await;
    assert_eq!((h.status, h.body.trim()), (StatusCode::OK, "ok"));
    let r = o.get("/readyz").await;
    assert_eq!((r.status, r.body.trim()), (StatusCode::OK, "ready"));

    // A live session keeps the drain going while readiness is checked.
    let (mut ws, _tcp) = o.open("alice", "j1").await;
    let task = o.p.shutdown();
    let r = wait_for("/readyz to stop answering 200", LIMIT, || async {
        let r = o.get("/readyz").await;
        (r.status != StatusCode::OK).then_some(r)
    })
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("draining"), "{}", r.body);
    assert_eq!(o.get("/healthz").await.status, StatusCode::OK);

    ws.close(None).await.unwrap();
    assert!(timeout(LIMIT, task).await.unwrap().unwrap());
}

#[tokio::test]
async fn the_session_list_shows_a_live_session_with_its_sub_jti_and_growing_byte_counts() {
    let o = Ops::start().await;
    assert!(o.sessions().await.is_empty());
    let (mut ws, mut tcp) = o.open("alice", "ticket-1").await;
    exchange(&mut ws, &mut tcp, 100, 200).await;
    let first = o.sessions().await;
    assert_eq!(first.len(), 1);
    let s = &first[0];
    assert_eq!(s.sub.as_deref(), Some("alice"));
    assert_eq!(s.jti.as_deref(), Some("ticket-1"));
    assert_eq!(s.kid, o.p.proxy.key_ids()[0]);
    assert_eq!(s.target, tcp.local_addr().unwrap());
    assert!(s.client.ip().is_loopback());
    assert!((s.started_unix - unix_now()).abs() < 60);
    assert!(s.started.ends_with('Z'), "{}", s.started);
    assert_eq!((s.bytes_up, s.bytes_down), (100, 200));

    exchange(&mut ws, &mut tcp, 50, 1000).await;
    let later = o.sessions().await;
    assert_eq!((later[0].bytes_up, later[0].bytes_down), (150, 1200));
    // The metrics byte counters include the live session too.
    let m = o.metrics().await;
    assert_eq!(
        sample(&m, "consolegate_bytes_total{direction=\"up\"}"),
        150.0
    );
    assert_eq!(sample(&m, "consolegate_sessions_live"), 1.0);
}

#[tokio::test]
async fn killing_by_sub_ends_that_users_session_with_1008_and_the_reason_and_spares_another_user() {
    let o = Ops::start().await;
    let (mut alice, _t1) = o.open("alice", "a1").await;
    let (mut bob, mut bob_tcp) = o.open("bob", "b1").await;
    let killed = o
        .kill(serde_json::json!({"sub": "alice", "reason": "access revoked by INC-42"}))
        .await;
    assert_eq!(killed, 1);
    assert_eq!(
        close_of(&mut alice).await,
        (1008, "access revoked by INC-42".to_string())
    );
    assert!(still_open(&mut bob).await);
    exchange(&mut bob, &mut bob_tcp, 10, 10).await;
    o.wait_sessions(1).await;
    let left = o.sessions().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].sub.as_deref(), Some("bob"));
}

#[tokio::test]
async fn kill_by_id_and_by_jti_end_exactly_that_session() {
    let o = Ops::start().await;
    let (mut a, _ta) = o.open("alice", "a1").await;
    let (mut b, _tb) = o.open("alice", "a2").await;
    let (mut c, _tc) = o.open("alice", "a3").await;
    let id_of_a = o
        .sessions()
        .await
        .iter()
        .find(|s| s.jti.as_deref() == Some("a1"))
        .unwrap()
        .id;
    assert_eq!(o.kill(serde_json::json!({"id": id_of_a})).await, 1);
    assert_eq!(
        close_of(&mut a).await,
        (1008, "session ended by an operator".to_string())
    );
    assert_eq!(
        o.kill(serde_json::json!({"jti": "a2", "reason": "bye"}))
            .await,
        1
    );
    assert_eq!(close_of(&mut b).await, (1008, "bye".to_string()));
    assert!(still_open(&mut c).await);
    assert_eq!(o.kill(serde_json::json!({"jti": "nope"})).await, 0);
    assert_eq!(o.kill(serde_json::json!({"id": 999_999})).await, 0);
    assert!(still_open(&mut c).await);

    // Exactly one selector.
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"id": 1, "sub": "alice"}),
        serde_json::json!({"user": "alice"}),
    ] {
        let a = request(
            &o.admin,
            Method::POST,
            "/sessions/kill",
            Some(TOKEN),
            Some(bad.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
    }
}

#[tokio::test]
async fn admin_requests_without_or_with_a_wrong_token_get_401() {
    let o = Ops::start().await;
    for token in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
        for (method, path, body) in [
            (Method::GET, "/sessions", None),
            (
                Method::POST,
                "/sessions/kill",
                Some(r#"{"sub":"alice"}"#.to_string()),
            ),
        ] {
            let a = request(&o.admin, method, path, token, body).await.unwrap();
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
        }
    }
    // Health and metrics stay open.
    assert_eq!(o.get("/metrics").await.status, StatusCode::OK);
    assert_eq!(o.get("/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_token_file_session_control_is_off_and_metrics_still_answer() {
    let o = Ops::start_with(false, |_| {}).await;
    let a = request(&o.admin, Method::GET, "/sessions", Some(TOKEN), None)
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("token_file"), "{}", a.body);
    assert_eq!(o.get("/metrics").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_ticket_whose_jti_is_on_the_deny_list_is_refused_with_403_revoked() {
    let o = Ops::start().await;
    std::fs::write(&o.deny_list, "# leaked\njti leaked-1\nsub mallory\n").unwrap();
    o.p.proxy.reload().unwrap();
    let target: SocketAddr = "127.0.0.1:5901".parse().unwrap();
    let leaked = Claims {
        jti: Some("leaked-1".into()),
        ..o.p.claims(target)
    };
    let (status, body) = refused(&o.p.url(&o.p.signer.sign(&leaked))).await;
    assert_eq!((status, body.trim()), (403, "ticket revoked"));
    let mallory = Claims {
        sub: Some("mallory".into()),
        ..o.p.claims(target)
    };
    let (status, body) = refused(&o.p.url(&o.p.signer.sign(&mallory))).await;
    assert_eq!((status, body.trim()), (403, "user mallory revoked"));
    // The console page's pre-flight check says so too.
    let check = preflight_check(o.p.addr, &o.p.signer.sign(&leaked)).await;
    assert_eq!(check["code"], "revoked", "{check}");
    // Others still get in.
    let (_ws, _tcp) = o.open("alice", "fine").await;
}

#[tokio::test]
async fn adding_a_user_to_the_deny_list_and_reloading_ends_their_live_session_with_1008() {
    let o = Ops::start().await;
    let (mut alice, _ta) = o.open("alice", "a1").await;
    let (mut bob, _tb) = o.open("bob", "b1").await;
    let (mut carol, _tc) = o.open("carol", "c1").await;
    std::fs::write(&o.deny_list, "sub alice\njti c1\n").unwrap();
    o.p.proxy.reload().unwrap();
    assert_eq!(
        close_of(&mut alice).await,
        (1008, "user alice revoked".to_string())
    );
    assert_eq!(
        close_of(&mut carol).await,
        (1008, "ticket revoked".to_string())
    );
    assert!(still_open(&mut bob).await);

    // A deny list that cannot be read keeps the old one in force, and the reload
    // says which part failed.
    std::fs::remove_file(&o.deny_list).unwrap();
    let err = o.p.proxy.reload().unwrap_err();
    assert!(
        err.to_string().starts_with("reload failed for deny_list"),
        "{err}"
    );
    let target: SocketAddr = "127.0.0.1:5901".parse().unwrap();
    let again = Claims {
        sub: Some("alice".into()),
        ..o.p.claims(target)
    };
    let (status, _) = refused(&o.p.url(&o.p.signer.sign(&again))).await;
    assert_eq!(status, 403);
    assert!(still_open(&mut bob).await);
}

#[tokio::test]
async fn the_sessions_and_kill_subcommands_work_against_a_running_proxy() {
    let o = Ops::start().await;
    let (mut alice, _ta) = o.open("alice", "a1").await;
    let (mut bob, _tb) = o.open("bob", "b1").await;
    let bin = env!("CARGO_BIN_EXE_consolegate");
    let run = |args: Vec<String>| {
        let token_file = o.token_file.clone();
        let admin = o.admin.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(bin)
                    .args(&args)
                    .arg("--admin")
                    .arg(admin)
                    .arg("--token-file")
                    .arg(token_file)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    let out = run(vec!["sessions".into()]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table} {:?}", out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SUB"),
        "{table}"
    );
    assert!(table.contains("alice") && table.contains("bob") && table.contains("a1"));

    let out = run(vec!["sessions".into(), "--json".into()]).await;
    assert!(out.status.success());
    let list: Vec<SessionView> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 2);

    let out = run(vec![
        "kill".into(),
        "--sub".into(),
        "alice".into(),
        "--reason".into(),
        "maintenance".into(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ended 1 session"));
    assert_eq!(
        close_of(&mut alice).await,
        (1008, "maintenance".to_string())
    );
    assert!(still_open(&mut bob).await);

    let bob_id = list
        .iter()
        .find(|s| s.sub.as_deref() == Some("bob"))
        .unwrap()
        .id;
    let out = run(vec!["kill".into(), "--id".into(), bob_id.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(close_of(&mut bob).await.0, 1008);

    // Nothing matched: exit 1. A wrong token: exit 2 with the proxy's reason.
    let out = run(vec!["kill".into(), "--jti".into(), "nope".into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let wrong = o.dir.path().join("wrong.token");
    std::fs::write(&wrong, "another-token-0123456789\n").unwrap();
    let out = tokio::task::spawn_blocking({
        let admin = o.admin.clone();
        move || {
            std::process::Command::new(bin)
                .args(["sessions", "--admin", &admin, "--token-file"])
                .arg(wrong)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------
// The proxy's own listeners are never a console server (issue 13, finding 2)

/// What a ticket naming `target` gets: the handshake's status and the pre-flight's code.
async fn own_listener_refusal(p: &TestProxy, target: SocketAddr) -> (u16, String) {
    let ticket = p.ticket(target);
    let url = format!("ws://127.0.0.1:{}/{ticket}", p.addr.port());
    let (status, body) = match ws_connect(&url, &[]).await {
        Ok(_) => panic!("a ticket for {target} opened a session"),
        Err(_) => refused(&url).await,
    };
    let probe: SocketAddr = ([127, 0, 0, 1], p.addr.port()).into();
    let check = preflight_check(probe, &ticket).await;
    assert_eq!(check["code"], "target_is_proxy", "{target}: {check}");
    assert!(body.contains("own listener"), "{target}: {body}");
    (status, check["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_ticket_for_the_proxys_own_or_admin_listener_is_refused_whatever_the_policy() {
    // The test proxy allows every loopback port: the policy alone would let it through.
    let o = Ops::start().await;
    let admin: SocketAddr = o.admin.trim_start_matches("http://").parse().unwrap();
    for target in [o.p.addr, admin] {
        let (status, code) = own_listener_refusal(&o.p, target).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "target_is_proxy"),
            "{target}"
        );
    }
    // Through a name resolving to it too.
    let by_name: SocketAddr = ([127, 0, 0, 1], admin.port()).into();
    let claims = Claims {
        host: "localhost".into(),
        ..o.p.claims(by_name)
    };
    let (status, _) = refused(&o.p.url(&o.p.signer.sign(&claims))).await;
    assert_eq!(status, 403);
    // No console session ever read the admin listener's metrics.
    assert_eq!(o.p.proxy.sessions().live_count(), 0);
    let metrics = o.metrics().await;
    assert!(
        sample(
            &metrics,
            "consolegate_refusals_total{code=\"target_is_proxy\"}"
        ) >= 3.0,
        "{metrics}"
    );
    // Other loopback ports still work.
    let (_ws, _tcp) = o.open("alice", "fine").await;
}

#[tokio::test]
async fn a_proxy_listening_on_every_address_refuses_any_local_address_on_its_port() {
    // The address this host routes out of, when it has one: an interface address,
    // which the policy then allows as well as loopback (and 0.0.0.0, by its range).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let interface = probe
        .connect("192.0.2.1:9")
        .ok()
        .and_then(|()| probe.local_addr().ok())
        .map(|a| a.ip());
    let p = TestProxy::start_on("0.0.0.0:0", |a| {
        a.allow_target = vec!["127.0.0.0/8".into(), "0.0.0.0/32".into()];
        a.allow_target.extend(interface.map(|ip| ip.to_string()));
    })
    .await;
    let port = p.addr.port();
    let mut targets: Vec<SocketAddr> = vec![
        ([127, 0, 0, 1], port).into(),
        ([127, 0, 0, 2], port).into(),
        ([0, 0, 0, 0], port).into(),
    ];
    targets.extend(interface.map(|ip| SocketAddr::new(ip, port)));
    for target in targets {
        let check = preflight_check(([127, 0, 0, 1], port).into(), &p.ticket(target)).await;
        let expected = if target.ip().is_unspecified() {
            "target_not_allowed"
        } else {
            "target_is_proxy"
        };
        assert_eq!(check["code"], expected, "{target}: {check}");
        let url = format!("ws://127.0.0.1:{port}/{}", p.ticket(target));
        let (status, _) = refused(&url).await;
        assert_eq!(status, 403, "{target}");
    }
    // Another port of the same addresses is an ordinary console server.
    let (target, _accepted) = one_shot_target().await;
    let url = format!("ws://127.0.0.1:{port}/{}", p.ticket(target));
    assert!(ws_connect(&url, &[]).await.is_ok());
}

/// Issue 13, finding 6: a deny-list rule can name the issuer (`jti@<kid>`), so
/// revoking one engine's ticket 42 spares another engine's 42; a plain `jti` rule
/// still revokes it from every issuer, and ends the live sessions it matches.
#[tokio::test]
async fn a_deny_list_rule_with_a_key_id_revokes_that_keys_ticket_only() {
    let other_dir = tempfile::tempdir().unwrap();
    consolegate::keys::generate(other_dir.path(), "other").unwrap();
    let other = consolegate::ticket::Signer::new(
        consolegate::keys::load_signing_key(&other_dir.path().join("other.key")).unwrap(),
    );
    let trust_other = other_dir.path().to_path_buf();
    let o = Ops::start_with(true, move |a| a.trust.push(trust_other)).await;
    let (target, _accepted) = one_shot_target().await;
    let claims = Claims {
        jti: Some("42".into()),
        ..o.p.claims(target)
    };
    let (mine, theirs) = (o.p.signer.sign(&claims), other.sign(&claims));
    std::fs::write(&o.deny_list, format!("jti@{} 42\n", o.p.signer.kid())).unwrap();
    o.p.proxy.reload().unwrap();
    let (status, body) = refused(&o.p.url(&mine)).await;
    assert_eq!((status, body.trim()), (403, "ticket revoked"));
    let (mut ws, _resp) = tokio_tungstenite::connect_async(o.p.url(&theirs))
        .await
        .expect("the other key's ticket 42 is not revoked");
    // A plain rule means every issuer: the live session of the other key's 42 ends.
    std::fs::write(&o.deny_list, "jti 42\n").unwrap();
    o.p.proxy.reload().unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1008, "ticket revoked"));
    assert_eq!(refused(&o.p.url(&theirs)).await.0, 403);
}

/// Issue 13, finding 5: each part of a reload loads on its own and says how it went in
/// `consolegate_reload_success{part}`; a broken console CA does not hold back the keys
/// or the deny list, and a broken admin token file turns session control off rather
/// than keep a token the operator rotated out.
#[tokio::test]
async fn each_reload_part_is_reported_in_the_metrics_and_one_failure_holds_back_no_other() {
    if !tools::have(&["openssl"]) {
        return;
    }
    let pki = common::pki::Pki::new();
    pki.self_signed("ca", "console CA", common::pki::Key::Ec, common::pki::CA);
    let ca = pki.path("console-ca.pem");
    std::fs::copy(pki.cert("ca"), &ca).unwrap();
    let ca_arg = ca.clone();
    let o = Ops::start_with(true, move |a| a.backend_ca = Some(ca_arg)).await;
    let metrics = o.metrics().await;
    for part in ["keys", "deny_list", "backend_tls"] {
        let series = format!("consolegate_reload_success{{part=\"{part}\"}}");
        assert_eq!(sample(&metrics, &series), 1.0, "{part} at start");
    }
    std::fs::write(&ca, "not a certificate\n").unwrap();
    std::fs::write(&o.deny_list, "sub mallory\n").unwrap();
    let err = o.p.proxy.reload().unwrap_err();
    assert_eq!(err.failed.len(), 1, "{err}");
    assert!(
        err.to_string().starts_with("reload failed for backend_tls"),
        "{err}"
    );
    let metrics = o.metrics().await;
    let success = |part: &str| {
        sample(
            &metrics,
            &format!("consolegate_reload_success{{part=\"{part}\"}}"),
        )
    };
    assert_eq!(success("backend_tls"), 0.0);
    assert_eq!((success("keys"), success("deny_list")), (1.0, 1.0));
    assert!(
        sample(
            &metrics,
            "consolegate_reload_timestamp_seconds{part=\"backend_tls\"}"
        ) > 1.7e9
    );
    // The deny list took effect despite the broken CA.
    let mallory = Claims {
        sub: Some("mallory".into()),
        ..o.p.claims("127.0.0.1:5901".parse().unwrap())
    };
    assert_eq!(refused(&o.p.url(&o.p.signer.sign(&mallory))).await.0, 403);

    // The admin token: removed, then reloaded: session control is off, not the old
    // token still working.
    let admin = Admin::new(o.p.proxy.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(admin.clone().serve(listener));
    std::fs::remove_file(&o.token_file).unwrap();
    assert!(admin.reload().unwrap().is_err());
    let a = request(&url, Method::GET, "/sessions", Some(TOKEN), None)
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains("did not load"), "{}", a.body);
}

//! Rule 7 (`tickets.single_use`), failure point by failure point: a ticket's use is
//! taken when admission checks rule 7 and spent only when its session starts (the
//! relay starts: the browser upgraded and the console server's connection, TLS
//! included, is up). Each test makes the first attempt fail for one named reason and
//! shows that the same ticket is then not refused as `replayed` (or, for what is
//! checked before rule 7, that no use was taken); the last shows that a ticket whose
//! session did start is used up. docs/security.md, "Single use (rule 7)", states the
//! rule.

mod common;

use common::pki::{Key, Pki, CA};
use common::*;
use consolegate::ticket::{Claims, TargetTls};
use tokio::net::TcpListener;

/// A console server on `listener` that accepts and holds every connection.
fn hold_connections(listener: TcpListener) {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
}

/// Waits (bounded) until the proxy has no live session.
async fn no_live_session(p: &TestProxy, what: &str) {
    wait_until(what, LIMIT, || p.proxy.sessions().live_count() == 0).await;
}

fn single_use(a: &mut consolegate::config::ServeArgs) {
    a.single_use = true;
}

/// The second attempt fails the same way, never as `replayed`.
async fn refused_twice_for(p: &TestProxy, ticket: &str, status: u16, code: &str) {
    for attempt in ["first", "second"] {
        let (got, body) = refused(&p.url(ticket)).await;
        assert_eq!(got, status, "{attempt} attempt: {body}");
        let c = preflight_check(p.addr, ticket).await;
        assert_eq!(c["code"], code, "{attempt} attempt: {c}");
    }
}

#[tokio::test]
async fn a_port_refusal_does_not_use_up_the_ticket() {
    let p = TestProxy::start(|a| {
        single_use(a);
        a.allow_port = vec!["5900-5999".into()];
    })
    .await;
    let ticket = p.ticket("127.0.0.1:6000".parse().unwrap());
    refused_twice_for(&p, &ticket, 403, "port_not_allowed").await;
}

#[tokio::test]
async fn a_dns_failure_does_not_use_up_the_ticket() {
    let p = TestProxy::start(single_use).await;
    // `.invalid` never resolves (RFC 6761).
    let ticket = p.signer.sign(&Claims {
        host: "console.consolegate.invalid".into(),
        ..p.claims("127.0.0.1:5901".parse().unwrap())
    });
    refused_twice_for(&p, &ticket, 502, "target_unresolved").await;
}

#[tokio::test]
async fn a_resolved_address_refusal_does_not_use_up_the_ticket() {
    let p = TestProxy::start(|a| {
        single_use(a);
        a.allow_target = vec!["127.0.0.2/32".into()];
    })
    .await;
    // `localhost` resolves to 127.0.0.1 (and ::1): outside the allowed range.
    let ticket = p.signer.sign(&Claims {
        host: "localhost".into(),
        ..p.claims("127.0.0.1:5901".parse().unwrap())
    });
    refused_twice_for(&p, &ticket, 403, "target_not_allowed").await;
}

#[tokio::test]
async fn a_view_ticket_this_proxy_cannot_enforce_is_refused_before_a_use_is_taken() {
    // SPICE: its input is not filtered, so a view ticket for it is refused.
    let p = TestProxy::start(|a| {
        single_use(a);
        a.allow_spice_port = vec!["1-65535".into()];
    })
    .await;
    let target = echo_target().await;
    let mut claims = p.claims(target).with_view(true);
    claims.kind = consolegate::ticket::Kind::Spice;
    let ticket = p.signer.sign(&claims);
    refused_twice_for(&p, &ticket, 501, "view_unsupported").await;
}

#[tokio::test]
async fn a_recording_that_cannot_be_created_does_not_use_up_the_ticket() {
    // Every session must be recorded, into a directory where no file can be created
    // (/proc/self, even for root): the check before rule 7 passes (the directory is
    // there, no free-space floor), the file fails before the 101.
    let p = TestProxy::start(|a| {
        single_use(a);
        a.recording_dir = Some("/proc/self".into());
        a.recording_policy = Some("all".into());
        a.recording_min_free = Some("0".into());
    })
    .await;
    let target = echo_target().await;
    let ticket = p.ticket(target);
    for attempt in ["first", "second"] {
        let (status, body) = refused(&p.url(&ticket)).await;
        assert_eq!(status, 503, "{attempt} attempt: {body}");
        assert!(body.contains("cannot record"), "{attempt} attempt: {body}");
        let c = preflight_check(p.addr, &ticket).await;
        assert_eq!(c["ok"], true, "{attempt} attempt: {c}");
    }
    assert_eq!(p.proxy.sessions().live_count(), 0);
}

#[tokio::test]
async fn a_dial_failure_does_not_use_up_the_ticket_and_the_same_link_works_once_the_console_is_up()
{
    let p = TestProxy::start(single_use).await;
    // A port nothing listens on (yet).
    let console = RefusingPort::new();
    let ticket = p.ticket(console.addr);
    let (status, body) = refused(&p.url(&ticket)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(preflight_check(p.addr, &ticket).await["ok"], true);
    // The console server starts; the same link now opens the console.
    hold_connections(console.start_listening());
    let (_ws, _) = tokio_tungstenite::connect_async(p.url(&ticket))
        .await
        .expect("the same ticket opens the session once the console server is up");
}

/// With one session open, a second ticket is refused with `status` (a slot is
/// full); once the first session ends, the same second ticket opens a session.
async fn refused_while_full_then_admitted(
    tweak: impl FnOnce(&mut consolegate::config::ServeArgs),
    status: u16,
) {
    let p = TestProxy::start(|a| {
        single_use(a);
        tweak(a);
    })
    .await;
    let target = echo_target().await;
    let (first, _) = tokio_tungstenite::connect_async(p.url(&p.ticket(target)))
        .await
        .unwrap();
    let ticket = p.ticket(target);
    let (got, body) = refused(&p.url(&ticket)).await;
    assert_eq!(got, status, "{body}");
    drop(first);
    no_live_session(&p, "the first session ends").await;
    tokio_tungstenite::connect_async(p.url(&ticket))
        .await
        .expect("the refused ticket opens a session once there is room");
}

#[tokio::test]
async fn a_full_proxy_does_not_use_up_the_ticket() {
    refused_while_full_then_admitted(|a| a.max_sessions = Some(1), 503).await;
}

#[tokio::test]
async fn a_client_over_its_session_limit_does_not_use_up_the_ticket() {
    refused_while_full_then_admitted(|a| a.max_sessions_per_client = Some(1), 429).await;
}

#[tokio::test]
async fn a_console_tls_failure_after_the_upgrade_does_not_use_up_the_ticket() {
    if !tools::have(&["openssl"]) {
        return;
    }
    // A self-signed console CA: enough for the proxy to accept `tls` tickets; the
    // "console server" below does not even speak TLS.
    let pki = Pki::new();
    pki.self_signed("ca", "consolegate test console CA", Key::Ec, CA);
    let ca = pki.cert("ca");
    let p = TestProxy::start(move |a| {
        single_use(a);
        a.backend_ca = Some(ca);
    })
    .await;
    // A plain RFB server where the ticket promises TLS: the handshake fails after
    // the 101, and the page gets a close frame.
    let target = echo_target_with_banner(b"RFB 003.008\n").await;
    let ticket = p.signer.sign(&p.claims(target).with_tls(TargetTls::Tls));
    for attempt in ["first", "second"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&ticket))
            .await
            .unwrap_or_else(|e| panic!("{attempt} attempt: upgrade refused: {e}"));
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(code, 1011, "{attempt}: {reason}");
        assert!(reason.contains("TLS"), "{attempt}: {reason}");
        // The page asks at once why; the answer is not "replayed".
        let c = preflight_check(p.addr, &ticket).await;
        assert_eq!(c["ok"], true, "{attempt}: {c}");
    }
}

#[tokio::test]
async fn a_ticket_whose_session_started_is_used_up() {
    let p = TestProxy::start(single_use).await;
    let target = echo_target().await;
    let ticket = p.ticket(target);
    let (mut ws, _) = tokio_tungstenite::connect_async(p.url(&ticket))
        .await
        .unwrap();
    ws.close(None).await.unwrap();
    drop(ws);
    no_live_session(&p, "the session ends").await;
    let (status, body) = refused(&p.url(&ticket)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("already used"), "{body}");
    assert_eq!(preflight_check(p.addr, &ticket).await["code"], "replayed");
}

/// Issue 13, finding 6: the record keys on the issuer and the `jti`, so two engines
/// (two keys) that pick the same `jti` do not use up each other's tickets, while each
/// ticket is still used once.
#[tokio::test]
async fn the_same_jti_from_two_keys_is_two_tickets_each_used_once() {
    let other_dir = tempfile::tempdir().unwrap();
    consolegate::keys::generate(other_dir.path(), "other").unwrap();
    let other_key =
        consolegate::keys::load_signing_key(&other_dir.path().join("other.key")).unwrap();
    let other = consolegate::ticket::Signer::new(other_key);
    let trust_other = other_dir.path().to_path_buf();
    let p = TestProxy::start(move |a| {
        single_use(a);
        a.trust.push(trust_other);
    })
    .await;
    let target = echo_target().await;
    let claims = Claims {
        jti: Some("ticket-1".into()),
        ..p.claims(target)
    };
    let (first, second) = (p.signer.sign(&claims), other.sign(&claims));
    for (who, ticket) in [("the first key's", &first), ("the other key's", &second)] {
        let mut ws = ws_connect(&p.url(ticket), &[])
            .await
            .unwrap_or_else(|e| panic!("{who} ticket-1: {e}"));
        echo_once(&mut ws, b"hello").await.unwrap();
        close_politely(&mut ws).await;
    }
    no_live_session(&p, "both sessions end").await;
    for ticket in [&first, &second] {
        let (status, body) = refused(&p.url(ticket)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(preflight_check(p.addr, ticket).await["code"], "replayed");
    }
}

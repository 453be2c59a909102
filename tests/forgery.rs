//! The forgery corpus, through the real proxy: every known trick against JWS
//! verifiers and target policies, sent by a real WebSocket client, each refused
//! before the upgrade with its own status and a reason that names the trick.
//!
//! Tickets are crafted with `raw_ticket` and signed with the proxy's real trusted key,
//! so each one gets past every rule except the one it attacks: a refusal proves that
//! rule, not an earlier accident.

mod common;

use base64::Engine as _;
use common::*;
use consolegate::config::{Config, ServeArgs};
use consolegate::front::{unix_now, Proxy};
use consolegate::keys;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

/// Claims JSON with `host` (already JSON-encoded), `port` and `exp` as raw JSON text,
/// so a test can put any type or spelling in them.
fn claims_raw(host_json: &str, port_json: &str, exp_json: &str) -> String {
    format!(r#"{{"host":{host_json},"port":{port_json},"exp":{exp_json},"jti":"forgery"}}"#)
}

/// Claims JSON for `host:port`, valid for a minute.
fn claims_for(host: &str, port: u16) -> String {
    claims_raw(
        &serde_json::Value::from(host).to_string(),
        &port.to_string(),
        &(unix_now() + 60).to_string(),
    )
}

/// Sends each ticket and checks its status and a distinctive part of its reason.
async fn assert_refused(p: &TestProxy, cases: &[(&str, String, u16, &str)]) {
    for (name, ticket, status, needle) in cases {
        let (got, body) = refused(&p.url(ticket)).await;
        assert_eq!(got, *status, "{name}: {body}");
        assert!(
            body.contains(needle),
            "{name}: reason {body:?} lacks {needle:?}"
        );
    }
}

/// Swaps the third segment (the signature).
fn with_signature(ticket: &str, sig: &str) -> String {
    let (input, _) = ticket.rsplit_once('.').unwrap();
    format!("{input}.{sig}")
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[tokio::test]
async fn alg_none_in_any_capitalisation_is_refused_signed_or_not() {
    let p = TestProxy::start(|_| {}).await;
    let claims = claims_for("127.0.0.1", 5901);
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let unsigned = format!("{}.{}.", B64.encode(&header), B64.encode(&claims));
        cases.push((
            "unsigned",
            unsigned,
            401,
            format!("algorithm {alg} is refused"),
        ));
        let signed = raw_ticket(&p.key, &header, &claims);
        cases.push(("signed", signed, 401, format!("algorithm {alg} is refused")));
    }
    let cases: Vec<_> = cases
        .iter()
        .map(|(n, t, s, r)| (*n, t.clone(), *s, r.as_str()))
        .collect();
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    let p = TestProxy::start(|_| {}).await;
    let claims = claims_for("127.0.0.1", 5901);
    let public = p.key.verifying_key();
    let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let mut cases = Vec::new();
    // The classic confusion: a verifier that lets the header pick HMAC keys it with
    // the bytes it holds as "the key" — here the raw point and the PEM file alike.
    for (what, secret) in [
        ("raw public key", public.as_bytes().to_vec()),
        ("public key PEM", pem.into_bytes()),
    ] {
        let header = format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
            keys::thumbprint(&public)
        );
        let input = format!("{}.{}", B64.encode(&header), B64.encode(&claims));
        let mac = hmac_sha256(&secret, input.as_bytes());
        cases.push((what, format!("{input}.{}", B64.encode(mac)), 401, "HS256"));
    }
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn rs256_is_refused_whatever_the_signature() {
    let p = TestProxy::start(|_| {}).await;
    let header = r#"{"alg":"RS256","typ":"JWT"}"#;
    let claims = claims_for("127.0.0.1", 5901);
    let fake_rsa = format!(
        "{}.{}.{}",
        B64.encode(header),
        B64.encode(&claims),
        B64.encode([0x5a; 256])
    );
    let ed_signed = raw_ticket(&p.key, header, &claims);
    assert_refused(
        &p,
        &[
            (
                "256-byte signature",
                fake_rsa,
                401,
                "algorithm RS256 is refused",
            ),
            (
                "Ed25519 signature",
                ed_signed,
                401,
                "algorithm RS256 is refused",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_kid_with_a_path_or_sql_is_refused_as_an_unknown_key() {
    let p = TestProxy::start(|_| {}).await;
    let claims = claims_for("127.0.0.1", 5901);
    let mut cases = Vec::new();
    for kid in [
        "../../etc/passwd",
        "../../../../proc/self/environ",
        "/dev/null",
        "' OR '1'='1",
        "x'; DROP TABLE keys; --",
        "engine.pub",
    ] {
        let header = format!(
            r#"{{"alg":"EdDSA","kid":{}}}"#,
            serde_json::Value::from(kid)
        );
        cases.push((
            kid,
            raw_ticket(&p.key, &header, &claims),
            401,
            "unknown key",
        ));
    }
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn header_members_that_bring_their_own_key_are_refused_by_name() {
    let p = TestProxy::start(|_| {}).await;
    let claims = claims_for("127.0.0.1", 5901);
    let attacker = keys::random_signing_key();
    let x = B64.encode(attacker.verifying_key().as_bytes());
    let mut cases = Vec::new();
    for (member, value) in [
        (
            "jwk",
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#),
        ),
        ("jku", r#""https://evil.example/jwks.json""#.to_owned()),
        ("x5u", r#""https://evil.example/cert.pem""#.to_owned()),
        ("x5c", r#"["MIIBLjCB4aADAgECAhQ"]"#.to_owned()),
    ] {
        // Signed by the key the member offers, and by the trusted key with its kid:
        // the member is refused either way, before any signature is looked at.
        let own = format!(r#"{{"alg":"EdDSA","{member}":{value}}}"#);
        cases.push((member, raw_ticket(&attacker, &own, &claims), 401, member));
        let trusted = format!(
            r#"{{"alg":"EdDSA","kid":"{}","{member}":{value}}}"#,
            keys::thumbprint(&p.key.verifying_key())
        );
        cases.push((member, raw_ticket(&p.key, &trusted, &claims), 401, member));
    }
    let cases: Vec<_> = cases
        .into_iter()
        .map(|(m, t, s, _)| (m, t, s, "tries to choose the verification key"))
        .collect();
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn duplicate_json_members_are_refused_not_resolved() {
    let p = TestProxy::start(|_| {}).await;
    // Refuses connections: a ticket that passes every rule gets 502 there.
    let closed = RefusingPort::new();
    let port = closed.port();
    let exp = unix_now() + 60;
    let hdr = header_for(&p.key);
    let dup_host = format!(r#"{{"host":"10.0.0.9","host":"127.0.0.1","port":{port},"exp":{exp}}}"#);
    let dup_port = format!(r#"{{"host":"127.0.0.1","port":22,"port":{port},"exp":{exp}}}"#);
    let dup_nested =
        format!(r#"{{"host":"127.0.0.1","port":{port},"exp":{exp},"x":{{"a":1,"a":2}}}}"#);
    let dup_alg = format!(
        r#"{{"alg":"none","alg":"EdDSA","kid":"{}"}}"#,
        keys::thumbprint(&p.key.verifying_key())
    );
    assert_refused(
        &p,
        &[
            (
                "host twice",
                raw_ticket(&p.key, &hdr, &dup_host),
                400,
                "claims has the member host more than once",
            ),
            (
                "port twice",
                raw_ticket(&p.key, &hdr, &dup_port),
                400,
                "claims has the member port more than once",
            ),
            (
                "nested member twice",
                raw_ticket(&p.key, &hdr, &dup_nested),
                400,
                "claims has the member a more than once",
            ),
            (
                "alg twice",
                raw_ticket(&p.key, &dup_alg, &claims_for("127.0.0.1", port)),
                400,
                "header has the member alg more than once",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_typ_other_than_jwt_is_refused_as_another_kind_of_token() {
    // A JWS the engine's key signed for another purpose (an OAuth access token, a
    // JOSE message) must not open a console, even when its claims would.
    let p = TestProxy::start(|_| {}).await;
    // Refuses connections: a ticket that passes every rule gets 502 there.
    let closed = RefusingPort::new();
    let port = closed.port();
    let claims = claims_for("127.0.0.1", port);
    let kid = keys::thumbprint(&p.key.verifying_key());
    let with_typ = |typ_json: &str| {
        raw_ticket(
            &p.key,
            &format!(r#"{{"alg":"EdDSA","typ":{typ_json},"kid":"{kid}"}}"#),
            &claims,
        )
    };
    // The controls: typ JWT and no typ pass every rule and find no console server.
    for ticket in [
        with_typ(r#""JWT""#),
        raw_ticket(
            &p.key,
            &format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
            &claims,
        ),
    ] {
        let (status, body) = refused(&p.url(&ticket)).await;
        assert_eq!(status, 502, "{body}");
    }
    let mut cases = Vec::new();
    for (name, typ_json) in [
        ("access token", r#""at+jwt""#),
        ("JOSE", r#""JOSE""#),
        ("JOSE+JSON", r#""JOSE+JSON""#),
        ("lower case", r#""jwt""#),
        ("media type", r#""application/jwt""#),
        ("trailing space", r#""JWT ""#),
        ("empty", r#""""#),
        ("number", "1"),
        ("null", "null"),
        ("array", r#"["JWT"]"#),
    ] {
        cases.push((name, with_typ(typ_json), 401, "typ"));
    }
    cases.push((
        "typ twice",
        raw_ticket(
            &p.key,
            &format!(r#"{{"alg":"EdDSA","typ":"at+jwt","typ":"JWT","kid":"{kid}"}}"#),
            &claims,
        ),
        400,
        "header has the member typ more than once",
    ));
    let cases: Vec<_> = cases
        .iter()
        .map(|(n, t, s, r)| (*n, t.clone(), *s, *r))
        .collect();
    assert_refused(&p, &cases).await;
    let (_, body) = refused(&p.url(&with_typ(r#""at+jwt""#))).await;
    assert!(
        body.contains(r#"typ "at+jwt" is refused"#),
        "reason {body:?}"
    );
}

#[tokio::test]
async fn view_and_rec_that_are_not_json_booleans_are_refused_by_name() {
    // A reader that took "false" or 1 as truthy would turn a view-only ticket into a
    // full one, or a recorded session into an unrecorded one: only true and false count.
    let p = TestProxy::start(|_| {}).await;
    let hdr = header_for(&p.key);
    let exp = unix_now() + 60;
    let with = |members: &str| {
        raw_ticket(
            &p.key,
            &hdr,
            &format!(r#"{{"host":"127.0.0.1","port":5901,"exp":{exp},{members}}}"#),
        )
    };
    let mut cases = Vec::new();
    for claim in ["view", "rec"] {
        for (name, value) in [
            ("string true", r#""true""#),
            ("string false", r#""false""#),
            ("number 1", "1"),
            ("number 0", "0"),
            ("null", "null"),
            ("array", "[true]"),
            ("object", r#"{"on":true}"#),
        ] {
            cases.push((
                format!("{claim} {name}"),
                with(&format!(r#""{claim}":{value}"#)),
                400,
                format!("claim {claim} must be true or false"),
            ));
        }
        for (first, second) in [("false", "true"), ("true", "false"), ("true", "true")] {
            cases.push((
                format!("{claim} twice ({first}, {second})"),
                with(&format!(r#""{claim}":{first},"{claim}":{second}"#)),
                400,
                format!("claims has the member {claim} more than once"),
            ));
        }
    }
    let cases: Vec<_> = cases
        .iter()
        .map(|(n, t, s, r)| (n.as_str(), t.clone(), *s, r.as_str()))
        .collect();
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn non_canonical_base64_is_refused_with_what_is_wrong() {
    let p = TestProxy::start(|_| {}).await;
    let hdr = header_for(&p.key);
    let good = raw_ticket(&p.key, &hdr, &claims_for("127.0.0.1", 5901));
    let sig = good.rsplit('.').next().unwrap().to_owned();
    // 64 bytes are 86 characters: the last carries 2 bits of data and 4 unused bits,
    // which must be zero. Setting one spells the same signature a second way.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.as_bytes()[sig.len() - 1];
    let v = ALPHABET.iter().position(|&c| c == last).unwrap();
    let trailing = format!("{}{}", &sig[..sig.len() - 1], ALPHABET[v | 1] as char);
    assert_eq!(
        B64.decode(&trailing).ok(),
        None,
        "the lenient decoder is strict too"
    );
    // A claims segment spelt with the standard alphabet: find a sub whose base64url
    // has a `-`, then write it as `+` (a `/` would split the URL path instead).
    let standard = ["?", ">", "~"]
        .iter()
        .flat_map(|c| (1..=3).map(move |n| c.repeat(n)))
        .find_map(|sub| {
            let claims = format!(
                r#"{{"host":"127.0.0.1","port":5901,"exp":{},"sub":"{sub}"}}"#,
                unix_now() + 60
            );
            let t = raw_ticket(&p.key, &hdr, &claims);
            let mut parts: Vec<String> = t.split('.').map(String::from).collect();
            parts[1].contains('-').then(|| {
                parts[1] = parts[1].replace('-', "+");
                parts.join(".")
            })
        })
        .expect("some sub puts a 62 into the claims' base64");
    assert_refused(
        &p,
        &[
            (
                "padding",
                with_signature(&good, &format!("{sig}==")),
                400,
                "signature is not canonical base64url: it has = padding",
            ),
            (
                "trailing bits",
                with_signature(&good, &trailing),
                400,
                "bits set beyond the data",
            ),
            (
                "standard alphabet",
                standard,
                400,
                "claims is not canonical base64url: it uses + or /",
            ),
            (
                "whitespace",
                with_signature(&good, &format!("{}%20{}", &sig[..40], &sig[40..])),
                400,
                "outside A-Z a-z 0-9 - _",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_malleated_signature_with_s_plus_l_is_refused() {
    // L, the order of the Ed25519 base point, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let p = TestProxy::start(|_| {}).await;
    // Refuses connections: a ticket that passes every rule gets 502 there.
    let closed = RefusingPort::new();
    let port = closed.port();
    let good = raw_ticket(&p.key, &header_for(&p.key), &claims_for("127.0.0.1", port));
    // The real ticket passes every rule (and then finds no console server) ...
    let (status, body) = refused(&p.url(&good)).await;
    assert_eq!(status, 502, "{body}");
    // ... and the same signature with S + L, which a non-strict verifier accepts
    // because S is only used mod L, is refused.
    let mut sig = B64.decode(good.rsplit('.').next().unwrap()).unwrap();
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L still fits in 256 bits");
    assert_refused(
        &p,
        &[(
            "S + L",
            with_signature(&good, &B64.encode(&sig)),
            401,
            "signature does not verify with trusted key",
        )],
    )
    .await;
}

/// The identity point: a small-order key under which `R = identity, S = 0` satisfies
/// the plain Ed25519 equation for every message.
fn small_order_key() -> VerifyingKey {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let key = VerifyingKey::from_bytes(&identity).unwrap();
    assert!(key.is_weak());
    key
}

/// A ticket that "verifies" under the small-order key: R = identity, S = 0.
fn small_order_forgery(claims: &str, kid: Option<&str>) -> String {
    let header = match kid {
        Some(kid) => format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
        None => r#"{"alg":"EdDSA"}"#.to_owned(),
    };
    let mut sig = [0u8; 64];
    sig[0] = 1;
    format!(
        "{}.{}.{}",
        B64.encode(header),
        B64.encode(claims),
        B64.encode(sig)
    )
}

#[tokio::test]
async fn a_small_order_public_key_is_refused_when_the_trusted_keys_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    keys::generate(dir.path(), "engine").unwrap();
    let pem = small_order_key().to_public_key_pem(LineEnding::LF).unwrap();
    std::fs::write(dir.path().join("weak.pub"), pem).unwrap();
    let args = ServeArgs {
        listen: Some("127.0.0.1:0".into()),
        allow_plain: true,
        trust: vec![dir.path().to_path_buf()],
        ..ServeArgs::default()
    };
    let config = Config::load(&args).unwrap();
    let err = Proxy::new(config)
        .err()
        .expect("the proxy refuses to start");
    let msg = err.to_string();
    assert!(msg.contains("weak.pub"), "{msg}");
    assert!(msg.contains("small-order point"), "{msg}");
}

#[tokio::test]
async fn a_small_order_key_added_on_reload_is_refused_and_its_forgeries_with_it() {
    let p = TestProxy::start(|_| {}).await;
    let before = p.proxy.key_ids();
    let weak = small_order_key();
    let pem = weak.to_public_key_pem(LineEnding::LF).unwrap();
    std::fs::write(p.key_dir.path().join("weak.pub"), pem).unwrap();
    let err = p.proxy.reload().expect_err("reload refuses the key");
    assert!(err.to_string().contains("small-order point"), "{err}");
    assert_eq!(p.proxy.key_ids(), before, "the old keys stay in force");

    // Refuses connections: a ticket that passes every rule gets 502 there.
    let closed = RefusingPort::new();
    let port = closed.port();
    let claims = claims_for("127.0.0.1", port);
    let weak_kid = keys::thumbprint(&weak);
    assert_refused(
        &p,
        &[
            (
                "forgery naming the weak key",
                small_order_forgery(&claims, Some(&weak_kid)),
                401,
                "unknown key",
            ),
            (
                "forgery naming no key",
                small_order_forgery(&claims, None),
                401,
                "does not verify with any trusted key",
            ),
        ],
    )
    .await;
    // The real key still works: its ticket gets past every rule to the (closed) port.
    let (status, body) = refused(&p.url(&raw_ticket(&p.key, &header_for(&p.key), &claims))).await;
    assert_eq!(status, 502, "{body}");
}

#[tokio::test]
async fn exp_that_is_not_an_integer_within_2_pow_53_is_refused() {
    let p = TestProxy::start(|_| {}).await;
    let hdr = header_for(&p.key);
    let exp = unix_now() + 60;
    let ticket = |exp_json: &str| {
        raw_ticket(
            &p.key,
            &hdr,
            &claims_raw(r#""127.0.0.1""#, "5901", exp_json),
        )
    };
    assert_refused(
        &p,
        &[
            (
                "string",
                ticket(&format!(r#""{exp}""#)),
                400,
                "exp must be an integer number of seconds",
            ),
            (
                "null",
                ticket("null"),
                400,
                "exp must be an integer number of seconds",
            ),
            (
                "fraction",
                ticket(&format!("{exp}.5")),
                400,
                "exp must be a whole number of seconds",
            ),
            (
                "integer-valued float",
                ticket(&format!("{exp}.0")),
                400,
                "whole number",
            ),
            ("exponent", ticket("1.8e9"), 400, "whole number"),
            (
                "2^53",
                ticket("9007199254740992"),
                400,
                "exp is out of range",
            ),
            (
                "beyond u64",
                ticket("99999999999999999999999"),
                400,
                "exp is out of range",
            ),
            ("huge exponent", ticket("1e300"), 400, "exp is out of range"),
            (
                "huge negative",
                ticket("-9223372036854775808"),
                400,
                "exp is out of range",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn port_outside_1_to_65535_or_not_an_integer_is_refused() {
    let p = TestProxy::start(|_| {}).await;
    let hdr = header_for(&p.key);
    let exp = (unix_now() + 60).to_string();
    let ticket =
        |port_json: &str| raw_ticket(&p.key, &hdr, &claims_raw(r#""127.0.0.1""#, port_json, &exp));
    assert_refused(
        &p,
        &[
            (
                "string",
                ticket(r#""5901""#),
                400,
                "port must be an integer 1..65535",
            ),
            (
                "float",
                ticket("5901.0"),
                400,
                "port must be an integer 1..65535",
            ),
            ("zero", ticket("0"), 400, "port 0 is outside 1..65535"),
            ("negative", ticket("-1"), 400, "port -1 is outside 1..65535"),
            (
                "70000",
                ticket("70000"),
                400,
                "port 70000 is outside 1..65535",
            ),
            (
                "65536 (5901 mod 2^16 games)",
                ticket("71437"),
                400,
                "port 71437 is outside",
            ),
            (
                "missing",
                raw_ticket(
                    &p.key,
                    &hdr,
                    &format!(r#"{{"host":"127.0.0.1","exp":{exp}}}"#),
                ),
                400,
                "no port claim",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn unicode_host_names_are_refused_in_favour_of_their_xn_form() {
    let p = TestProxy::start(|_| {}).await;
    let mut cases = Vec::new();
    for host in [
        "bücher.example",
        "ｌｏｃａｌｈｏｓｔ", // fullwidth, which IDNA maps to "localhost"
        "１２７.０.０.１",    // fullwidth digits
        "localһost",          // Cyrillic һ
        "127.0.0.1\u{3002}x", // ideographic full stop
    ] {
        cases.push((
            host,
            raw_ticket(&p.key, &header_for(&p.key), &claims_for(host, 5901)),
            400,
            "non-ASCII",
        ));
    }
    cases.push((
        "NUL",
        raw_ticket(
            &p.key,
            &header_for(&p.key),
            &claims_for("127.0.0.1\0.evil", 5901),
        ),
        400,
        "whitespace or control characters",
    ));
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn a_host_with_a_port_inside_it_is_refused() {
    let p = TestProxy::start(|_| {}).await;
    let t = |host: &str| raw_ticket(&p.key, &header_for(&p.key), &claims_for(host, 5901));
    assert_refused(
        &p,
        &[
            ("v4 with port", t("127.0.0.1:22"), 400, "contains a port"),
            ("name with port", t("localhost:22"), 400, "contains a port"),
            ("bracketed v6 with port", t("[::1]:22"), 400, "has brackets"),
            ("bracketed v6", t("[::1]"), 400, "has brackets"),
            (
                "v6 with zone",
                t("fe80::1%lo"),
                400,
                "has a colon but is not an IPv6 address",
            ),
            (
                "userinfo",
                t("evil@127.0.0.1"),
                400,
                "character other than letters",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn ipv6_forms_of_a_forbidden_address_do_not_dodge_an_ipv4_policy() {
    let p = TestProxy::start(|a| a.allow_target = vec!["127.0.0.1/32".into()]).await;
    // Refuses connections: a ticket that passes every rule gets 502 there.
    let closed = RefusingPort::new();
    let port = closed.port();
    let t = |host: &str| raw_ticket(&p.key, &header_for(&p.key), &claims_for(host, port));
    let outside = "outside the allowed targets";
    assert_refused(
        &p,
        &[
            ("mapped 10.0.0.1", t("::ffff:10.0.0.1"), 403, outside),
            (
                "mapped, hex, long form",
                t("0:0:0:0:0:ffff:a00:1"),
                403,
                outside,
            ),
            ("mapped 127.0.0.2", t("::ffff:127.0.0.2"), 403, outside),
            ("v6 loopback, policy without v6", t("::1"), 403, outside),
            ("v4-compatible ::127.0.0.1", t("::127.0.0.1"), 403, outside),
            ("NAT64 of 127.0.0.1", t("64:ff9b::7f00:1"), 403, outside),
            (
                "::1:5901 is an address, not ::1 port 5901",
                t("::1:5901"),
                403,
                outside,
            ),
        ],
    )
    .await;
    // ::ffff:7f00:1 is 127.0.0.1 itself: it passes the policy as that address (and
    // then finds no console server), neither dodging it nor refused by spelling.
    let (status, body) = refused(&p.url(&t("::ffff:7f00:1"))).await;
    assert_eq!(status, 502, "{body}");
}

#[tokio::test]
async fn an_ipv4_mapped_address_is_not_allowed_by_an_ipv6_only_policy() {
    let p = TestProxy::start(|a| a.allow_target = vec!["::/0".into()]).await;
    let t = |host: &str| raw_ticket(&p.key, &header_for(&p.key), &claims_for(host, 5901));
    let outside = "outside the allowed targets";
    assert_refused(
        &p,
        &[
            ("mapped loopback", t("::ffff:127.0.0.1"), 403, outside),
            ("mapped hex", t("::ffff:7f00:1"), 403, outside),
            (
                "mapped metadata address",
                t("::ffff:169.254.169.254"),
                403,
                outside,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn ipv4_shorthand_octal_and_integer_spellings_are_refused_as_hosts() {
    let p = TestProxy::start(|_| {}).await;
    let mut cases = Vec::new();
    for host in [
        "0127.0.0.1",
        "127.0.0.01",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "017700000001",
    ] {
        cases.push((
            host,
            raw_ticket(&p.key, &header_for(&p.key), &claims_for(host, 5901)),
            400,
            "looks like an IPv4 address but is not one",
        ));
    }
    assert_refused(&p, &cases).await;
}

#[tokio::test]
async fn a_dns_name_resolving_to_a_forbidden_address_is_refused() {
    let p = TestProxy::start(|a| a.allow_target = vec!["127.0.0.2/32".into()]).await;
    let t = raw_ticket(&p.key, &header_for(&p.key), &claims_for("localhost", 5901));
    assert_refused(
        &p,
        &[("localhost", t, 403, "target host localhost resolves to")],
    )
    .await;
    let (_, body) = refused(&p.url(&raw_ticket(
        &p.key,
        &header_for(&p.key),
        &claims_for("localhost", 5901),
    )))
    .await;
    assert!(body.contains("outside the allowed targets"), "{body}");
}

//! The console ticket: sign, parse and verify (rules 1–6 of `ticket-format.md`).
//!
//! Pure: no I/O and no clock; the caller passes the current time. Rules 7 (single use)
//! and 8 (target policy) need state or DNS and live in `policy`.
//!
//! Everything here reads bytes a stranger sent, so the parser is deliberately narrower
//! than JSON and JWS allow: one canonical base64url spelling per ticket, no duplicate
//! JSON members, integer times within ±(2^53 − 1), and a host claim that is exactly an
//! IP literal or an LDH DNS name. When two parsers could read one ticket two ways, the
//! ticket is refused rather than read our way.
//!
//! One file per concern, in the order a ticket is read: [`verify`] here walks the
//! rules; `limits` holds the sizes of rule 1; `base64url` decodes segments in their
//! one canonical spelling; `json` reads a segment as a JSON object and refuses
//! duplicate members; `header` judges the JOSE header (rule 2); `claims` reads and
//! writes the claims, with `host` for the host grammar; `sign` writes tickets; `error`
//! names every refusal. Imports run one way: `host`, `base64url` and `limits` need
//! nothing else here, `error` names their problems, and everything above reads
//! `error`.

mod base64url;
mod claims;
mod error;
mod header;
mod host;
mod json;
mod limits;
mod sign;
#[cfg(test)]
mod test_support;

pub use base64url::Base64Problem;
pub use claims::{Claims, Kind, TargetTls, MAX_TIME_ABS};
pub use error::{Part, TicketError};
pub use host::{HostProblem, MAX_HOST_LEN};
pub use limits::{MAX_JSON_LEN, MAX_TICKET_LEN};
pub use sign::Signer;

use crate::keys::KeySet;
use ed25519_dalek::Signature;

/// Rules 1–6 of the contract, in order; the first failure is the answer.
///
/// The claims are read strictly as part of rule 1 (a claims object of the wrong shape
/// is malformed, 400), before the header and signature are judged; nothing in them is
/// trusted until rule 3 passes. `now_unix` is the caller's clock, so tests and the
/// proxy's single clock read per request decide time alike.
pub fn verify(
    ticket: &str,
    keys: &KeySet,
    opts: &VerifyOptions,
    now_unix: i64,
) -> Result<Verified, TicketError> {
    // Rule 1: size, three canonical base64url segments, two small JSON objects.
    if ticket.is_empty() {
        return Err(TicketError::Empty);
    }
    if ticket.len() > MAX_TICKET_LEN {
        return Err(TicketError::TooLong { len: ticket.len() });
    }
    let segments: Vec<&str> = ticket.split('.').collect();
    let (h64, c64, s64) = match segments.as_slice() {
        [h, c, s] => (*h, *c, *s),
        s if s.len() == 5 => return Err(TicketError::Jwe),
        s => return Err(TicketError::Segments { found: s.len() }),
    };
    let decode = |part, segment| {
        base64url::decode(segment).map_err(|problem| TicketError::Base64 { part, problem })
    };
    let header = json::read_object(Part::Header, &decode(Part::Header, h64)?)?;
    let claims_json = json::read_object(Part::Claims, &decode(Part::Claims, c64)?)?;
    let sig = decode(Part::Signature, s64)?;
    let claims = Claims::from_object(&claims_json)?;

    // Rule 2: EdDSA, typ JWT or none, no extensions, no key of its own, a trusted kid.
    let kid = header::check(&header, keys)?;

    // Rule 3: strict Ed25519 over the segments exactly as received.
    let sig: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| TicketError::SignatureLength { len: sig.len() })?;
    let sig = Signature::from_bytes(&sig);
    let signed = format!("{h64}.{c64}");
    let kid = match kid {
        Some((kid, key)) => {
            key.verify_strict(signed.as_bytes(), &sig)
                .map_err(|_| TicketError::BadSignature {
                    kid: Some(kid.to_owned()),
                })?;
            kid.to_owned()
        }
        None => keys
            .iter()
            .find(|(_, key)| key.verify_strict(signed.as_bytes(), &sig).is_ok())
            .map(|(kid, _)| kid.to_owned())
            .ok_or(TicketError::BadSignature { kid: None })?,
    };

    // Rule 4: time, with leeway for clock skew. Saturating, so no option or claim
    // value can wrap around into "valid".
    let leeway = opts.leeway_secs.max(0);
    if now_unix >= claims.exp.saturating_add(leeway) {
        return Err(TicketError::Expired {
            secs_ago: now_unix.saturating_sub(claims.exp),
        });
    }
    if let Some(nbf) = claims.nbf {
        if now_unix < nbf.saturating_sub(leeway) {
            return Err(TicketError::NotYetValid {
                secs: nbf.saturating_sub(now_unix),
            });
        }
    }

    // Rule 5: no long-lived bearer tickets, however well signed.
    let lifetime = claims.exp.saturating_sub(now_unix);
    if lifetime > opts.max_lifetime_secs {
        return Err(TicketError::LifetimeTooLong {
            lifetime,
            max: opts.max_lifetime_secs,
        });
    }

    // Rule 6: audience, when this proxy has names.
    if !opts.audiences.is_empty() {
        if claims.aud.is_empty() {
            return Err(TicketError::NoAudience);
        }
        if !claims.aud.iter().any(|a| opts.audiences.contains(a)) {
            return Err(TicketError::WrongAudience);
        }
    }

    Ok(Verified { claims, kid })
}

/// A ticket that passed rules 1–6, with the id of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub claims: Claims,
    pub kid: String,
}

/// The proxy's settings for rules 4–6.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub leeway_secs: i64,
    pub max_lifetime_secs: i64,
    /// When non-empty, `aud` must contain one of these.
    pub audiences: Vec<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            leeway_secs: 30,
            max_lifetime_secs: 600,
            audiences: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::base64url::B64;
    use super::test_support::*;
    use super::*;
    use base64::Engine as _;
    use ed25519_dalek::{Verifier as _, VerifyingKey};

    // Round trip.

    #[test]
    fn a_signed_ticket_verifies_and_carries_every_claim() {
        let c = claims()
            .with_nbf(NOW - 5)
            .with_iat(NOW - 5)
            .with_aud("proxy-a")
            .with_aud("proxy-b")
            .with_jti("j-1")
            .with_sub("alice@example")
            .with_kind(Kind::Spice)
            .with_tls(TargetTls::Tls)
            .with_view(true)
            .with_rec(true);
        let signer = Signer::new(key());
        let v = check(&signer.sign(&c)).unwrap();
        assert_eq!(v.claims, c);
        assert_eq!(v.kid, signer.kid());
        assert_eq!(v.kid, kid());
    }

    #[test]
    fn view_and_rec_round_trip_each_alone_and_default_to_false() {
        let signer = Signer::new(key());
        for c in [
            claims(),
            claims().with_view(true),
            claims().with_rec(true),
            claims().with_view(true).with_rec(true),
        ] {
            let v = check(&signer.sign(&c)).unwrap();
            assert_eq!((v.claims.view, v.claims.rec), (c.view, c.rec));
            assert_eq!(v.claims, c);
        }
        assert!(!claims().view && !claims().rec);
    }

    // Rule 1: size and shape (base64url and JSON in their own files).

    #[test]
    fn an_empty_ticket_is_refused() {
        assert_eq!(refused(""), TicketError::Empty);
    }

    #[test]
    fn a_ticket_over_4096_bytes_is_refused_before_it_is_parsed() {
        let err = refused(&"a".repeat(4097));
        assert_eq!(err, TicketError::TooLong { len: 4097 });
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn a_ticket_without_three_segments_is_refused() {
        assert_eq!(refused("e30"), TicketError::Segments { found: 1 });
        assert_eq!(refused("e30.e30"), TicketError::Segments { found: 2 });
        assert_eq!(
            refused("e30.e30.e30.e30"),
            TicketError::Segments { found: 4 }
        );
    }

    #[test]
    fn a_jwe_with_five_segments_is_refused_as_encrypted() {
        let jwe = format!("{}.a.b.c.d", b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#));
        let err = refused(&jwe);
        assert_eq!(err, TicketError::Jwe);
        assert!(err.to_string().contains("JWE"));
    }

    // Rule 3: signature.

    #[test]
    fn a_ticket_without_kid_is_checked_against_each_trusted_key() {
        let mut set = KeySet::new();
        set.insert(other_key().verifying_key());
        set.insert(key().verifying_key());
        let t = forge(&key(), r#"{"alg":"EdDSA"}"#, &good_claims());
        let v = verify(&t, &set, &VerifyOptions::default(), NOW).unwrap();
        assert_eq!(v.kid, kid());
    }

    #[test]
    fn a_ticket_signed_by_an_untrusted_key_is_refused() {
        let t = forge(&other_key(), r#"{"alg":"EdDSA"}"#, &good_claims());
        assert_eq!(refused(&t), TicketError::BadSignature { kid: None });
        // Claiming a trusted kid does not help a signature from another key.
        let t = forge(&other_key(), &header(), &good_claims());
        assert_eq!(refused(&t), TicketError::BadSignature { kid: Some(kid()) });
    }

    #[test]
    fn tampered_claims_are_refused() {
        let t = Signer::new(key()).sign(&claims());
        let moved = claims_json_with_port(22);
        let err = refused(&with_segment(&t, 1, &b64(moved)));
        assert_eq!(err, TicketError::BadSignature { kid: Some(kid()) });
        assert_eq!(err.code(), "bad_signature");
    }

    fn claims_json_with_port(port: u16) -> String {
        format!(r#"{{"exp":{},"host":"10.0.0.5","port":{port}}}"#, NOW + 120)
    }

    #[test]
    fn a_tampered_header_is_refused() {
        let t = Signer::new(key()).sign(&claims());
        let h = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}","x":1}}"#, kid());
        let err = refused(&with_segment(&t, 0, &b64(h)));
        assert_eq!(err, TicketError::BadSignature { kid: Some(kid()) });
    }

    #[test]
    fn a_signature_of_the_wrong_length_is_refused() {
        let t = Signer::new(key()).sign(&claims());
        assert_eq!(
            refused(&with_segment(&t, 2, "")),
            TicketError::SignatureLength { len: 0 }
        );
        let short = b64([1u8; 32]);
        assert_eq!(
            refused(&with_segment(&t, 2, &short)),
            TicketError::SignatureLength { len: 32 }
        );
    }

    #[test]
    fn a_malleated_signature_with_s_plus_l_is_refused() {
        // L, the order of the Ed25519 base point, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let t = Signer::new(key()).sign(&claims());
        let mut sig = B64.decode(t.rsplit('.').next().unwrap()).unwrap();
        let mut carry = 0u16;
        for (s, l) in sig[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        let err = refused(&with_segment(&t, 2, &b64(&sig)));
        assert_eq!(err, TicketError::BadSignature { kid: Some(kid()) });
    }

    #[test]
    fn a_signature_under_a_small_order_key_is_refused() {
        // The identity point: with R = identity and S = 0, the plain Ed25519 equation
        // [S]B = R + [k]A holds for every message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(weak.is_weak());
        let mut set = KeySet::new();
        let weak_kid = set.insert(weak);
        let h = format!(r#"{{"alg":"EdDSA","kid":"{weak_kid}"}}"#);
        let input = format!("{}.{}", b64(h), b64(good_claims()));
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(weak
            .verify(input.as_bytes(), &Signature::from_bytes(&sig))
            .is_ok());
        let t = format!("{input}.{}", b64(sig));
        let err = verify(&t, &set, &VerifyOptions::default(), NOW).unwrap_err();
        assert_eq!(
            err,
            TicketError::BadSignature {
                kid: Some(weak_kid)
            }
        );
    }

    // Rule 4: time.

    fn at(c: Claims, now: i64) -> Result<Verified, TicketError> {
        verify(
            &Signer::new(key()).sign(&c),
            &trusted(),
            &VerifyOptions::default(),
            now,
        )
    }

    #[test]
    fn a_ticket_expired_beyond_the_leeway_is_refused_with_its_age() {
        let err = at(claims(), NOW + 120 + 42).unwrap_err();
        assert_eq!(err, TicketError::Expired { secs_ago: 42 });
        assert_eq!(err.to_string(), "ticket expired 42 s ago");
        assert_eq!((err.status(), err.code()), (401, "expired"));
    }

    #[test]
    fn a_ticket_expired_within_the_leeway_is_accepted() {
        assert!(at(claims(), NOW + 120 + 29).is_ok());
        // now < exp + leeway: the boundary itself is refused.
        assert_eq!(
            at(claims(), NOW + 150).unwrap_err(),
            TicketError::Expired { secs_ago: 30 }
        );
    }

    #[test]
    fn a_ticket_before_its_nbf_is_refused_beyond_the_leeway() {
        let err = at(claims().with_nbf(NOW + 60), NOW).unwrap_err();
        assert_eq!(err, TicketError::NotYetValid { secs: 60 });
        assert_eq!(err.to_string(), "ticket is not valid for another 60 s");
        // now >= nbf - leeway: the boundary itself is accepted.
        assert!(at(claims().with_nbf(NOW + 30), NOW).is_ok());
        assert!(at(claims().with_nbf(NOW + 31), NOW).is_err());
    }

    #[test]
    fn an_absurd_leeway_saturates_instead_of_wrapping() {
        let t = Signer::new(key()).sign(&claims().with_nbf(-MAX_TIME_ABS));
        let opts = VerifyOptions {
            leeway_secs: i64::MAX,
            ..VerifyOptions::default()
        };
        assert!(verify(&t, &trusted(), &opts, NOW).is_ok());
        let opts = VerifyOptions {
            leeway_secs: -100,
            ..VerifyOptions::default()
        };
        assert!(verify(&t, &trusted(), &opts, NOW + 121).is_err());
    }

    // Rule 5: lifetime.

    #[test]
    fn a_ticket_living_longer_than_the_maximum_is_refused() {
        assert!(at(Claims::new("10.0.0.5", 5900, NOW + 600), NOW).is_ok());
        let err = at(Claims::new("10.0.0.5", 5900, NOW + 3600), NOW).unwrap_err();
        assert_eq!(
            err,
            TicketError::LifetimeTooLong {
                lifetime: 3600,
                max: 600
            }
        );
        assert_eq!(
            err.to_string(),
            "ticket lifetime 3600 s exceeds the maximum of 600 s"
        );
        assert_eq!(err.status(), 401);
    }

    // Rule 6: audience.

    #[test]
    fn a_proxy_with_audiences_requires_one_of_them() {
        let opts = VerifyOptions {
            audiences: vec!["proxy-a".into()],
            ..VerifyOptions::default()
        };
        let run = |c: Claims| verify(&Signer::new(key()).sign(&c), &trusted(), &opts, NOW);
        assert_eq!(run(claims()).unwrap_err(), TicketError::NoAudience);
        let err = run(claims().with_aud("proxy-b")).unwrap_err();
        assert_eq!(err, TicketError::WrongAudience);
        assert_eq!(
            err.to_string(),
            "ticket audience does not include this proxy"
        );
        assert_eq!(err.status(), 403);
        assert!(run(claims().with_aud("x").with_aud("proxy-a")).is_ok());
    }

    #[test]
    fn a_proxy_without_audiences_accepts_any_aud() {
        assert!(at(claims().with_aud("anything"), NOW).is_ok());
    }

    // Order.

    #[test]
    fn rules_are_checked_in_the_contracts_order() {
        // Rule 2 before 3: an unknown alg is reported even though nothing verifies.
        let t = format!("{}.{}.AAAA", b64(r#"{"alg":"none"}"#), b64(good_claims()));
        assert_eq!(refused(&t).code(), "bad_alg");
        // Within rule 2: alg before typ before the kid.
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"HS256","typ":"at+jwt","kid":"nope"}"#),
            b64(good_claims())
        );
        assert_eq!(refused(&t).code(), "bad_alg");
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"nope"}"#),
            b64(good_claims())
        );
        assert_eq!(refused(&t).code(), "bad_typ");
        // Rule 2 before 3: unknown kid beats a short signature.
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"EdDSA","kid":"nope"}"#),
            b64(good_claims())
        );
        assert_eq!(refused(&t).code(), "unknown_key");
        // Rule 3 before 4: an expired forgery is a bad signature, not "expired".
        let t = forge(&other_key(), &header(), &good_claims());
        assert_eq!(
            verify(&t, &trusted(), &VerifyOptions::default(), NOW + 999)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // Rule 4 before 5 before 6.
        let opts = VerifyOptions {
            audiences: vec!["p".into()],
            ..VerifyOptions::default()
        };
        let t = Signer::new(key()).sign(&claims().with_aud("q"));
        assert_eq!(
            verify(&t, &trusted(), &opts, NOW + 500).unwrap_err().code(),
            "expired"
        );
        assert_eq!(
            verify(&t, &trusted(), &opts, NOW - 1000)
                .unwrap_err()
                .code(),
            "lifetime_too_long"
        );
        assert_eq!(
            verify(&t, &trusted(), &opts, NOW).unwrap_err().code(),
            "wrong_audience"
        );
    }
}

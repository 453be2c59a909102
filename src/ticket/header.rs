//! The JOSE header (rule 2): what this crate writes, and what it accepts.
//!
//! The header is read before the signature is checked, so nothing in it may choose
//! how the ticket is verified: the algorithm is fixed, extensions and embedded keys
//! are refused, and `kid` only selects among the keys the proxy already trusts.

use super::error::{shown, TicketError};
use crate::keys::KeySet;
use ed25519_dalek::VerifyingKey;
use serde_json::{Map, Value};

/// The only algorithm: Ed25519 (RFC 8037).
pub(super) const ALG: &str = "EdDSA";

/// The only `typ` a console ticket may carry, when it carries one: the spelling RFC
/// 7519 §5.1 recommends and every JWT library writes.
///
/// Compared exactly, case-sensitively. RFC 7515 §4.1.9 lets a reader treat `typ` as a
/// case-insensitive media type with an optional `application/` prefix, but the point
/// of checking it is to tell a console ticket apart from other JWS the same key might
/// sign (`at+jwt` access tokens, `JOSE` messages, logout tokens); one exact spelling
/// leaves nothing for two readers to disagree about, and costs no honest signer
/// anything.
pub(super) const TYP: &str = "JWT";

/// Header members that would let the ticket pick its own verification key. The proxy
/// verifies only with keys it was configured to trust, so a ticket carrying one of
/// these is either confused or an attack, and is refused either way.
const KEY_CHOOSING_MEMBERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// The header [`Signer`](super::Signer) writes for the key `kid`.
pub(super) fn signed(kid: &str) -> String {
    // The kid is base64url, so it needs no JSON escaping.
    format!(r#"{{"alg":"{ALG}","typ":"{TYP}","kid":"{kid}"}}"#)
}

/// Rule 2: the header names EdDSA, a `typ` (when present) of `JWT`, no extension and
/// no key of its own, and a `kid`, when present, names a trusted key. Returns that key
/// with its id, or `None` when there is no `kid` (every trusted key is then tried).
pub(super) fn check<'a>(
    header: &'a Map<String, Value>,
    keys: &'a KeySet,
) -> Result<Option<(&'a str, &'a VerifyingKey)>, TicketError> {
    let alg = header.get("alg").ok_or(TicketError::MissingAlg)?;
    exactly(alg, ALG).map_err(|alg| TicketError::Alg { alg })?;
    // Absent is fine (some libraries omit it); present, it must say this is a JWT, so
    // that a JWS the same key signed for another purpose (an access token, a logout
    // token) does not pass as a console ticket. Other unknown members are ignored.
    if let Some(typ) = header.get("typ") {
        exactly(typ, TYP).map_err(|typ| TicketError::Typ { typ })?;
    }
    if header.contains_key("crit") {
        return Err(TicketError::Crit);
    }
    if let Some(member) = KEY_CHOOSING_MEMBERS
        .into_iter()
        .find(|m| header.contains_key(*m))
    {
        return Err(TicketError::KeyInHeader { member });
    }
    match header.get("kid") {
        None => Ok(None),
        Some(Value::String(k)) => match keys.get(k) {
            Some(key) => Ok(Some((k.as_str(), key))),
            None => Err(TicketError::UnknownKey { kid: shown(k) }),
        },
        Some(_) => Err(TicketError::KidNotString),
    }
}

/// `Ok` when `value` is the JSON string `want`, byte for byte; otherwise the value as
/// the refusal shows it (a string escaped by `shown`, anything else as its JSON).
fn exactly(value: &Value, want: &str) -> Result<(), String> {
    match value {
        Value::String(s) if s == want => Ok(()),
        Value::String(s) => Err(shown(s)),
        other => Err(shown(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{self, *};
    use super::super::{Part, Signer, TicketError};
    use super::*;
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
    use sha2::{Digest, Sha256};

    fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |x: u8| k.iter().map(|b| b ^ x).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(msg)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }

    #[test]
    fn alg_none_in_any_case_is_refused_with_the_alg_named() {
        for alg in ["none", "None", "NONE", "", "eddsa", "Ed25519"] {
            let t = format!(
                "{}.{}.",
                b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
                b64(good_claims())
            );
            let err = refused(&t);
            assert_eq!(err, TicketError::Alg { alg: shown(alg) });
            assert!(err.to_string().contains(&shown(alg)), "{err}");
            assert_eq!(err.status(), 401);
        }
    }

    #[test]
    fn a_header_without_alg_or_with_a_non_string_alg_is_refused() {
        let t = forge(&key(), &format!(r#"{{"kid":"{}"}}"#, kid()), &good_claims());
        assert_eq!(refused(&t), TicketError::MissingAlg);
        let t = forge(&key(), r#"{"alg":["EdDSA"]}"#, &good_claims());
        assert_eq!(
            refused(&t),
            TicketError::Alg {
                alg: shown(r#"["EdDSA"]"#)
            }
        );
    }

    #[test]
    fn hs256_with_a_mac_keyed_by_the_public_key_is_refused() {
        let public = key().verifying_key();
        let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
        for secret in [public.as_bytes().as_slice(), pem.as_bytes()] {
            for h in [
                r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
                format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, kid()),
            ] {
                let input = format!("{}.{}", b64(&h), b64(good_claims()));
                let t = format!("{input}.{}", b64(hmac_sha256(secret, input.as_bytes())));
                let err = refused(&t);
                assert_eq!(
                    err,
                    TicketError::Alg {
                        alg: "HS256".into()
                    }
                );
                assert_eq!(
                    err.to_string(),
                    "ticket algorithm HS256 is refused; only EdDSA is accepted"
                );
            }
        }
    }

    #[test]
    fn rs256_is_refused() {
        let t = format!(
            "{}.{}.{}",
            b64(format!(
                r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#,
                kid()
            )),
            b64(good_claims()),
            b64([0x42u8; 256])
        );
        assert_eq!(
            refused(&t),
            TicketError::Alg {
                alg: "RS256".into()
            }
        );
    }

    #[test]
    fn a_crit_header_is_refused_even_when_signed() {
        let h = format!(
            r#"{{"alg":"EdDSA","kid":"{}","crit":["b64"],"b64":false}}"#,
            kid()
        );
        let err = refused(&forge(&key(), &h, &good_claims()));
        assert_eq!(err, TicketError::Crit);
        assert_eq!(err.code(), "crit");
    }

    #[test]
    fn header_members_that_choose_a_key_are_refused_each_by_name() {
        let attacker = other_key();
        let x = b64(attacker.verifying_key().as_bytes());
        for (member, value) in [
            (
                "jwk",
                format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#),
            ),
            ("jku", r#""https://evil.example/jwks.json""#.to_owned()),
            ("x5u", r#""https://evil.example/cert.pem""#.to_owned()),
            ("x5c", r#"["MIIB"]"#.to_owned()),
        ] {
            // Signed by the attacker's key (the one the member offers) ...
            let h = format!(r#"{{"alg":"EdDSA","{member}":{value}}}"#);
            assert_eq!(
                refused(&forge(&attacker, &h, &good_claims())),
                TicketError::KeyInHeader { member }
            );
            // ... and even by the trusted key with its kid.
            let h = format!(r#"{{"alg":"EdDSA","kid":"{}","{member}":{value}}}"#, kid());
            let err = refused(&forge(&key(), &h, &good_claims()));
            assert_eq!(err, TicketError::KeyInHeader { member });
            assert!(err.to_string().contains(member));
        }
    }

    #[test]
    fn a_kid_naming_an_untrusted_key_is_refused_as_unknown() {
        let signer = Signer::new(other_key());
        let err = refused(&signer.sign(&claims()));
        assert_eq!(
            err,
            TicketError::UnknownKey {
                kid: signer.kid().to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("ticket signed by unknown key {}", signer.kid())
        );
    }

    #[test]
    fn a_kid_with_a_path_or_sql_is_refused_as_unknown_and_shown_escaped() {
        for (kid, shown_as) in [
            ("../../etc/passwd", r#""../../etc/passwd""#),
            ("' OR 1=1 --", r#""\' OR 1=1 --""#),
        ] {
            let h = format!(r#"{{"alg":"EdDSA","kid":{}}}"#, Value::from(kid));
            let err = refused(&forge(&key(), &h, &good_claims()));
            assert_eq!(
                err,
                TicketError::UnknownKey {
                    kid: shown_as.into()
                }
            );
            assert_eq!(
                err.to_string(),
                format!("ticket signed by unknown key {shown_as}")
            );
            assert_eq!(err.status(), 401);
        }
    }

    #[test]
    fn a_kid_that_is_not_a_string_is_refused() {
        let t = forge(&key(), r#"{"alg":"EdDSA","kid":7}"#, &good_claims());
        assert_eq!(refused(&t), TicketError::KidNotString);
    }

    fn with_typ(typ_json: &str) -> String {
        forge(
            &key(),
            &format!(r#"{{"alg":"EdDSA","typ":{typ_json},"kid":"{}"}}"#, kid()),
            &good_claims(),
        )
    }

    #[test]
    fn a_header_with_typ_jwt_or_without_typ_is_accepted() {
        assert!(test_support::check(&with_typ(r#""JWT""#)).is_ok());
        let no_typ = format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, kid());
        assert!(test_support::check(&forge(&key(), &no_typ, &good_claims())).is_ok());
    }

    #[test]
    fn a_typ_other_than_exactly_jwt_is_refused_with_the_typ_named() {
        // Other JWS the same key might sign, and other spellings of JWT: compared
        // exactly, so none of them is a console ticket.
        for typ in [
            "at+jwt",
            "JOSE",
            "JOSE+JSON",
            "logout+jwt",
            "secevent+jwt",
            "jwt",
            "Jwt",
            "application/jwt",
            "application/JWT",
            "JWT ",
            " JWT",
            "JWT\\u0000",
            "",
        ] {
            let err = refused(&with_typ(&format!(r#""{typ}""#)));
            let value: String = serde_json::from_str(&format!(r#""{typ}""#)).unwrap();
            assert_eq!(err, TicketError::Typ { typ: shown(&value) }, "{typ:?}");
            assert_eq!((err.status(), err.code()), (401, "bad_typ"));
            assert!(err.to_string().contains("typ"), "{err}");
        }
        assert_eq!(
            refused(&with_typ(r#""at+jwt""#)).to_string(),
            r#"ticket header typ "at+jwt" is refused; a console ticket's typ is JWT or absent"#
        );
    }

    #[test]
    fn a_typ_that_is_not_a_string_is_refused() {
        for typ in ["1", "null", "true", r#"["JWT"]"#, r#"{"t":"JWT"}"#] {
            let err = refused(&with_typ(typ));
            assert_eq!(err, TicketError::Typ { typ: shown(typ) }, "{typ}");
            assert_eq!(err.code(), "bad_typ");
        }
    }

    #[test]
    fn a_typ_given_twice_is_refused_even_when_both_say_jwt() {
        for h in [
            r#"{"alg":"EdDSA","typ":"JWT","typ":"JWT"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","typ":"JWT"}"#,
        ] {
            assert_eq!(
                refused(&forge(&key(), h, &good_claims())),
                TicketError::DuplicateKey {
                    part: Part::Header,
                    key: "typ".into()
                }
            );
        }
    }

    #[test]
    fn a_wrong_typ_is_refused_before_the_signature_is_judged() {
        // Rule 2 before rule 3: unsigned, or signed by a key nobody trusts.
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"EdDSA","typ":"at+jwt"}"#),
            b64(good_claims())
        );
        assert_eq!(refused(&t).code(), "bad_typ");
        let h = format!(r#"{{"alg":"EdDSA","typ":"JOSE","kid":"{}"}}"#, kid());
        assert_eq!(
            refused(&forge(&other_key(), &h, &good_claims())).code(),
            "bad_typ"
        );
    }
}

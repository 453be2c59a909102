//! The JOSE header (rule 2): what this crate writes, and what it accepts.
//!
//! The header is read before the signature is checked, so nothing in it may choose
//! how the ticket is verified: the algorithm is fixed, extensions and embedded keys
//! are refused, and `kid` only selects among the keys the proxy already trusts.

use super::error::shown;
use super::TicketError;
use crate::keys::KeySet;
use ed25519_dalek::VerifyingKey;
use serde_json::{Map, Value};

/// The only algorithm: Ed25519 (RFC 8037).
pub(super) const ALG: &str = "EdDSA";

/// Header members that would let the ticket pick its own verification key. The proxy
/// verifies only with keys it was configured to trust, so a ticket carrying one of
/// these is either confused or an attack, and is refused either way.
const KEY_CHOOSING_MEMBERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// The header [`Signer`](super::Signer) writes for the key `kid`.
pub(super) fn signed(kid: &str) -> String {
    // The kid is base64url, so it needs no JSON escaping.
    format!(r#"{{"alg":"{ALG}","typ":"JWT","kid":"{kid}"}}"#)
}

/// Rule 2: the header names EdDSA, carries no extension and no key of its own, and a
/// `kid`, when present, names a trusted key. Returns that key with its id, or `None`
/// when there is no `kid` (every trusted key is then tried).
pub(super) fn check<'a>(
    header: &'a Map<String, Value>,
    keys: &'a KeySet,
) -> Result<Option<(&'a str, &'a VerifyingKey)>, TicketError> {
    match header.get("alg") {
        None => return Err(TicketError::MissingAlg),
        Some(Value::String(a)) if a == ALG => {}
        Some(Value::String(a)) => return Err(TicketError::Alg { alg: shown(a) }),
        Some(other) => {
            return Err(TicketError::Alg {
                alg: shown(&other.to_string()),
            })
        }
    }
    // `typ` is not checked: the contract's header carries it, but some libraries omit
    // it and it means nothing to verification. Unknown members are ignored likewise.
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Signer, TicketError};
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
}

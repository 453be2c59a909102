//! oVirt engine console tickets, verified strictly, so an oVirt installation can point
//! its consoles at consolegate without touching the engine.
//!
//! A ticket is standard base64 of a JSON object of strings: `salt`, `digest`,
//! `validFrom`, `validTo` (UTC, `yyyyMMddHHmmss`), `data` (URL-encoded JSON `{host,
//! port, ssl_target}`), `signedFields`, `signature` (RSA PKCS#1 v1.5 SHA-1),
//! `v2_signature` (RSA-PSS SHA-256, MGF1-SHA-256, maximum salt length) and
//! `certificate`. A signature covers the listed fields' values concatenated without
//! separators.
//!
//! oVirt's own verifier lets the ticket name its `signedFields`; with no separators,
//! one genuine ticket then forges any other (move every value into `salt`, sign
//! "salt", write any `data`). Here the ticket chooses nothing:
//! - `signedFields` must be exactly `salt,digest,validFrom,validTo,data`;
//! - `salt` must be base64 of 8 bytes, `digest` must be `sha1`, and both times exactly
//!   14 digits, so every field but the last has a fixed width and the signed bytes
//!   split into fields one way only;
//! - only `v2_signature` counts (SHA-1 `signature` only behind an explicit option);
//! - the key is the configured engine certificate's, never the ticket's `certificate`,
//!   and that certificate must be within its validity period.
//!
//! Time, lifetime cap, host grammar and everything after (target policy, Origin,
//! limits, logs) are the same as for Ed25519 tickets; [`Engine::verify`] returns the
//! same [`Verified`] shape, with the salt as `jti` and `ovirt:<fingerprint>` as `kid`.

use crate::ticket::{Claims, TargetTls, TicketError, Verified, VerifyOptions};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use x509_cert::der::{Decode, Encode};

/// Largest oVirt ticket accepted. A ticket carries the engine's certificate, so it is
/// about 2.9 KB with a 2048-bit key and more with 4096-bit keys; Ed25519 tickets keep
/// their own 4 KiB limit.
pub const MAX_OVIRT_TICKET_LEN: usize = 16 << 10;

/// The only `signedFields` accepted: what the engine signs, in the engine's order.
pub const SIGNED_FIELDS: &str = "salt,digest,validFrom,validTo,data";

/// The engine's `salt` is 8 random bytes.
const SALT_BYTES: usize = 8;

/// Smallest engine key accepted.
const MIN_KEY_BITS: usize = 2048;

/// SHA-256 output length, for the PSS maximum salt length.
const SHA256_LEN: usize = 32;

/// Standard base64 (`+`, `/`), padding optional: the engine pads, but a ticket that
/// went through a form or a URL may have lost its `=`.
const STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why the engine certificate cannot be used; start-up and reload errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the oVirt engine certificate {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("oVirt engine certificate {path} is not an X.509 certificate (PEM or DER): {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("oVirt engine certificate {path} does not hold an RSA public key: {reason}")]
    NotRsa { path: PathBuf, reason: String },
    #[error("oVirt engine certificate {path} has a {bits}-bit key; at least {MIN_KEY_BITS} bits are required")]
    WeakKey { path: PathBuf, bits: usize },
}

/// Why an oVirt ticket is refused. Strings from the ticket are escaped and truncated
/// before they get here; the ticket itself is never part of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OvirtError {
    #[error("oVirt ticket is {len} bytes, more than the maximum of {MAX_OVIRT_TICKET_LEN}")]
    TooLong { len: usize },
    #[error("oVirt ticket is not standard base64")]
    Base64,
    #[error("oVirt ticket is not a JSON object (error at line {line}, column {column})")]
    Json { line: usize, column: usize },
    #[error("oVirt ticket has the field {field} more than once")]
    DuplicateField { field: String },
    #[error("oVirt ticket has no {field} field")]
    MissingField { field: &'static str },
    #[error("oVirt ticket field {field} must be a string")]
    NotString { field: &'static str },
    #[error("oVirt ticket salt must be base64 of {SALT_BYTES} bytes")]
    Salt,
    #[error("oVirt ticket digest {value} is not sha1")]
    DigestName { value: String },
    #[error("oVirt ticket {field} {value} is not a UTC time written yyyyMMddHHmmss")]
    Time { field: &'static str, value: String },
    #[error("oVirt ticket {field} is not base64")]
    SignatureBase64 { field: &'static str },
    #[error("oVirt ticket data is not URL-encoded JSON with host, port and ssl_target: {problem}")]
    Data { problem: &'static str },
    #[error("oVirt ticket signedFields {found} is refused: only {SIGNED_FIELDS} is accepted, a ticket may not choose what is signed")]
    SignedFields { found: String },
    #[error("oVirt ticket has no v2_signature (RSA-PSS SHA-256); SHA-1 signatures are refused unless legacy.ovirt_allow_sha1 is set")]
    NoV2Signature,
    #[error("oVirt ticket has neither v2_signature nor signature")]
    NoSignature,
    #[error("oVirt ticket {field} does not verify with the engine certificate {kid}{}", if *foreign_certificate { " (the ticket carries another certificate, which is never trusted)" } else { "" })]
    BadSignature {
        field: &'static str,
        kid: String,
        foreign_certificate: bool,
    },
    #[error("the oVirt engine certificate {kid} is not valid now ({problem}); renew it on the engine and here")]
    EngineCertificate { kid: String, problem: String },
    /// Time, lifetime and host grammar: the same rules and words as Ed25519 tickets.
    #[error(transparent)]
    Ticket(#[from] TicketError),
}

/// The trusted engine: its certificate's key and validity (`CERT_FOR_DATA_VERIFICATION`
/// in ovirt-websocket-proxy).
#[derive(Clone)]
pub struct Engine {
    key: RsaPublicKey,
    /// Validity period of the certificate, Unix seconds.
    not_before: i64,
    not_after: i64,
    /// `ovirt:` and the first 16 hex digits of the certificate's SHA-256: the `kid` in logs.
    kid: String,
    /// The certificate's DER, to tell a ticket that carries another certificate.
    der: Vec<u8>,
    /// Whether PKCS#1 v1.5 SHA-1 `signature` is accepted when `v2_signature` is absent.
    allow_sha1: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("kid", &self.kid)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("allow_sha1", &self.allow_sha1)
            .finish()
    }
}

impl Engine {
    /// Reads the engine certificate (PEM, possibly with text around it, or DER).
    pub fn load(path: &Path, allow_sha1: bool) -> Result<Engine, LoadError> {
        let bytes = std::fs::read(path).map_err(|cause| LoadError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Engine::from_bytes(&bytes, path, allow_sha1)
    }

    fn from_bytes(bytes: &[u8], path: &Path, allow_sha1: bool) -> Result<Engine, LoadError> {
        let parse_err = |reason: String| LoadError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let der = match pem_certificate(bytes) {
            Some(b64) => STD
                .decode(b64)
                .map_err(|e| parse_err(format!("PEM body: {e}")))?,
            None => bytes.to_vec(),
        };
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| parse_err(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let not_rsa = |reason: String| LoadError::NotRsa {
            path: path.to_path_buf(),
            reason,
        };
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| not_rsa(e.to_string()))?;
        let key = RsaPublicKey::from_public_key_der(&spki).map_err(|e| not_rsa(e.to_string()))?;
        let bits = key.n().bits();
        if bits < MIN_KEY_BITS {
            return Err(LoadError::WeakKey {
                path: path.to_path_buf(),
                bits,
            });
        }
        let unix = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let fingerprint = Sha256::digest(&der);
        let hex: String = fingerprint[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Engine {
            key,
            not_before: unix(tbs.validity.not_before),
            not_after: unix(tbs.validity.not_after),
            kid: format!("ovirt:{hex}"),
            der,
            allow_sha1,
        })
    }

    /// `ovirt:<first 16 hex digits of the certificate's SHA-256>`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether SHA-1 `signature` is accepted when `v2_signature` is absent.
    pub fn allows_sha1(&self) -> bool {
        self.allow_sha1
    }

    /// Unix seconds the certificate stops being valid.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Why the certificate is unusable at `now`, if it is.
    pub fn validity_problem(&self, now: i64) -> Option<String> {
        if now < self.not_before {
            Some(format!("valid only from {}", format_unix(self.not_before)))
        } else if now > self.not_after {
            Some(format!("expired {}", format_unix(self.not_after)))
        } else {
            None
        }
    }

    /// Every rule, in order; the first failure is the answer.
    pub fn verify(
        &self,
        ticket: &str,
        opts: &VerifyOptions,
        now: i64,
    ) -> Result<Verified, OvirtError> {
        // Size, base64, a JSON object of strings with the fixed-width fields well formed.
        if ticket.len() > MAX_OVIRT_TICKET_LEN {
            return Err(OvirtError::TooLong { len: ticket.len() });
        }
        let json = STD.decode(ticket.trim()).map_err(|_| OvirtError::Base64)?;
        let t = RawTicket::parse(&json)?;

        // What is signed is fixed by the proxy, never chosen by the ticket.
        if t.signed_fields != SIGNED_FIELDS {
            return Err(OvirtError::SignedFields {
                found: shown(&t.signed_fields),
            });
        }

        // Fixed widths for every field before `data`, so the signed bytes split into
        // fields one way only: no value can lend characters to its neighbour.
        if t.salt.len() != 12 || STD.decode(&t.salt).map(|s| s.len()) != Ok(SALT_BYTES) {
            return Err(OvirtError::Salt);
        }
        if t.digest != "sha1" {
            return Err(OvirtError::DigestName {
                value: shown(&t.digest),
            });
        }
        let valid_from = parse_time("validFrom", &t.valid_from)?;
        let valid_to = parse_time("validTo", &t.valid_to)?;
        let target = parse_data(&t.data)?;

        // The configured engine certificate, within its validity period.
        if let Some(problem) = self.validity_problem(now) {
            return Err(OvirtError::EngineCertificate {
                kid: self.kid.clone(),
                problem,
            });
        }

        // The signature: v2 (PSS-SHA256, maximum salt) always; v1 (SHA-1) only when
        // allowed and v2 is absent.
        let message = [
            t.salt.as_str(),
            &t.digest,
            &t.valid_from,
            &t.valid_to,
            &t.data,
        ]
        .concat();
        let field = match (&t.v2_signature, &t.signature) {
            (Some(sig), _) => {
                let sig = decode_signature("v2_signature", sig)?;
                verify_pss_max_salt(&self.key, message.as_bytes(), &sig)
                    .then_some("v2_signature")
                    .ok_or_else(|| self.bad_signature("v2_signature", &t.certificate))?
            }
            (None, Some(sig)) if self.allow_sha1 => {
                let sig = decode_signature("signature", sig)?;
                verify_pkcs1_sha1(&self.key, message.as_bytes(), &sig)
                    .then_some("signature")
                    .ok_or_else(|| self.bad_signature("signature", &t.certificate))?
            }
            (None, Some(_)) => return Err(OvirtError::NoV2Signature),
            (None, None) => return Err(OvirtError::NoSignature),
        };
        if field == "signature" {
            tracing::warn!(kid = %self.kid, jti = %t.salt, "accepted an oVirt ticket signed with SHA-1 only (legacy.ovirt_allow_sha1)");
        }

        // Time and lifetime, with the same leeway and cap as Ed25519 tickets.
        let leeway = opts.leeway_secs.max(0);
        if now >= valid_to.saturating_add(leeway) {
            return Err(TicketError::Expired {
                secs_ago: now.saturating_sub(valid_to),
            }
            .into());
        }
        if now < valid_from.saturating_sub(leeway) {
            return Err(TicketError::NotYetValid {
                secs: valid_from.saturating_sub(now),
            }
            .into());
        }
        let lifetime = valid_to.saturating_sub(now);
        if lifetime > opts.max_lifetime_secs {
            return Err(TicketError::LifetimeTooLong {
                lifetime,
                max: opts.max_lifetime_secs,
            }
            .into());
        }

        let mut claims = Claims::new(target.host, target.port, valid_to)
            .with_nbf(valid_from)
            .with_jti(t.salt)
            .with_tls(if target.ssl {
                TargetTls::Tls
            } else {
                TargetTls::None
            });
        claims.iat = None;
        claims.validate()?;
        Ok(Verified {
            claims,
            kid: self.kid.clone(),
        })
    }

    fn bad_signature(&self, field: &'static str, certificate: &Option<String>) -> OvirtError {
        let foreign = certificate
            .as_deref()
            .and_then(|c| pem_certificate(c.as_bytes()))
            .and_then(|b64| STD.decode(b64).ok())
            .is_some_and(|der| der != self.der);
        OvirtError::BadSignature {
            field,
            kid: self.kid.clone(),
            foreign_certificate: foreign,
        }
    }
}

/// Verifies RSA-PSS with SHA-256, MGF1-SHA-256 and the salt length the engine uses:
/// the maximum, emLen − hLen − 2 (key bytes − 34 for a 2048-bit key). Verifiers that
/// assume salt length = digest length refuse genuine engine tickets.
pub fn verify_pss_max_salt(key: &RsaPublicKey, message: &[u8], sig: &[u8]) -> bool {
    let em_len = key.n().bits().saturating_sub(1).div_ceil(8);
    let Some(salt_len) = em_len.checked_sub(SHA256_LEN + 2) else {
        return false;
    };
    let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
        return false;
    };
    rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(key.clone(), salt_len)
        .verify(message, &sig)
        .is_ok()
}

/// PKCS#1 v1.5 with SHA-1: only for engines too old to send `v2_signature`, and only
/// when the operator allows it.
fn verify_pkcs1_sha1(key: &RsaPublicKey, message: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key.clone())
        .verify(message, &sig)
        .is_ok()
}

/// The ticket's JSON. Known fields only; serde refuses a known field given twice, so
/// no "last one wins" between what was signed and what is read.
#[derive(Deserialize)]
struct RawFields {
    salt: Option<serde_json::Value>,
    digest: Option<serde_json::Value>,
    #[serde(rename = "validFrom")]
    valid_from: Option<serde_json::Value>,
    #[serde(rename = "validTo")]
    valid_to: Option<serde_json::Value>,
    data: Option<serde_json::Value>,
    #[serde(rename = "signedFields")]
    signed_fields: Option<serde_json::Value>,
    signature: Option<serde_json::Value>,
    v2_signature: Option<serde_json::Value>,
    certificate: Option<serde_json::Value>,
}

struct RawTicket {
    salt: String,
    digest: String,
    valid_from: String,
    valid_to: String,
    data: String,
    signed_fields: String,
    signature: Option<String>,
    v2_signature: Option<String>,
    certificate: Option<String>,
}

impl RawTicket {
    fn parse(json: &[u8]) -> Result<RawTicket, OvirtError> {
        let raw: RawFields = serde_json::from_slice(json).map_err(|e| {
            // serde names a duplicated field by our own field name: safe to show.
            let msg = e.to_string();
            match msg.strip_prefix("duplicate field `") {
                Some(rest) => OvirtError::DuplicateField {
                    field: rest.split('`').next().unwrap_or("").to_string(),
                },
                None => OvirtError::Json {
                    line: e.line(),
                    column: e.column(),
                },
            }
        })?;
        let required = |field: &'static str, v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Ok(s),
            Some(_) => Err(OvirtError::NotString { field }),
            None => Err(OvirtError::MissingField { field }),
        };
        let optional = |field: &'static str, v: Option<serde_json::Value>| match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(OvirtError::NotString { field }),
        };
        let t = RawTicket {
            salt: required("salt", raw.salt)?,
            digest: required("digest", raw.digest)?,
            valid_from: required("validFrom", raw.valid_from)?,
            valid_to: required("validTo", raw.valid_to)?,
            data: required("data", raw.data)?,
            signed_fields: required("signedFields", raw.signed_fields)?,
            signature: optional("signature", raw.signature)?,
            v2_signature: optional("v2_signature", raw.v2_signature)?,
            certificate: optional("certificate", raw.certificate)?,
        };
        Ok(t)
    }
}

fn decode_signature(field: &'static str, s: &str) -> Result<Vec<u8>, OvirtError> {
    // The engine's Java encoder may wrap long base64 lines.
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STD.decode(compact)
        .map_err(|_| OvirtError::SignatureBase64 { field })
}

/// `yyyyMMddHHmmss`, UTC, exactly 14 digits, to Unix seconds.
pub fn parse_time(field: &'static str, s: &str) -> Result<i64, OvirtError> {
    let bad = || OvirtError::Time {
        field,
        value: shown(s),
    };
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|d| d.parse::<u16>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0..4),
        num(4..6),
        num(6..8),
        num(8..10),
        num(10..12),
        num(12..14),
    ) else {
        return Err(bad());
    };
    let month = u8::try_from(mo)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(i32::from(y), month, d as u8).map_err(|_| bad())?;
    let t = time::Time::from_hms(h as u8, mi as u8, sec as u8).map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp())
}

fn format_unix(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// The console server named by `data`.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    ssl: bool,
}

/// `data`: URL-encoded (form encoding: `+` is a space) JSON `{host, port, ssl_target}`,
/// `port` a string of digits (a number is read too), `ssl_target` a boolean.
fn parse_data(data: &str) -> Result<Target, OvirtError> {
    let bad = |problem| OvirtError::Data { problem };
    let form = data.replace('+', " ");
    let decoded = crate::util::percent::percent_decode(&form).ok_or(bad("a malformed % escape"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|_| bad("not JSON after URL decoding"))?;
    let obj = v.as_object().ok_or(bad("not a JSON object"))?;
    let host = match obj.get("host") {
        Some(serde_json::Value::String(h)) => h.clone(),
        Some(_) => return Err(bad("host is not a string")),
        None => return Err(bad("no host")),
    };
    let port = match obj.get("port") {
        Some(serde_json::Value::String(p))
            if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            p.parse::<u32>().ok()
        }
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(_) => return Err(bad("port is not a number")),
        None => return Err(bad("no port")),
    };
    let port = match port {
        Some(p @ 1..=65535) => p as u16,
        Some(p) => return Err(TicketError::PortOutOfRange { port: i64::from(p) }.into()),
        None => return Err(bad("port is not a number")),
    };
    let ssl = match obj.get("ssl_target") {
        None => false,
        Some(serde_json::Value::Bool(b)) => *b,
        // Python's proxy reads the engine's JSON; some engines sent the string form.
        Some(serde_json::Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(_) => return Err(bad("ssl_target is not a boolean")),
    };
    Ok(Target { host, port, ssl })
}

/// The base64 body of the first `CERTIFICATE` PEM block, whitespace removed.
fn pem_certificate(bytes: &[u8]) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find(BEGIN)? + BEGIN.len();
    let len = text.get(start..)?.find(END)?;
    let body = text.get(start..start + len)?;
    Some(body.chars().filter(|c| !c.is_ascii_whitespace()).collect())
}

/// Whether `s` looks like an oVirt ticket at all: standard base64 of a JSON object.
/// Used to tell an oVirt ticket from a websockify token when both are enabled.
pub fn looks_like_ticket(s: &str) -> bool {
    s.len() > 16
        && s.len() <= MAX_OVIRT_TICKET_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        && STD
            .decode(s)
            .ok()
            .is_some_and(|j| j.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

/// The whole path after the first `/`, percent-decoded, when it is an oVirt ticket:
/// standard base64 contains `/`, so the last path segment is not the ticket here.
pub fn ticket_from_uri(uri: &hyper::Uri) -> Option<String> {
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("token=")))
    {
        return None;
    }
    let rest = uri.path().strip_prefix('/')?;
    let decoded = String::from_utf8(crate::util::percent::percent_decode(rest)?).ok()?;
    looks_like_ticket(&decoded).then_some(decoded)
}

/// A string from a ticket made safe for a log line: escaped, at most 64 characters.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::RsaPrivateKey;
    use std::sync::OnceLock;

    /// One 2048-bit test key for every test: key generation is slow in debug builds.
    fn private_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let mut rng = rand_core::OsRng;
            RsaPrivateKey::new(&mut rng, 2048).expect("test key")
        })
    }

    fn engine() -> Engine {
        let key = RsaPublicKey::from(private_key());
        Engine {
            der: key.to_public_key_der().unwrap().as_bytes().to_vec(),
            key,
            not_before: 0,
            not_after: i64::MAX,
            kid: "ovirt:test".into(),
            allow_sha1: false,
        }
    }

    const NOW: i64 = 1_750_000_000;

    fn stamp(t: i64) -> String {
        let d = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            d.year(),
            d.month() as u8,
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )
    }

    fn sign_pss(message: &[u8], salt_len: usize) -> String {
        use rsa::signature::RandomizedSigner;
        use rsa::signature::SignatureEncoding;
        let key =
            rsa::pss::SigningKey::<Sha256>::new_with_salt_len(private_key().clone(), salt_len);
        let sig = key.sign_with_rng(&mut rand_core::OsRng, message);
        STD.encode(sig.to_bytes())
    }

    fn max_salt() -> usize {
        256 - 32 - 2
    }

    /// Fields as the engine writes them, with the v2 signature over the fixed order.
    fn fields(data: &str) -> serde_json::Map<String, serde_json::Value> {
        let salt = STD.encode([7u8; 8]);
        let (from, to) = (stamp(NOW - 5), stamp(NOW + 115));
        let message = format!("{salt}sha1{from}{to}{data}");
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("salt", salt.as_str()),
            ("digest", "sha1"),
            ("validFrom", &from),
            ("validTo", &to),
            ("data", data),
            ("signedFields", SIGNED_FIELDS),
            ("v2_signature", &sign_pss(message.as_bytes(), max_salt())),
        ] {
            m.insert(k.into(), v.into());
        }
        m
    }

    const DATA: &str =
        "%7B%22host%22%3A%22127.0.0.1%22%2C%22port%22%3A%225901%22%2C%22ssl_target%22%3Afalse%7D";

    fn encode(m: &serde_json::Map<String, serde_json::Value>) -> String {
        STD.encode(serde_json::Value::Object(m.clone()).to_string())
    }

    fn check(ticket: &str) -> Result<Verified, OvirtError> {
        engine().verify(ticket, &VerifyOptions::default(), NOW)
    }

    #[test]
    fn a_ticket_as_the_engine_signs_it_verifies_into_the_common_shape() {
        let v = check(&encode(&fields(DATA))).unwrap();
        assert_eq!(v.claims.host, "127.0.0.1");
        assert_eq!(v.claims.port, 5901);
        assert_eq!(v.claims.tls, TargetTls::None);
        assert_eq!(v.claims.exp, NOW + 115);
        assert_eq!(v.claims.nbf, Some(NOW - 5));
        assert_eq!(v.claims.jti.as_deref(), Some(STD.encode([7u8; 8]).as_str()));
        assert_eq!(v.kid, "ovirt:test");
    }

    #[test]
    fn pss_with_the_maximum_salt_length_verifies_and_a_digest_length_salt_does_not() {
        let key = RsaPublicKey::from(private_key());
        let msg = b"salt,digest,validFrom,validTo,data";
        let max = STD.decode(sign_pss(msg, max_salt())).unwrap();
        assert!(verify_pss_max_salt(&key, msg, &max));
        assert!(!verify_pss_max_salt(&key, b"other", &max));
        // What ring-style verifiers assume; the engine never signs this way.
        let short = STD.decode(sign_pss(msg, 32)).unwrap();
        assert!(!verify_pss_max_salt(&key, msg, &short));
        assert!(!verify_pss_max_salt(&key, msg, &max[..100]));
    }

    #[test]
    fn the_salt_absorption_forgery_is_refused_for_its_signed_fields() {
        let genuine = fields(DATA);
        let s = |k: &str| genuine[k].as_str().unwrap().to_string();
        let mut forged = genuine.clone();
        let absorbed = [
            s("salt"),
            s("digest"),
            s("validFrom"),
            s("validTo"),
            s("data"),
        ]
        .concat();
        forged.insert("salt".into(), absorbed.into());
        forged.insert("signedFields".into(), "salt".into());
        forged.insert("validTo".into(), stamp(NOW + 86400 * 365).into());
        forged.insert(
            "data".into(),
            "%7B%22host%22%3A%2210.0.0.9%22%2C%22port%22%3A%2222%22%7D".into(),
        );
        // Under oVirt's own rule the signature still verifies: the bytes are the same.
        let msg = forged["salt"].as_str().unwrap();
        let sig = STD
            .decode(forged["v2_signature"].as_str().unwrap())
            .unwrap();
        assert!(verify_pss_max_salt(
            &RsaPublicKey::from(private_key()),
            msg.as_bytes(),
            &sig
        ));
        let err = check(&encode(&forged)).unwrap_err();
        assert!(matches!(err, OvirtError::SignedFields { .. }), "{err}");
        // With the engine's list put back, the long salt alone is refused.
        forged.insert("signedFields".into(), SIGNED_FIELDS.into());
        assert_eq!(check(&encode(&forged)).unwrap_err(), OvirtError::Salt);
    }

    #[test]
    fn signed_fields_other_than_the_engines_exact_list_are_refused_even_when_signed() {
        for list in [
            "salt",
            "data",
            "salt,data",
            "data,salt,digest,validFrom,validTo",
            "salt,digest,validFrom,validTo,data,data",
            "salt, digest, validFrom, validTo, data",
            "",
        ] {
            let mut m = fields(DATA);
            m.insert("signedFields".into(), list.into());
            let err = check(&encode(&m)).unwrap_err();
            assert!(
                matches!(err, OvirtError::SignedFields { .. }),
                "{list}: {err}"
            );
        }
    }

    #[test]
    fn shifting_a_boundary_between_signed_fields_breaks_the_fixed_widths() {
        // validTo swallows the first character of data: same signed bytes, other split.
        let mut m = fields(DATA);
        let to = format!("{}{}", m["validTo"].as_str().unwrap(), &DATA[..1]);
        m.insert("validTo".into(), to.into());
        m.insert("data".into(), DATA[1..].into());
        assert!(matches!(
            check(&encode(&m)).unwrap_err(),
            OvirtError::Time {
                field: "validTo",
                ..
            }
        ));
    }

    #[test]
    fn a_v1_only_ticket_is_refused_unless_sha1_is_allowed() {
        use rsa::signature::{SignatureEncoding, Signer};
        let mut m = fields(DATA);
        m.remove("v2_signature");
        let message = ["salt", "digest", "validFrom", "validTo", "data"]
            .map(|k| m[k].as_str().unwrap().to_string())
            .concat();
        let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(private_key().clone());
        let sig = STD.encode(signer.sign(message.as_bytes()).to_bytes());
        m.insert("signature".into(), sig.into());
        let ticket = encode(&m);
        let err = check(&ticket).unwrap_err();
        assert_eq!(err, OvirtError::NoV2Signature);
        let mut allowing = engine();
        allowing.allow_sha1 = true;
        let v = allowing
            .verify(&ticket, &VerifyOptions::default(), NOW)
            .unwrap();
        assert_eq!(v.claims.port, 5901);
    }

    #[test]
    fn time_uses_the_same_leeway_and_lifetime_cap_as_ed25519_tickets() {
        let t = encode(&fields(DATA));
        let opts = VerifyOptions::default();
        assert!(engine().verify(&t, &opts, NOW + 115 + 29).is_ok());
        let err = engine().verify(&t, &opts, NOW + 115 + 30).unwrap_err();
        assert!(
            matches!(err, OvirtError::Ticket(TicketError::Expired { .. })),
            "{err}"
        );
        let err = engine().verify(&t, &opts, NOW - 5 - 31).unwrap_err();
        assert!(
            matches!(err, OvirtError::Ticket(TicketError::NotYetValid { .. })),
            "{err}"
        );
        let short = VerifyOptions {
            max_lifetime_secs: 60,
            ..VerifyOptions::default()
        };
        assert!(matches!(
            engine().verify(&t, &short, NOW),
            Err(OvirtError::Ticket(TicketError::LifetimeTooLong { .. }))
        ));
    }

    #[test]
    fn an_expired_engine_certificate_refuses_every_ticket() {
        let mut e = engine();
        e.not_after = NOW - 1;
        let err = e
            .verify(&encode(&fields(DATA)), &VerifyOptions::default(), NOW)
            .unwrap_err();
        assert!(matches!(err, OvirtError::EngineCertificate { .. }), "{err}");
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn times_are_exactly_fourteen_digits_of_a_real_utc_date() {
        assert_eq!(parse_time("validTo", "19700101000000"), Ok(0));
        assert_eq!(parse_time("validTo", "20240229235959"), Ok(1_709_251_199));
        for bad in [
            "2024022923595",
            "202402292359590",
            "20230229000000",
            "20241301000000",
            "20240101240000",
            "2024-01-01T000",
            "+2024010100000",
            "２０２４０１０１０００００",
            "",
        ] {
            assert!(parse_time("validTo", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn data_is_form_decoded_json_with_a_string_port_and_a_boolean_ssl_target() {
        let d = |s: &str| parse_data(s);
        assert_eq!(
            d("%7B%22host%22%3A+%22h1.example%22%2C+%22port%22%3A+%225900%22%2C+%22ssl_target%22%3A+true%7D"),
            Ok(Target { host: "h1.example".into(), port: 5900, ssl: true })
        );
        assert_eq!(d(r#"{"host":"::1","port":5902}"#).unwrap().port, 5902);
        assert!(d(r#"{"host":"h","port":"0"}"#).is_err());
        assert!(d(r#"{"host":"h","port":"70000"}"#).is_err());
        assert!(d(r#"{"host":"h","port":"59a"}"#).is_err());
        assert!(d(r#"{"port":"5900"}"#).is_err());
        assert!(d(r#"{"host":"h","port":"5900","ssl_target":"yes"}"#).is_err());
        assert!(d("%ZZ").is_err());
        assert!(d("[]").is_err());
    }

    #[test]
    fn malformed_tickets_are_refused_as_malformed() {
        assert_eq!(check("not base64 at all!").unwrap_err(), OvirtError::Base64);
        assert!(matches!(
            check(&"A".repeat(MAX_OVIRT_TICKET_LEN + 4)),
            Err(OvirtError::TooLong { .. })
        ));
        assert!(matches!(
            check(&STD.encode("[1,2]")).unwrap_err(),
            OvirtError::Json { .. }
        ));
        let dup = STD.encode(r#"{"salt":"a","salt":"b"}"#);
        assert_eq!(
            check(&dup).unwrap_err(),
            OvirtError::DuplicateField {
                field: "salt".into()
            }
        );
        let mut m = fields(DATA);
        m.insert("validTo".into(), 20250101000000u64.into());
        assert_eq!(
            check(&encode(&m)).unwrap_err(),
            OvirtError::NotString { field: "validTo" }
        );
        let mut m = fields(DATA);
        m.remove("data");
        assert_eq!(
            check(&encode(&m)).unwrap_err(),
            OvirtError::MissingField { field: "data" }
        );
        let mut m = fields(DATA);
        m.insert("digest".into(), "sha256".into());
        assert!(matches!(
            check(&encode(&m)),
            Err(OvirtError::DigestName { .. })
        ));
    }

    #[test]
    fn a_changed_value_or_another_key_fails_the_signature() {
        let mut m = fields(DATA);
        m.insert(
            "data".into(),
            "%7B%22host%22%3A%22127.0.0.1%22%2C%22port%22%3A%225902%22%7D".into(),
        );
        let err = check(&encode(&m)).unwrap_err();
        assert!(matches!(err, OvirtError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn the_ticket_is_taken_from_the_whole_path_even_with_slashes_or_escapes() {
        let t = encode(&fields(DATA));
        let uri = |s: String| -> hyper::Uri { s.parse().unwrap() };
        assert_eq!(ticket_from_uri(&uri(format!("/{t}"))), Some(t.clone()));
        let escaped = t
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(
            ticket_from_uri(&uri(format!("/{escaped}"))),
            Some(t.clone())
        );
        assert_eq!(ticket_from_uri(&uri("/abc.def.ghi".into())), None);
        assert_eq!(ticket_from_uri(&uri(format!("/x?token={t}"))), None);
    }
}

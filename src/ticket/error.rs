//! Every reason a ticket is refused: [`TicketError`], one variant per distinct failure,
//! with its HTTP status and its stable machine code, and [`shown`], which makes text
//! from a ticket safe to put in a message.

use super::base64url::Base64Problem;
use super::host::HostProblem;
use super::limits::{MAX_JSON_LEN, MAX_TICKET_LEN};
use std::fmt;

/// Which part of the ticket an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Claims,
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Claims => "claims",
            Part::Signature => "signature",
        })
    }
}

/// Why a ticket was refused: one variant per distinct failure.
///
/// Strings inside a variant that came from the ticket (a `kid`, a host, a member name)
/// are already escaped and truncated by `shown`, so the message is safe to log and to
/// show; the ticket itself is never part of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    // Rule 1: size and shape.
    #[error("no ticket was given")]
    Empty,
    #[error("ticket is {len} bytes, more than the maximum of {MAX_TICKET_LEN}")]
    TooLong { len: usize },
    #[error("ticket is an encrypted JWE (five segments); only signed tickets are accepted")]
    Jwe,
    #[error("ticket is not three dot-separated segments (found {found})")]
    Segments { found: usize },
    #[error("ticket {part} is not canonical base64url: {problem}")]
    Base64 { part: Part, problem: Base64Problem },
    #[error("ticket {part} is {len} bytes of JSON, more than the maximum of {MAX_JSON_LEN}")]
    JsonTooLong { part: Part, len: usize },
    #[error("ticket {part} is not valid JSON (error at line {line}, column {column})")]
    Json {
        part: Part,
        line: usize,
        column: usize,
    },
    #[error("ticket {part} has the member {key} more than once")]
    DuplicateKey { part: Part, key: String },
    #[error("ticket {part} is not a JSON object")]
    NotObject { part: Part },
    #[error("ticket has no {claim} claim")]
    MissingClaim { claim: &'static str },
    #[error("ticket claim {claim} must be {expected}")]
    ClaimType {
        claim: &'static str,
        expected: &'static str,
    },
    #[error(
        "ticket claim {claim} must be a whole number of seconds, not a fraction or an exponent"
    )]
    TimeNotInteger { claim: &'static str },
    #[error("ticket claim {claim} is out of range (beyond ±2^53 seconds)")]
    TimeOutOfRange { claim: &'static str },
    #[error("ticket port {port} is outside 1..65535")]
    PortOutOfRange { port: i64 },
    #[error("ticket host {host} is not usable: {problem}")]
    BadHost { host: String, problem: HostProblem },
    #[error("ticket kind {value} is unknown (expected vnc, spice or serial)")]
    UnknownKind { value: String },
    #[error("ticket tls {value} is unknown (expected none, tls or vencrypt)")]
    UnknownTls { value: String },
    // Rule 2: header.
    #[error("ticket header has no alg; only EdDSA is accepted")]
    MissingAlg,
    #[error("ticket algorithm {alg} is refused; only EdDSA is accepted")]
    Alg { alg: String },
    #[error("ticket header typ {typ} is refused; a console ticket's typ is JWT or absent")]
    Typ { typ: String },
    #[error("ticket header has a crit member; no JWS extensions are supported")]
    Crit,
    #[error("ticket header member {member} tries to choose the verification key; only the proxy's trusted keys are used")]
    KeyInHeader { member: &'static str },
    #[error("ticket header kid must be a string")]
    KidNotString,
    #[error("ticket signed by unknown key {kid}")]
    UnknownKey { kid: String },
    // Rule 3: signature.
    #[error("ticket signature is {len} bytes; an Ed25519 signature is 64")]
    SignatureLength { len: usize },
    #[error("ticket signature does not verify with {}", match kid { Some(k) => format!("trusted key {k}"), None => "any trusted key".to_owned() })]
    BadSignature { kid: Option<String> },
    // Rule 4: time.
    #[error("ticket expired {secs_ago} s ago")]
    Expired { secs_ago: i64 },
    #[error("ticket is not valid for another {secs} s")]
    NotYetValid { secs: i64 },
    // Rule 5: lifetime.
    #[error("ticket lifetime {lifetime} s exceeds the maximum of {max} s")]
    LifetimeTooLong { lifetime: i64, max: i64 },
    // Rule 6: audience.
    #[error("ticket names no audience, and this proxy requires one")]
    NoAudience,
    #[error("ticket audience does not include this proxy")]
    WrongAudience,
}

impl TicketError {
    /// HTTP status for a refusal before the upgrade: 400 malformed, 401 bad or
    /// expired, 403 audience.
    pub fn status(&self) -> u16 {
        use TicketError::*;
        match self {
            Empty
            | TooLong { .. }
            | Jwe
            | Segments { .. }
            | Base64 { .. }
            | JsonTooLong { .. }
            | Json { .. }
            | DuplicateKey { .. }
            | NotObject { .. }
            | MissingClaim { .. }
            | ClaimType { .. }
            | TimeNotInteger { .. }
            | TimeOutOfRange { .. }
            | PortOutOfRange { .. }
            | BadHost { .. }
            | UnknownKind { .. }
            | UnknownTls { .. } => 400,
            MissingAlg
            | Alg { .. }
            | Typ { .. }
            | Crit
            | KeyInHeader { .. }
            | KidNotString
            | UnknownKey { .. }
            | SignatureLength { .. }
            | BadSignature { .. }
            | Expired { .. }
            | NotYetValid { .. }
            | LifetimeTooLong { .. } => 401,
            NoAudience | WrongAudience => 403,
        }
    }

    /// A short stable identifier (`expired`, `bad_signature`, ...) for logs, metrics and
    /// the console page. Part of the interface: never rename one.
    pub fn code(&self) -> &'static str {
        use TicketError::*;
        match self {
            Empty => "empty",
            TooLong { .. } => "too_long",
            Jwe => "jwe",
            Segments { .. } => "bad_segments",
            Base64 { .. } => "bad_base64",
            JsonTooLong { .. } => "json_too_long",
            Json { .. } => "bad_json",
            DuplicateKey { .. } => "duplicate_key",
            NotObject { .. } => "not_object",
            MissingClaim { .. } => "missing_claim",
            ClaimType { .. } => "bad_claim_type",
            TimeNotInteger { .. } => "time_not_integer",
            TimeOutOfRange { .. } => "time_out_of_range",
            PortOutOfRange { .. } => "bad_port",
            BadHost { .. } => "bad_host",
            UnknownKind { .. } => "unknown_kind",
            UnknownTls { .. } => "unknown_tls",
            MissingAlg => "missing_alg",
            Alg { .. } => "bad_alg",
            Typ { .. } => "bad_typ",
            Crit => "crit",
            KeyInHeader { .. } => "key_in_header",
            KidNotString => "bad_kid",
            UnknownKey { .. } => "unknown_key",
            SignatureLength { .. } => "bad_signature_length",
            BadSignature { .. } => "bad_signature",
            Expired { .. } => "expired",
            NotYetValid { .. } => "not_yet_valid",
            LifetimeTooLong { .. } => "lifetime_too_long",
            NoAudience => "no_audience",
            WrongAudience => "wrong_audience",
        }
    }
}

/// A string from a ticket, made safe to put in a log line or a page: bare when it is
/// plain base64url-ish text (as every honest `kid` is), otherwise quoted with control
/// and non-ASCII characters escaped; at most 64 characters either way.
pub(super) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    let mut out = String::new();
    if !plain {
        out.push('"');
    }
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if plain {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    if !plain {
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_from_a_ticket_are_escaped_and_truncated_before_display() {
        assert_eq!(shown("abc-_1.x:y"), "abc-_1.x:y");
        assert_eq!(shown("a\nb\u{1b}[31m"), r#""a\nb\u{1b}[31m""#);
        assert_eq!(shown(""), r#""""#);
        let long = shown(&"k".repeat(500));
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn every_refusal_has_its_own_snake_case_code_and_a_status() {
        use TicketError::*;
        let all = [
            Empty,
            TooLong { len: 1 },
            Jwe,
            Segments { found: 1 },
            Base64 {
                part: Part::Header,
                problem: Base64Problem::Padding,
            },
            JsonTooLong {
                part: Part::Header,
                len: 1,
            },
            Json {
                part: Part::Header,
                line: 1,
                column: 1,
            },
            DuplicateKey {
                part: Part::Header,
                key: "k".into(),
            },
            NotObject { part: Part::Header },
            MissingClaim { claim: "host" },
            ClaimType {
                claim: "host",
                expected: "a string",
            },
            TimeNotInteger { claim: "exp" },
            TimeOutOfRange { claim: "exp" },
            PortOutOfRange { port: 0 },
            BadHost {
                host: "h".into(),
                problem: HostProblem::Empty,
            },
            UnknownKind { value: "x".into() },
            UnknownTls { value: "x".into() },
            MissingAlg,
            Alg { alg: "none".into() },
            Typ { typ: "JOSE".into() },
            Crit,
            KeyInHeader { member: "jwk" },
            KidNotString,
            UnknownKey { kid: "k".into() },
            SignatureLength { len: 0 },
            BadSignature { kid: None },
            Expired { secs_ago: 1 },
            NotYetValid { secs: 1 },
            LifetimeTooLong {
                lifetime: 2,
                max: 1,
            },
            NoAudience,
            WrongAudience,
        ];
        let mut codes: Vec<&str> = all.iter().map(TicketError::code).collect();
        for (e, code) in all.iter().zip(&codes) {
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code}"
            );
            assert!([400, 401, 403].contains(&e.status()));
            assert!(
                e.to_string().starts_with("ticket") || matches!(e, Empty),
                "{e}"
            );
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "codes must be distinct");
    }
}

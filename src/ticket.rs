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

use crate::keys::KeySet;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Largest ticket accepted (rule 1).
pub const MAX_TICKET_LEN: usize = 4096;
/// Largest decoded header or claims JSON (rule 1).
pub const MAX_JSON_LEN: usize = 2048;
/// Largest magnitude of `exp`, `nbf` and `iat`: 2^53 − 1, the largest integer every
/// JSON reader holds exactly (JavaScript and many Java and Go decoders read numbers as
/// doubles). A bigger value could mean different times to the signer and to us, and it
/// keeps `exp + leeway` far from `i64` overflow. It is 285 million years either side
/// of 1970, so no honest ticket comes near it.
pub const MAX_TIME_ABS: i64 = (1 << 53) - 1;
/// Longest DNS name in the `host` claim (RFC 1035 presentation form, no trailing dot).
pub const MAX_HOST_LEN: usize = 253;

/// Base64url as RFC 7515 requires it, and only in its canonical spelling: no `=`
/// padding, no `+` or `/`, and no set bits after the last whole byte. Each of those
/// would let one ticket be written several ways, which defeats replay records keyed
/// by the ticket text and invites parser differentials.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The header this crate signs with; `kid` is appended.
const ALG: &str = "EdDSA";

/// Header members that would let the ticket pick its own verification key. The proxy
/// verifies only with keys it was configured to trust, so a ticket carrying one of
/// these is either confused or an attack, and is refused either way.
const KEY_CHOOSING_MEMBERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// Which client the console page runs (`kind` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Vnc,
    Spice,
    Serial,
}

impl Kind {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vnc => "vnc",
            Kind::Spice => "spice",
            Kind::Serial => "serial",
        }
    }
}

impl FromStr for Kind {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, TicketError> {
        match s {
            "vnc" => Ok(Kind::Vnc),
            "spice" => Ok(Kind::Spice),
            "serial" => Ok(Kind::Serial),
            other => Err(TicketError::UnknownKind {
                value: shown(other),
            }),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the proxy talks to the console server (`tls` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetTls {
    #[default]
    None,
    Tls,
    Vencrypt,
}

impl TargetTls {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetTls::None => "none",
            TargetTls::Tls => "tls",
            TargetTls::Vencrypt => "vencrypt",
        }
    }
}

impl FromStr for TargetTls {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, TicketError> {
        match s {
            "none" => Ok(TargetTls::None),
            "tls" => Ok(TargetTls::Tls),
            "vencrypt" => Ok(TargetTls::Vencrypt),
            other => Err(TicketError::UnknownTls {
                value: shown(other),
            }),
        }
    }
}

impl fmt::Display for TargetTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a ticket, as signed.
///
/// Serializes to the ticket's claims object: `aud` as a string when there is one, an
/// array when several, absent when none; `kind` and `tls` absent at their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub host: String,
    pub port: u16,
    pub exp: i64,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    /// Empty when the ticket names no audience.
    pub aud: Vec<String>,
    pub jti: Option<String>,
    pub sub: Option<String>,
    pub kind: Kind,
    pub tls: TargetTls,
}

impl Claims {
    /// Claims for `host:port` usable until `exp` (Unix seconds).
    pub fn new(host: impl Into<String>, port: u16, exp: i64) -> Self {
        Claims {
            host: host.into(),
            port,
            exp,
            nbf: None,
            iat: None,
            aud: Vec::new(),
            jti: None,
            sub: None,
            kind: Kind::Vnc,
            tls: TargetTls::None,
        }
    }
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }
    /// Adds one audience; call again for several.
    pub fn with_aud(mut self, aud: impl Into<String>) -> Self {
        self.aud.push(aud.into());
        self
    }
    pub fn with_jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }
    pub fn with_nbf(mut self, nbf: i64) -> Self {
        self.nbf = Some(nbf);
        self
    }
    pub fn with_iat(mut self, iat: i64) -> Self {
        self.iat = Some(iat);
        self
    }
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }
    pub fn with_tls(mut self, tls: TargetTls) -> Self {
        self.tls = tls;
        self
    }

    /// Checks the claims the way [`verify`] would read them back, so a signer can refuse
    /// to issue a ticket every proxy would refuse (a host with a port in it, port 0, a
    /// time beyond ±(2^53 − 1)).
    pub fn validate(&self) -> Result<(), TicketError> {
        check_host(&self.host)?;
        if self.port == 0 {
            return Err(TicketError::PortOutOfRange { port: 0 });
        }
        check_time("exp", self.exp)?;
        if let Some(nbf) = self.nbf {
            check_time("nbf", nbf)?;
        }
        if let Some(iat) = self.iat {
            check_time("iat", iat)?;
        }
        Ok(())
    }

    /// The claims object exactly as it is signed (keys in sorted order).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("host".into(), Value::from(self.host.as_str()));
        m.insert("port".into(), Value::from(self.port));
        m.insert("exp".into(), Value::from(self.exp));
        if let Some(nbf) = self.nbf {
            m.insert("nbf".into(), Value::from(nbf));
        }
        if let Some(iat) = self.iat {
            m.insert("iat".into(), Value::from(iat));
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => {
                m.insert("aud".into(), Value::from(one.as_str()));
            }
            several => {
                m.insert("aud".into(), Value::from(several.to_vec()));
            }
        }
        if let Some(jti) = &self.jti {
            m.insert("jti".into(), Value::from(jti.as_str()));
        }
        if let Some(sub) = &self.sub {
            m.insert("sub".into(), Value::from(sub.as_str()));
        }
        if self.kind != Kind::default() {
            m.insert("kind".into(), Value::from(self.kind.as_str()));
        }
        if self.tls != TargetTls::default() {
            m.insert("tls".into(), Value::from(self.tls.as_str()));
        }
        Value::Object(m)
    }

    /// Reads a claims object strictly: required claims present, every known claim of
    /// its exact type, unknown claims ignored.
    fn from_object(m: &Map<String, Value>) -> Result<Claims, TicketError> {
        let host = match m.get("host") {
            None => return Err(TicketError::MissingClaim { claim: "host" }),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "host",
                    expected: "a string",
                })
            }
        };
        check_host(&host)?;
        let port = match m.get("port") {
            None => return Err(TicketError::MissingClaim { claim: "port" }),
            Some(Value::Number(n)) => port_from(n)?,
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "port",
                    expected: "an integer 1..65535",
                })
            }
        };
        let exp = match m.get("exp") {
            None => return Err(TicketError::MissingClaim { claim: "exp" }),
            Some(v) => time_from("exp", v)?,
        };
        let nbf = m.get("nbf").map(|v| time_from("nbf", v)).transpose()?;
        let iat = m.get("iat").map(|v| time_from("iat", v)).transpose()?;
        let aud = match m.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(aud_type()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(aud_type()),
        };
        let jti = optional_string(m, "jti")?;
        let sub = optional_string(m, "sub")?;
        let kind = match m.get("kind") {
            None => Kind::default(),
            Some(Value::String(s)) => s.parse()?,
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "kind",
                    expected: "a string",
                })
            }
        };
        let tls = match m.get("tls") {
            None => TargetTls::default(),
            Some(Value::String(s)) => s.parse()?,
            Some(_) => {
                return Err(TicketError::ClaimType {
                    claim: "tls",
                    expected: "a string",
                })
            }
        };
        Ok(Claims {
            host,
            port,
            exp,
            nbf,
            iat,
            aud,
            jti,
            sub,
            kind,
            tls,
        })
    }
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

fn aud_type() -> TicketError {
    TicketError::ClaimType {
        claim: "aud",
        expected: "a string or an array of strings",
    }
}

fn optional_string(
    m: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, TicketError> {
    match m.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TicketError::ClaimType {
            claim,
            expected: "a string",
        }),
    }
}

fn port_from(n: &Number) -> Result<u16, TicketError> {
    if let Some(i) = n.as_i64() {
        return u16::try_from(i)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(TicketError::PortOutOfRange { port: i });
    }
    if n.as_u64().is_some() {
        return Err(TicketError::PortOutOfRange { port: i64::MAX });
    }
    Err(TicketError::ClaimType {
        claim: "port",
        expected: "an integer 1..65535",
    })
}

/// A NumericDate claim: a JSON integer (not a string, not `1.0`, not `1e9`) within
/// ±[`MAX_TIME_ABS`].
fn time_from(claim: &'static str, v: &Value) -> Result<i64, TicketError> {
    let n = match v {
        Value::Number(n) => n,
        _ => {
            return Err(TicketError::ClaimType {
                claim,
                expected: "an integer number of seconds since 1970",
            })
        }
    };
    if let Some(i) = n.as_i64() {
        check_time(claim, i)?;
        return Ok(i);
    }
    if n.as_u64().is_some() {
        return Err(TicketError::TimeOutOfRange { claim });
    }
    // A float: serde_json reads fractions, exponents and integers too big for 64 bits
    // as f64. Tell the huge apart from the fractional, so the reason reads true.
    match n.as_f64() {
        Some(f) if f.abs() > MAX_TIME_ABS as f64 => Err(TicketError::TimeOutOfRange { claim }),
        _ => Err(TicketError::TimeNotInteger { claim }),
    }
}

fn check_time(claim: &'static str, t: i64) -> Result<(), TicketError> {
    if t.checked_abs().is_some_and(|a| a <= MAX_TIME_ABS) {
        Ok(())
    } else {
        Err(TicketError::TimeOutOfRange { claim })
    }
}

/// Why a `host` claim is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProblem {
    Empty,
    TooLong,
    NotAscii,
    Whitespace,
    Brackets,
    HasPort,
    BadIpv6,
    EmptyLabel,
    LabelTooLong,
    BadCharacter,
    HyphenAtLabelEdge,
    NumericName,
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostProblem::Empty => "it is empty",
            HostProblem::TooLong => "it is longer than 253 characters",
            HostProblem::NotAscii => {
                "it contains non-ASCII characters (write an international name in its xn-- form)"
            }
            HostProblem::Whitespace => "it contains whitespace or control characters",
            HostProblem::Brackets => "it has brackets (write an IPv6 address without [ ])",
            HostProblem::HasPort => "it contains a port (put the port in the port claim)",
            HostProblem::BadIpv6 => "it has a colon but is not an IPv6 address",
            HostProblem::EmptyLabel => "it has an empty label (a leading, trailing or double dot)",
            HostProblem::LabelTooLong => "a label is longer than 63 characters",
            HostProblem::BadCharacter => {
                "it has a character other than letters, digits, hyphens and dots"
            }
            HostProblem::HyphenAtLabelEdge => "a label starts or ends with a hyphen",
            HostProblem::NumericName => {
                "it looks like an IPv4 address but is not one (write four decimal octets)"
            }
        })
    }
}

/// The `host` grammar: an IPv4 literal in dotted-quad form, a bare IPv6 literal (no
/// brackets, no zone), or a DNS name of LDH labels (letters, digits, hyphens; 1–63
/// characters each, no hyphen at either end; at most 253 characters; no trailing
/// dot). A name whose last label is numeric (`1.2.3`, `0x7f.1`, `2130706433`) is
/// refused: the C resolver reads those as IPv4 addresses in inet_aton's shorthand,
/// so the target policy would see one host and the connection reach another.
fn check_host(host: &str) -> Result<(), TicketError> {
    host_problem(host).map_or(Ok(()), |problem| {
        Err(TicketError::BadHost {
            host: shown(host),
            problem,
        })
    })
}

fn host_problem(host: &str) -> Option<HostProblem> {
    if host.is_empty() {
        return Some(HostProblem::Empty);
    }
    if !host.is_ascii() {
        return Some(HostProblem::NotAscii);
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Some(HostProblem::Whitespace);
    }
    if host.contains(['[', ']']) {
        return Some(HostProblem::Brackets);
    }
    if host.len() > MAX_HOST_LEN {
        return Some(HostProblem::TooLong);
    }
    if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return None;
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        let one_colon = !name.contains(':');
        let numeric_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        return Some(if one_colon && numeric_port {
            HostProblem::HasPort
        } else {
            HostProblem::BadIpv6
        });
    }
    let mut last = "";
    for label in host.split('.') {
        if label.is_empty() {
            return Some(HostProblem::EmptyLabel);
        }
        if label.len() > 63 {
            return Some(HostProblem::LabelTooLong);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some(HostProblem::BadCharacter);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(HostProblem::HyphenAtLabelEdge);
        }
        last = label;
    }
    if looks_numeric(last) {
        return Some(HostProblem::NumericName);
    }
    None
}

/// A label inet_aton would read as a number: decimal, octal or `0x` hex.
fn looks_numeric(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

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

/// Why a segment is not canonical base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Problem {
    Padding,
    StandardAlphabet,
    BadCharacter,
    Length,
    TrailingBits,
}

impl fmt::Display for Base64Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Base64Problem::Padding => "it has = padding",
            Base64Problem::StandardAlphabet => "it uses + or / (standard base64, not base64url)",
            Base64Problem::BadCharacter => "it has a character outside A-Z a-z 0-9 - _",
            Base64Problem::Length => "its length is impossible for base64",
            Base64Problem::TrailingBits => "its last character has bits set beyond the data",
        })
    }
}

impl From<base64::DecodeError> for Base64Problem {
    fn from(e: base64::DecodeError) -> Self {
        match e {
            base64::DecodeError::InvalidByte(_, b'=') | base64::DecodeError::InvalidPadding => {
                Base64Problem::Padding
            }
            base64::DecodeError::InvalidByte(_, b'+' | b'/') => Base64Problem::StandardAlphabet,
            base64::DecodeError::InvalidByte(..) => Base64Problem::BadCharacter,
            base64::DecodeError::InvalidLength(_) => Base64Problem::Length,
            base64::DecodeError::InvalidLastSymbol(..) => Base64Problem::TrailingBits,
        }
    }
}

/// Why a ticket was refused: one variant per distinct failure.
///
/// Strings inside a variant that came from the ticket (a `kid`, a host, a member name)
/// are already escaped and truncated by [`shown`], so the message is safe to log and to
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
fn shown(s: &str) -> String {
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

/// Signs claims with one private key; the key id goes into the header.
pub struct Signer {
    key: SigningKey,
    kid: String,
}

impl Signer {
    pub fn new(key: SigningKey) -> Self {
        let kid = crate::keys::thumbprint(&key.verifying_key());
        Signer { key, kid }
    }
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The compact JWS for `claims`, header `{"alg":"EdDSA","typ":"JWT","kid":…}`.
    ///
    /// Signs whatever it is given; call [`Claims::validate`] first to refuse claims no
    /// proxy would accept.
    pub fn sign(&self, claims: &Claims) -> String {
        // The kid is base64url, so it needs no JSON escaping.
        let header = format!(r#"{{"alg":"{ALG}","typ":"JWT","kid":"{}"}}"#, self.kid);
        let input = format!(
            "{}.{}",
            B64.encode(header),
            B64.encode(claims.to_json().to_string())
        );
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }
}

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
    let header = decode_object(Part::Header, h64)?;
    let claims_json = decode_object(Part::Claims, c64)?;
    let sig = decode(Part::Signature, s64)?;
    let claims = Claims::from_object(&claims_json)?;

    // Rule 2: the header names EdDSA, no extensions, no key of its own, a trusted kid.
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
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => match keys.get(k) {
            Some(key) => Some((k.as_str(), key)),
            None => return Err(TicketError::UnknownKey { kid: shown(k) }),
        },
        Some(_) => return Err(TicketError::KidNotString),
    };

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

fn decode(part: Part, segment: &str) -> Result<Vec<u8>, TicketError> {
    B64.decode(segment).map_err(|e| TicketError::Base64 {
        part,
        problem: e.into(),
    })
}

/// Decodes a segment into a JSON object, refusing duplicate members at any depth.
///
/// Duplicates are refused, not resolved: RFC 8259 leaves their meaning open, and
/// readers disagree. `serde_json::Value` and PyJWT (`json.loads`) keep the last one;
/// serde's derived struct deserializers refuse duplicates of the fields they know but
/// silently skip unknown ones. A ticket `{"host":"a","host":"b"}` must not mean one
/// host to the engine's audit log and another to the proxy, so we refuse it outright.
fn decode_object(part: Part, segment: &str) -> Result<Map<String, Value>, TicketError> {
    let bytes = decode(part, segment)?;
    if bytes.len() > MAX_JSON_LEN {
        return Err(TicketError::JsonTooLong {
            part,
            len: bytes.len(),
        });
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let parsed = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TicketError::NotObject { part }),
        Err(e) => match duplicate.into_inner() {
            Some(key) => Err(TicketError::DuplicateKey { part, key }),
            None => Err(TicketError::Json {
                part,
                line: e.line(),
                column: e.column(),
            }),
        },
    }
}

/// Builds a `serde_json::Value`, failing on the first duplicate object member and
/// recording its name (escaped by [`shown`]) for the error.
struct StrictValue<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite f64 from text (it refuses 1e400), so the
        // Null branch only exists to avoid a panic path.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue {
            duplicate: self.duplicate,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if m.contains_key(&key) {
                let err = de::Error::custom(format_args!("duplicate member {key:?}"));
                *self.duplicate.borrow_mut() = Some(shown(&key));
                return Err(err);
            }
            let v = map.next_value_seed(StrictValue {
                duplicate: self.duplicate,
            })?;
            m.insert(key, v);
        }
        Ok(Value::Object(m))
    }
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
    use super::*;
    use crate::keys::thumbprint;
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
    use ed25519_dalek::{Verifier as _, VerifyingKey};
    use sha2::{Digest, Sha256};

    const NOW: i64 = 1_700_000_000;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }
    fn other_key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }
    fn kid() -> String {
        thumbprint(&key().verifying_key())
    }
    fn trusted() -> KeySet {
        let mut set = KeySet::new();
        set.insert(key().verifying_key());
        set
    }
    fn claims() -> Claims {
        Claims::new("10.0.0.5", 5900, NOW + 120)
    }
    fn check(ticket: &str) -> Result<Verified, TicketError> {
        verify(ticket, &trusted(), &VerifyOptions::default(), NOW)
    }
    fn refused(ticket: &str) -> TicketError {
        check(ticket).expect_err("ticket should be refused")
    }
    fn b64(bytes: impl AsRef<[u8]>) -> String {
        B64.encode(bytes)
    }
    fn unb64(segment: &str) -> String {
        String::from_utf8(B64.decode(segment).unwrap()).unwrap()
    }
    fn header() -> String {
        format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, kid())
    }
    fn good_claims() -> String {
        format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{}}}"#, NOW + 120)
    }
    /// Signs arbitrary header and claims text, so each rule is tested with a valid
    /// signature and fails for its own reason.
    fn forge(key: &SigningKey, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.to_bytes()))
    }
    fn forge_claims(claims: &str) -> String {
        forge(&key(), &header(), claims)
    }
    fn with_segment(ticket: &str, index: usize, segment: &str) -> String {
        let mut parts: Vec<&str> = ticket.split('.').collect();
        parts[index] = segment;
        parts.join(".")
    }
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

    // Round trip and encoding.

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
            .with_tls(TargetTls::Tls);
        let signer = Signer::new(key());
        let v = check(&signer.sign(&c)).unwrap();
        assert_eq!(v.claims, c);
        assert_eq!(v.kid, signer.kid());
        assert_eq!(v.kid, kid());
    }

    #[test]
    fn the_header_is_exactly_alg_typ_kid() {
        let t = Signer::new(key()).sign(&claims());
        let h = t.split('.').next().unwrap();
        assert_eq!(unb64(h), header());
        assert!(!t.contains(['=', '+', '/']));
    }

    #[test]
    fn default_kind_and_tls_and_absent_claims_are_omitted() {
        let t = Signer::new(key()).sign(&claims());
        let c = unb64(t.split('.').nth(1).unwrap());
        assert_eq!(
            c,
            format!(r#"{{"exp":{},"host":"10.0.0.5","port":5900}}"#, NOW + 120)
        );
    }

    #[test]
    fn one_audience_is_a_string_and_several_are_an_array() {
        let one = claims().with_aud("a").to_json();
        assert_eq!(one["aud"], Value::from("a"));
        let two = claims().with_aud("a").with_aud("b").to_json();
        assert_eq!(two["aud"], serde_json::json!(["a", "b"]));
        let v = check(&forge_claims(&format!(
            r#"{{"host":"h.example","port":1,"exp":{},"aud":"a"}}"#,
            NOW + 1
        )))
        .unwrap();
        assert_eq!(v.claims.aud, vec!["a".to_owned()]);
    }

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
    fn unknown_claims_are_ignored() {
        let t = forge_claims(&format!(
            r#"{{"host":"10.0.0.5","port":5900,"exp":{},"vm":{{"id":7}},"extra":[1,2]}}"#,
            NOW + 120
        ));
        assert_eq!(check(&t).unwrap().claims, claims());
    }

    // Rule 1: size and shape.

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

    #[test]
    fn padding_in_a_segment_is_refused() {
        let t = Signer::new(key()).sign(&claims());
        let padded = base64::engine::general_purpose::URL_SAFE.encode(header());
        assert!(padded.ends_with('='));
        let err = refused(&with_segment(&t, 0, &padded));
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Header,
                problem: Base64Problem::Padding
            }
        );
    }

    #[test]
    fn the_standard_base64_alphabet_is_refused() {
        let err = refused("e3+9.e30.e30");
        let problem = Base64Problem::StandardAlphabet;
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Header,
                problem
            }
        );
        let err = refused("e30.e3/9.e30");
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Claims,
                problem
            }
        );
    }

    #[test]
    fn non_zero_trailing_bits_are_refused() {
        // "e30" is "{}"; "e31" decodes to the same bytes with a stray bit set.
        let problem = Base64Problem::TrailingBits;
        assert_eq!(
            refused("e31.e30.e30"),
            TicketError::Base64 {
                part: Part::Header,
                problem
            }
        );
        // The same trick on a valid signature would give one ticket two spellings.
        let t = Signer::new(key()).sign(&claims());
        let sig = t.rsplit('.').next().unwrap();
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).unwrap();
        let twin = alphabet.chars().nth(index | 1).unwrap();
        assert_ne!(last, twin);
        let respelled = format!("{}{twin}", &sig[..sig.len() - 1]);
        let err = refused(&with_segment(&t, 2, &respelled));
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Signature,
                problem
            }
        );
    }

    #[test]
    fn characters_outside_base64url_are_refused() {
        let t = Signer::new(key()).sign(&claims());
        let err = refused(&format!("{t}\n"));
        let problem = Base64Problem::BadCharacter;
        assert_eq!(
            err,
            TicketError::Base64 {
                part: Part::Signature,
                problem
            }
        );
        assert_eq!(
            refused("e30!.e30.e30"),
            TicketError::Base64 {
                part: Part::Header,
                problem
            }
        );
    }

    #[test]
    fn a_header_or_claims_over_2048_bytes_is_refused() {
        let big = format!(r#"{{"alg":"EdDSA","pad":"{}"}}"#, "x".repeat(2048));
        let t = forge(&key(), &big, &good_claims());
        assert!(t.len() <= MAX_TICKET_LEN);
        let err = refused(&t);
        assert!(matches!(err, TicketError::JsonTooLong { part: Part::Header, len } if len > 2048));
        let big = format!(
            r#"{{"host":"h.example","port":1,"exp":1,"pad":"{}"}}"#,
            "x".repeat(2048)
        );
        let err = refused(&forge_claims(&big));
        assert!(matches!(
            err,
            TicketError::JsonTooLong {
                part: Part::Claims,
                ..
            }
        ));
    }

    #[test]
    fn a_header_that_is_not_a_json_object_is_refused() {
        let err = refused(&forge(&key(), "not json", &good_claims()));
        assert!(
            matches!(
                err,
                TicketError::Json {
                    part: Part::Header,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = refused(&forge(&key(), r#"["EdDSA"]"#, &good_claims()));
        assert_eq!(err, TicketError::NotObject { part: Part::Header });
        let err = refused(&forge(&key(), r#"{"alg":"EdDSA"} {}"#, &good_claims()));
        assert!(
            matches!(
                err,
                TicketError::Json {
                    part: Part::Header,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn claims_that_are_not_a_json_object_are_refused() {
        assert_eq!(
            refused(&forge_claims("null")),
            TicketError::NotObject { part: Part::Claims }
        );
        assert_eq!(
            refused(&forge_claims(r#""host""#)),
            TicketError::NotObject { part: Part::Claims }
        );
        let err = refused(&forge_claims(r#"{"host":"a","port":1,"exp":1"#));
        assert!(
            matches!(
                err,
                TicketError::Json {
                    part: Part::Claims,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn duplicate_claims_are_refused_rather_than_last_one_wins() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":"a.example","host":"b.example","port":5900,"exp":{}}}"#,
            NOW + 60
        )));
        assert_eq!(
            err,
            TicketError::DuplicateKey {
                part: Part::Claims,
                key: "host".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "ticket claims has the member host more than once"
        );
    }

    #[test]
    fn duplicate_header_members_are_refused() {
        let h = format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{}"}}"#, kid());
        let err = refused(&forge(&key(), &h, &good_claims()));
        assert_eq!(
            err,
            TicketError::DuplicateKey {
                part: Part::Header,
                key: "alg".into()
            }
        );
    }

    #[test]
    fn duplicate_members_nested_inside_unknown_claims_are_refused() {
        let c = format!(
            r#"{{"host":"a.example","port":1,"exp":{},"x":[{{"k":1,"k":2}}]}}"#,
            NOW
        );
        let err = refused(&forge_claims(&c));
        assert_eq!(
            err,
            TicketError::DuplicateKey {
                part: Part::Claims,
                key: "k".into()
            }
        );
    }

    #[test]
    fn each_missing_required_claim_is_named() {
        for (c, claim) in [
            (r#"{"port":1,"exp":1}"#, "host"),
            (r#"{"host":"a.example","exp":1}"#, "port"),
            (r#"{"host":"a.example","port":1}"#, "exp"),
        ] {
            assert_eq!(
                refused(&forge_claims(c)),
                TicketError::MissingClaim { claim }
            );
        }
    }

    fn with_exp(exp: &str) -> TicketError {
        refused(&forge_claims(&format!(
            r#"{{"host":"a.example","port":1,"exp":{exp}}}"#
        )))
    }

    #[test]
    fn exp_as_a_string_is_refused() {
        let err = with_exp(&format!(r#""{}""#, NOW + 60));
        assert!(
            matches!(err, TicketError::ClaimType { claim: "exp", .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn exp_as_a_float_or_with_an_exponent_is_refused() {
        assert_eq!(
            with_exp(&format!("{}.0", NOW + 60)),
            TicketError::TimeNotInteger { claim: "exp" }
        );
        assert_eq!(
            with_exp(&format!("{}.5", NOW + 60)),
            TicketError::TimeNotInteger { claim: "exp" }
        );
        assert_eq!(
            with_exp("1.7e9"),
            TicketError::TimeNotInteger { claim: "exp" }
        );
    }

    #[test]
    fn exp_1e300_and_huge_integers_are_out_of_range() {
        for exp in [
            "1e300",
            "9007199254740992",
            "-9007199254740992",
            "9223372036854775807",
            "18446744073709551615",
            "123456789012345678901234567890",
        ] {
            assert_eq!(
                with_exp(exp),
                TicketError::TimeOutOfRange { claim: "exp" },
                "{exp}"
            );
        }
    }

    #[test]
    fn nbf_and_iat_are_read_as_strictly_as_exp() {
        let c = |extra: &str| {
            forge_claims(&format!(
                r#"{{"host":"a.example","port":1,"exp":{},{extra}}}"#,
                NOW + 60
            ))
        };
        assert!(matches!(
            refused(&c(r#""nbf":"0""#)),
            TicketError::ClaimType { claim: "nbf", .. }
        ));
        assert_eq!(
            refused(&c(r#""iat":1.5"#)),
            TicketError::TimeNotInteger { claim: "iat" }
        );
        assert_eq!(
            refused(&c(r#""nbf":1e300"#)),
            TicketError::TimeOutOfRange { claim: "nbf" }
        );
    }

    fn with_port(port: &str) -> TicketError {
        refused(&forge_claims(&format!(
            r#"{{"host":"a.example","port":{port},"exp":{NOW}}}"#
        )))
    }

    #[test]
    fn port_as_a_string_zero_or_70000_is_refused() {
        assert!(matches!(
            with_port(r#""5900""#),
            TicketError::ClaimType { claim: "port", .. }
        ));
        assert_eq!(with_port("0"), TicketError::PortOutOfRange { port: 0 });
        assert_eq!(
            with_port("70000"),
            TicketError::PortOutOfRange { port: 70000 }
        );
        assert_eq!(with_port("-1"), TicketError::PortOutOfRange { port: -1 });
        assert!(matches!(
            with_port("5900.0"),
            TicketError::ClaimType { claim: "port", .. }
        ));
        assert_eq!(
            with_port("70000").to_string(),
            "ticket port 70000 is outside 1..65535"
        );
    }

    #[test]
    fn hosts_that_are_ip_literals_or_ldh_names_are_accepted() {
        let label63 = "a".repeat(63);
        let name253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(name253.len(), 253);
        for host in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "2001:db8::5",
            "::ffff:10.0.0.1",
            "localhost",
            "console-1.example.com",
            "xn--bcher-kva.example",
            "HOST.Example",
            "123.example",
            label63.as_str(),
            name253.as_str(),
        ] {
            assert_eq!(host_problem(host), None, "{host}");
        }
    }

    #[test]
    fn hosts_outside_the_grammar_are_refused_each_for_its_reason() {
        use HostProblem::*;
        let long_label = "a".repeat(64);
        let long_name = format!("{}.example", "a.".repeat(125));
        assert!(long_name.len() > 253);
        for (host, problem) in [
            ("", Empty),
            ("bücher.example", NotAscii),
            ("ｅxample.com", NotAscii),
            ("10.0.0.1:22", HasPort),
            ("console.example:5900", HasPort),
            ("[::1]", Brackets),
            ("[::1]:5900", Brackets),
            (" 10.0.0.1", Whitespace),
            ("a b.example", Whitespace),
            ("a.example\n", Whitespace),
            ("a\0.example", Whitespace),
            ("fe80::1%eth0", BadIpv6),
            ("1:2:3", BadIpv6),
            ("a..example", EmptyLabel),
            (".example", EmptyLabel),
            ("example.", EmptyLabel),
            (long_label.as_str(), LabelTooLong),
            (long_name.as_str(), TooLong),
            ("a_b.example", BadCharacter),
            ("a/b", BadCharacter),
            ("evil.example#", BadCharacter),
            ("user@host.example", BadCharacter),
            ("-a.example", HyphenAtLabelEdge),
            ("a-.example", HyphenAtLabelEdge),
            ("1.2.3", NumericName),
            ("0x7f.1", NumericName),
            ("2130706433", NumericName),
            ("10.0.0.256", NumericName),
            ("010.0.0.1", NumericName),
        ] {
            assert_eq!(host_problem(host), Some(problem), "{host:?}");
        }
    }

    #[test]
    fn a_unicode_host_is_refused_with_a_readable_reason() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":"bücher.example","port":5900,"exp":{NOW}}}"#
        )));
        assert_eq!(err.code(), "bad_host");
        assert_eq!(
            err.to_string(),
            "ticket host \"b\\u{fc}cher.example\" is not usable: it contains non-ASCII \
             characters (write an international name in its xn-- form)"
        );
    }

    #[test]
    fn a_host_with_a_port_inside_is_refused() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":"10.0.0.1:22","port":5900,"exp":{NOW}}}"#
        )));
        assert_eq!(
            err,
            TicketError::BadHost {
                host: "10.0.0.1:22".into(),
                problem: HostProblem::HasPort
            }
        );
        assert!(err.to_string().contains("put the port in the port claim"));
    }

    #[test]
    fn a_host_that_is_not_a_string_is_refused() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":10,"port":5900,"exp":{NOW}}}"#
        )));
        assert!(matches!(err, TicketError::ClaimType { claim: "host", .. }));
    }

    #[test]
    fn unknown_kind_and_tls_values_are_refused_by_name() {
        let c = |extra: &str| {
            forge_claims(&format!(
                r#"{{"host":"a.example","port":1,"exp":{NOW},{extra}}}"#
            ))
        };
        assert_eq!(
            refused(&c(r#""kind":"rdp""#)),
            TicketError::UnknownKind {
                value: "rdp".into()
            }
        );
        assert_eq!(
            refused(&c(r#""tls":"ssl""#)),
            TicketError::UnknownTls {
                value: "ssl".into()
            }
        );
        assert_eq!(
            refused(&c(r#""tls":"TLS""#)),
            TicketError::UnknownTls {
                value: "TLS".into()
            }
        );
        assert!(matches!(
            refused(&c(r#""kind":1"#)),
            TicketError::ClaimType { claim: "kind", .. }
        ));
        assert!(refused(&c(r#""tls":"ssl""#)).to_string().contains("ssl"));
    }

    #[test]
    fn aud_jti_and_sub_of_the_wrong_type_are_refused() {
        let c = |extra: &str| {
            forge_claims(&format!(
                r#"{{"host":"a.example","port":1,"exp":{NOW},{extra}}}"#
            ))
        };
        for (extra, claim) in [
            (r#""aud":5"#, "aud"),
            (r#""aud":["a",1]"#, "aud"),
            (r#""jti":5"#, "jti"),
            (r#""sub":null"#, "sub"),
        ] {
            let err = refused(&c(extra));
            assert!(
                matches!(err, TicketError::ClaimType { claim: c, .. } if c == claim),
                "{err:?}"
            );
        }
    }

    // Rule 2: header.

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
    fn strings_from_a_ticket_are_escaped_and_truncated_before_display() {
        assert_eq!(shown("abc-_1.x:y"), "abc-_1.x:y");
        assert_eq!(shown("a\nb\u{1b}[31m"), r#""a\nb\u{1b}[31m""#);
        assert_eq!(shown(""), r#""""#);
        let long = shown(&"k".repeat(500));
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_kid_that_is_not_a_string_is_refused() {
        let t = forge(&key(), r#"{"alg":"EdDSA","kid":7}"#, &good_claims());
        assert_eq!(refused(&t), TicketError::KidNotString);
    }

    // Rule 3: signature.

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

    // Order and codes.

    #[test]
    fn rules_are_checked_in_the_contracts_order() {
        // Rule 2 before 3: an unknown alg is reported even though nothing verifies.
        let t = format!("{}.{}.AAAA", b64(r#"{"alg":"none"}"#), b64(good_claims()));
        assert_eq!(refused(&t).code(), "bad_alg");
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

    #[test]
    fn validate_refuses_claims_no_proxy_would_accept() {
        assert!(claims().validate().is_ok());
        assert_eq!(
            Claims::new("h.example", 0, NOW).validate(),
            Err(TicketError::PortOutOfRange { port: 0 })
        );
        assert_eq!(
            Claims::new("10.0.0.1:22", 1, NOW)
                .validate()
                .unwrap_err()
                .code(),
            "bad_host"
        );
        assert_eq!(
            Claims::new("h.example", 1, i64::MAX)
                .validate()
                .unwrap_err()
                .code(),
            "time_out_of_range"
        );
    }

    #[test]
    fn kind_and_tls_parse_their_own_names_only() {
        for k in [Kind::Vnc, Kind::Spice, Kind::Serial] {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        for t in [TargetTls::None, TargetTls::Tls, TargetTls::Vencrypt] {
            assert_eq!(t.as_str().parse::<TargetTls>(), Ok(t));
        }
        assert!("VNC".parse::<Kind>().is_err());
    }
}

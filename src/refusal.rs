//! The refusal contract: every machine code the proxy sends, with its HTTP status, its
//! WebSocket close code and its `Retry-After`, in one table ([`Code`]), and the one
//! trait ([`Refuse`]) through which every error type of the request path names its
//! code.
//!
//! A code is what a client reads to tell the person why: the console page looks it up
//! in its `REFUSAL_SENTENCES`, `/consolegate/check` answers it in JSON, refusal log
//! lines and the `consolegate_refusals_total{code}` metric carry it. So a code, once
//! sent, is never renamed. `docs/refusal-codes.md` is this table in prose, and
//! `tests/contract.rs` fails when the docs or the page drift from it.
//!
//! Status, close code and `Retry-After` belong to the code, not to where it is raised:
//! the same condition always reads the same way. The close code is what the proxy
//! sends when the condition ends a session after the upgrade (a console server's TLS
//! failing after the 101, say), and never 1005, 1006 or 1015, which RFC 6455 reserves
//! for reporting.
//!
//! The error types stay plain `thiserror` enums with no idea of HTTP; their mapping to
//! codes is here, below the front and admission that send refusals and above the
//! modules that raise them.

use crate::backend::BackendError;
use crate::denylist::Revoked;
use crate::legacy::ovirt::OvirtError;
use crate::legacy::LegacyError;
use crate::limits::LimitError;
use crate::policy::PolicyError;
use crate::recording::RecordingError;
use crate::tap::ViewUnsupported;
use crate::ticket::TicketError;
use std::fmt;

/// 1001: the proxy (or this session's slot in it) is going away; reconnect later.
const GOING_AWAY: u16 = 1001;
/// 1002: the browser broke the WebSocket handshake or protocol.
const PROTOCOL: u16 = 1002;
/// 1008: the ticket or the policy refuses this session.
const POLICY: u16 = 1008;
/// 1009: too big.
const TOO_BIG: u16 = 1009;
/// 1011: the console server could not be reached or spoken to. Not 1014 ("bad
/// gateway"): the console page and noVNC-era clients read 1011 as "the console
/// connection failed", and that is what the proxy has always sent after the upgrade.
const CONSOLE: u16 = 1011;
/// 1013: a limit of the proxy's; the same request may succeed later.
const TRY_AGAIN: u16 = 1013;

/// Defines [`Code`] from one table: variant = "code", HTTP status, close code, and
/// optionally `retry N` (seconds for `Retry-After`).
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $status:literal, $close:expr $(, retry $retry:literal)? ;)*) => {
        /// Every machine code the proxy sends. Part of the interface: never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The machine code, snake_case.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The HTTP status of a refusal before the upgrade.
            pub fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// The WebSocket close code when the condition ends a session after the
            /// upgrade.
            pub fn close_code(self) -> u16 {
                match self { $(Code::$variant => $close,)* }
            }

            /// Seconds for the `Retry-After` header, where waiting helps.
            pub fn retry_after(self) -> Option<u32> {
                match self { $(Code::$variant => codes!(@retry $($retry)?),)* }
            }
        }
    };
    (@retry) => { None };
    (@retry $r:literal) => { Some($r) };
}

codes! {
    // The request itself (front).
    /// Not a WebSocket handshake the proxy can answer (RFC 6455 §4.2.1).
    BadHandshake = "bad_handshake", 400, PROTOCOL;
    /// A WebSocket version other than 13 (the answer names 13).
    WebsocketVersion = "websocket_version", 426, PROTOCOL;
    /// Request line and headers over 16 KiB.
    HeadTooLarge = "head_too_large", 431, TOO_BIG;
    /// A trusted balancer's PROXY protocol header is missing or invalid.
    ProxyProtocol = "proxy_protocol", 400, PROTOCOL;
    /// A request's body did not arrive within `limits.handshake_timeout` of the
    /// connection's start.
    RequestTimeout = "request_timeout", 408, PROTOCOL;
    /// The proxy holds `limits.max_pending` connections that are not sessions yet;
    /// answered at the accept, before the request is read.
    TooManyConnections = "too_many_connections", 503, TRY_AGAIN, retry 1;
    /// `clients.balancer_only`: a WebSocket not through a trusted balancer.
    NotThroughBalancer = "not_through_balancer", 403, POLICY;
    /// No ticket in the URL nor in a `ticket.<ticket>` subprotocol.
    NoTicket = "no_ticket", 400, POLICY;
    /// More than one ticket: in the URL and in the subprotocol, or two subprotocols.
    AmbiguousTicket = "ambiguous_ticket", 400, POLICY;
    /// The proxy is shutting down.
    Draining = "draining", 503, GOING_AWAY;
    /// The proxy is at `limits.max_sessions`.
    TooManySessions = "too_many_sessions", 503, TRY_AGAIN, retry 10;
    // Limits per client address.
    /// The client is at `limits.max_sessions_per_client`.
    TooManyClientSessions = "too_many_client_sessions", 429, TRY_AGAIN, retry 10;
    /// The client's handshake bucket is empty.
    TooManyHandshakes = "too_many_handshakes", 429, TRY_AGAIN, retry 1;
    /// The client holds `limits.max_pending_per_client` connections that are not
    /// sessions yet; answered at the accept (or after a balancer's PROXY header names
    /// the client), before the request is read.
    TooManyClientConnections = "too_many_client_connections", 429, TRY_AGAIN, retry 1;
    // Ticket rule 1: size and shape.
    Empty = "empty", 400, POLICY;
    TooLong = "too_long", 400, POLICY;
    Jwe = "jwe", 400, POLICY;
    BadSegments = "bad_segments", 400, POLICY;
    BadBase64 = "bad_base64", 400, POLICY;
    JsonTooLong = "json_too_long", 400, POLICY;
    BadJson = "bad_json", 400, POLICY;
    DuplicateKey = "duplicate_key", 400, POLICY;
    NotObject = "not_object", 400, POLICY;
    MissingClaim = "missing_claim", 400, POLICY;
    BadClaimType = "bad_claim_type", 400, POLICY;
    TimeNotInteger = "time_not_integer", 400, POLICY;
    TimeOutOfRange = "time_out_of_range", 400, POLICY;
    BadPort = "bad_port", 400, POLICY;
    BadHost = "bad_host", 400, POLICY;
    UnknownKind = "unknown_kind", 400, POLICY;
    UnknownTls = "unknown_tls", 400, POLICY;
    // Rule 2: header.
    MissingAlg = "missing_alg", 401, POLICY;
    BadAlg = "bad_alg", 401, POLICY;
    /// `typ` is present and not exactly `JWT` (an access token or another JOSE object
    /// is not a console ticket).
    BadTyp = "bad_typ", 401, POLICY;
    Crit = "crit", 401, POLICY;
    KeyInHeader = "key_in_header", 401, POLICY;
    BadKid = "bad_kid", 401, POLICY;
    UnknownKey = "unknown_key", 401, POLICY;
    // Rule 3: signature.
    BadSignatureLength = "bad_signature_length", 401, POLICY;
    BadSignature = "bad_signature", 401, POLICY;
    // Rules 4 and 5: time and lifetime.
    Expired = "expired", 401, POLICY;
    NotYetValid = "not_yet_valid", 401, POLICY;
    LifetimeTooLong = "lifetime_too_long", 401, POLICY;
    // Rule 6: audience.
    NoAudience = "no_audience", 403, POLICY;
    WrongAudience = "wrong_audience", 403, POLICY;
    // oVirt engine tickets (`[legacy] ovirt_certificate`).
    OvirtBadSalt = "ovirt_bad_salt", 400, POLICY;
    OvirtBadDigest = "ovirt_bad_digest", 400, POLICY;
    OvirtBadTime = "ovirt_bad_time", 400, POLICY;
    OvirtBadData = "ovirt_bad_data", 400, POLICY;
    OvirtSignedFields = "ovirt_signed_fields", 401, POLICY;
    OvirtNoV2Signature = "ovirt_no_v2_signature", 401, POLICY;
    OvirtNoSignature = "ovirt_no_signature", 401, POLICY;
    OvirtEngineCertificate = "ovirt_engine_certificate", 401, POLICY;
    // websockify token files (`[legacy] token_source`).
    UnknownToken = "unknown_token", 401, POLICY;
    // The deny list.
    Revoked = "revoked", 403, POLICY;
    // Origin, rule 7 (single use) and rule 8 (target policy).
    Origin = "origin", 403, POLICY;
    JtiRequired = "jti_required", 403, POLICY;
    Replayed = "replayed", 403, POLICY;
    PortNotAllowed = "port_not_allowed", 403, POLICY;
    PortNotAllowedForKind = "port_not_allowed_for_kind", 403, POLICY;
    TargetNotAllowed = "target_not_allowed", 403, POLICY;
    /// The ticket names one of the proxy's own listeners (browsers' or admin), which
    /// no policy allows.
    TargetIsProxy = "target_is_proxy", 403, POLICY;
    // What the ticket asks of the session (`view`, `rec`), before rule 7 takes a use.
    /// A `view` ticket for a console whose input the proxy does not filter (SPICE):
    /// never a silent fallback to a session with input.
    ViewUnsupported = "view_unsupported", 501, POLICY;
    /// The session must be recorded and the proxy cannot record it: no `[recording]`,
    /// an unusable directory, too little free space. After the upgrade: the
    /// recording failed or its file was removed, and the session is ended.
    RecordingUnavailable = "recording_unavailable", 503, POLICY;
    /// The session must be recorded and its console kind (SPICE) cannot be.
    RecordingUnsupported = "recording_unsupported", 501, POLICY;
    // The console server.
    /// The ticket asks for TLS and the proxy has no console CA.
    TlsUnsupported = "tls_unsupported", 403, POLICY;
    TargetUnresolved = "target_unresolved", 502, CONSOLE;
    TargetTimeout = "target_timeout", 504, CONSOLE;
    TargetUnreachable = "target_unreachable", 502, CONSOLE;
    /// The proxy ran out of file descriptors connecting.
    OutOfResources = "out_of_resources", 503, TRY_AGAIN, retry 5;
    BackendHandshakeTimeout = "backend_handshake_timeout", 504, CONSOLE;
    BackendCertUntrusted = "backend_cert_untrusted", 502, CONSOLE;
    BackendClientCertMissing = "backend_client_cert_missing", 502, CONSOLE;
    BackendClientCertRefused = "backend_client_cert_refused", 502, CONSOLE;
    BackendTlsFailed = "backend_tls_failed", 502, CONSOLE;
    BackendNotRfb = "backend_not_rfb", 502, CONSOLE;
    BackendRefused = "backend_refused", 502, CONSOLE;
    VencryptNotOffered = "vencrypt_not_offered", 502, CONSOLE;
    VencryptUnsupported = "vencrypt_unsupported", 502, CONSOLE;
    BackendClosed = "backend_closed", 502, CONSOLE;
    BackendIo = "backend_io", 502, CONSOLE;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: its code and one line a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: Code, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    /// The refusal of an error of the request path: its code and its reason.
    pub fn of(e: &(impl Refuse + ?Sized)) -> Refusal {
        Refusal::new(e.refusal_code(), e.refusal_reason())
    }
}

/// An error that refuses a request: it names its [`Code`]; its `Display` is the reason
/// unless it says otherwise.
pub trait Refuse: fmt::Display {
    fn refusal_code(&self) -> Code;

    /// The line the person is shown (and the close reason after the upgrade).
    fn refusal_reason(&self) -> String {
        self.to_string()
    }
}

/// The ticket folder names each error's code and status itself (`code()`,
/// `status()`, for its own users); this match keeps the table's variant for each, so
/// a new `TicketError` does not compile until it has a row here, and a unit test
/// checks that both read the same.
impl Refuse for TicketError {
    fn refusal_code(&self) -> Code {
        use TicketError::*;
        match self {
            Empty => Code::Empty,
            TooLong { .. } => Code::TooLong,
            Jwe => Code::Jwe,
            Segments { .. } => Code::BadSegments,
            Base64 { .. } => Code::BadBase64,
            JsonTooLong { .. } => Code::JsonTooLong,
            Json { .. } => Code::BadJson,
            DuplicateKey { .. } => Code::DuplicateKey,
            NotObject { .. } => Code::NotObject,
            MissingClaim { .. } => Code::MissingClaim,
            ClaimType { .. } => Code::BadClaimType,
            TimeNotInteger { .. } => Code::TimeNotInteger,
            TimeOutOfRange { .. } => Code::TimeOutOfRange,
            PortOutOfRange { .. } => Code::BadPort,
            BadHost { .. } => Code::BadHost,
            UnknownKind { .. } => Code::UnknownKind,
            UnknownTls { .. } => Code::UnknownTls,
            MissingAlg => Code::MissingAlg,
            Alg { .. } => Code::BadAlg,
            Typ { .. } => Code::BadTyp,
            Crit => Code::Crit,
            KeyInHeader { .. } => Code::KeyInHeader,
            KidNotString => Code::BadKid,
            UnknownKey { .. } => Code::UnknownKey,
            SignatureLength { .. } => Code::BadSignatureLength,
            BadSignature { .. } => Code::BadSignature,
            Expired { .. } => Code::Expired,
            NotYetValid { .. } => Code::NotYetValid,
            LifetimeTooLong { .. } => Code::LifetimeTooLong,
            NoAudience => Code::NoAudience,
            WrongAudience => Code::WrongAudience,
        }
    }
}

impl Refuse for OvirtError {
    fn refusal_code(&self) -> Code {
        use OvirtError::*;
        match self {
            TooLong { .. } => Code::TooLong,
            Base64 | SignatureBase64 { .. } => Code::BadBase64,
            Json { .. } | DuplicateField { .. } => Code::BadJson,
            MissingField { .. } => Code::MissingClaim,
            NotString { .. } => Code::BadClaimType,
            Salt => Code::OvirtBadSalt,
            DigestName { .. } => Code::OvirtBadDigest,
            Time { .. } => Code::OvirtBadTime,
            Data { .. } => Code::OvirtBadData,
            SignedFields { .. } => Code::OvirtSignedFields,
            NoV2Signature => Code::OvirtNoV2Signature,
            NoSignature => Code::OvirtNoSignature,
            BadSignature { .. } => Code::BadSignature,
            EngineCertificate { .. } => Code::OvirtEngineCertificate,
            Ticket(e) => e.refusal_code(),
        }
    }
}

impl Refuse for LegacyError {
    fn refusal_code(&self) -> Code {
        match self {
            LegacyError::Ovirt(e) => e.refusal_code(),
            LegacyError::UnknownToken => Code::UnknownToken,
        }
    }
}

impl Refuse for Revoked {
    fn refusal_code(&self) -> Code {
        Code::Revoked
    }
}

impl Refuse for PolicyError {
    fn refusal_code(&self) -> Code {
        match self {
            PolicyError::TargetNotAllowed(_) | PolicyError::ResolvesOutside { .. } => {
                Code::TargetNotAllowed
            }
            PolicyError::OwnListener(_) => Code::TargetIsProxy,
            PolicyError::PortNotAllowed(_) => Code::PortNotAllowed,
            PolicyError::PortNotAllowedForKind { .. } => Code::PortNotAllowedForKind,
            PolicyError::OriginNotAllowed(_) | PolicyError::OriginMismatch { .. } => Code::Origin,
            PolicyError::JtiRequired => Code::JtiRequired,
            PolicyError::Replayed(_) => Code::Replayed,
        }
    }
}

impl Refuse for LimitError {
    fn refusal_code(&self) -> Code {
        match self {
            LimitError::TooManySessions { .. } => Code::TooManyClientSessions,
            LimitError::TooManyHandshakes => Code::TooManyHandshakes,
        }
    }
}

impl Refuse for ViewUnsupported {
    fn refusal_code(&self) -> Code {
        Code::ViewUnsupported
    }
}

impl Refuse for RecordingError {
    fn refusal_code(&self) -> Code {
        match self {
            RecordingError::Unsupported(_) => Code::RecordingUnsupported,
            RecordingError::NotConfigured
            | RecordingError::Directory { .. }
            | RecordingError::LowSpace { .. }
            | RecordingError::Create { .. }
            | RecordingError::Write { .. }
            | RecordingError::Removed { .. }
            | RecordingError::WriterGone => Code::RecordingUnavailable,
        }
    }

    /// No paths: the recording directory is the operator's business, and in the log.
    fn refusal_reason(&self) -> String {
        self.session_reason()
    }
}

impl Refuse for BackendError {
    fn refusal_code(&self) -> Code {
        use BackendError::*;
        match self {
            NotConfigured(_) => Code::TlsUnsupported,
            NoAddress { .. } => Code::TargetUnresolved,
            ConnectTimeout { .. } => Code::TargetTimeout,
            Refused { .. } | Unreachable { .. } => Code::TargetUnreachable,
            OutOfResources => Code::OutOfResources,
            HandshakeTimeout(_) => Code::BackendHandshakeTimeout,
            UntrustedCertificate(_) => Code::BackendCertUntrusted,
            ClientCertificateMissing => Code::BackendClientCertMissing,
            ClientCertificateRefused => Code::BackendClientCertRefused,
            Tls(_) => Code::BackendTlsFailed,
            NotRfb | RfbTooOld(_) => Code::BackendNotRfb,
            ServerRefused(_) => Code::BackendRefused,
            NoVencrypt(_) => Code::VencryptNotOffered,
            VencryptVersion(..) | NoX509(_) | SubtypeRejected => Code::VencryptUnsupported,
            Closed(_) => Code::BackendClosed,
            Io(_) => Code::BackendIo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{Base64Problem, HostProblem, Kind, Part, TargetTls};
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_never_reserved_close_codes() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert!((400..600).contains(&c.status()), "{s}");
            assert!(!matches!(c.close_code(), 1005 | 1006 | 1015), "{s}");
            assert!((1000..=1014).contains(&c.close_code()), "{s}");
            // Every 429 says when to come back, and so does a 503 where waiting helps
            // (not `draining` or `recording_unavailable`); nothing else does.
            if c.status() == 429 {
                assert!(c.retry_after().is_some(), "{s}");
            } else if c.status() != 503 {
                assert!(c.retry_after().is_none(), "{s}");
            }
        }
    }

    /// The ticket module keeps its own `code()` and `status()`; they must read as the
    /// contract does for every variant.
    #[test]
    fn ticket_errors_map_to_the_codes_and_statuses_the_ticket_module_names() {
        use TicketError::*;
        let all = [
            Empty,
            TooLong { len: 1 },
            Jwe,
            Segments { found: 2 },
            Base64 {
                part: Part::Header,
                problem: Base64Problem::BadCharacter,
            },
            JsonTooLong {
                part: Part::Header,
                len: 1,
            },
            Json {
                part: Part::Claims,
                line: 1,
                column: 1,
            },
            DuplicateKey {
                part: Part::Claims,
                key: "k".into(),
            },
            NotObject { part: Part::Claims },
            MissingClaim { claim: "exp" },
            ClaimType {
                claim: "exp",
                expected: "a number",
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
            Typ {
                typ: "at+jwt".into(),
            },
            Crit,
            KeyInHeader { member: "jwk" },
            KidNotString,
            UnknownKey { kid: "k".into() },
            SignatureLength { len: 1 },
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
        for e in all {
            let code = e.refusal_code();
            assert_eq!(code.as_str(), e.code(), "{e:?}");
            assert_eq!(code.status(), e.status(), "{e:?}");
        }
    }

    /// The recorder keeps its own `code()` and `status()` too.
    #[test]
    fn recording_errors_map_to_the_codes_and_statuses_the_recorder_names() {
        let path = std::path::PathBuf::from("/r");
        let all = [
            RecordingError::NotConfigured,
            RecordingError::Unsupported("SPICE"),
            RecordingError::Directory {
                path: path.clone(),
                cause: "x".into(),
            },
            RecordingError::LowSpace {
                path: path.clone(),
                available: 1,
                floor: 2,
            },
            RecordingError::Create {
                path: path.clone(),
                cause: "x".into(),
            },
            RecordingError::Write {
                path: path.clone(),
                cause: "x".into(),
            },
            RecordingError::Removed { path },
            RecordingError::WriterGone,
        ];
        for e in all {
            let code = e.refusal_code();
            assert_eq!(code.as_str(), e.code(), "{e:?}");
            assert_eq!(code.status(), e.status(), "{e:?}");
        }
    }

    #[test]
    fn the_request_paths_errors_name_their_codes() {
        let port = PolicyError::PortNotAllowedForKind {
            kind: Kind::Serial,
            port: 5901,
            allowed_for: "vnc".into(),
        };
        assert_eq!(port.refusal_code().as_str(), "port_not_allowed_for_kind");
        assert_eq!(Refusal::of(&port).reason, port.to_string());
        assert_eq!(
            LimitError::TooManyHandshakes.refusal_code().retry_after(),
            Some(1)
        );
        assert_eq!(
            BackendError::NotConfigured(TargetTls::Tls)
                .refusal_code()
                .status(),
            403
        );
        assert_eq!(
            BackendError::Tls("x".into()).refusal_code().close_code(),
            1011
        );
        assert_eq!(LegacyError::UnknownToken.refusal_code().status(), 401);
        assert_eq!(
            LegacyError::Ovirt(OvirtError::Ticket(TicketError::Expired { secs_ago: 3 }))
                .refusal_code(),
            Code::Expired
        );
    }
}

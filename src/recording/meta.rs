//! What a recording says about its session: the metadata both formats carry in their
//! header (the VNC format's first line, the `consolegate` key of an asciicast header).
//!
//! Everything here is known before the 101 answer, when the file is created, so a
//! recording names its session even when the session fails at its first byte.

use serde::{Deserialize, Serialize};

/// The session a recording is of. Field names are part of the recording format
/// (docs/recording-format.md); add fields, never rename them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The proxy's session id, as in its log lines and `GET /sessions`.
    pub session: u64,
    /// The ticket's `sub` (the user), if any.
    pub sub: Option<String>,
    /// The ticket's `jti`, if any.
    pub jti: Option<String>,
    /// Key id of the key that signed the ticket.
    pub kid: String,
    /// The browser's address (behind a trusted balancer, the client it names).
    pub client: String,
    /// The console server as the ticket names it, `host:port`.
    pub target: String,
    /// The address the proxy connected to.
    pub address: String,
    /// Console kind: `vnc` or `serial`.
    pub kind: String,
    /// How the proxy reached the console server: `none`, `tls` or `vencrypt`.
    pub tls: String,
    /// The session was view only (no input reached the console).
    pub view: bool,
    /// The browser's input (keys, pointer, serial input) is in the recording.
    pub input: bool,
    /// Start of the recording, RFC 3339 UTC with milliseconds. Record times count
    /// from here.
    pub start: String,
    /// The same instant in Unix milliseconds.
    pub start_unix_ms: i64,
    /// The proxy that wrote the file, `consolegate <version>`.
    pub proxy: String,
}

/// `consolegate <version>`, the `proxy` field of recordings this build writes.
pub fn proxy_version() -> String {
    format!("consolegate {}", env!("CARGO_PKG_VERSION"))
}

/// RFC 3339 UTC with milliseconds for a Unix time in milliseconds.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::from("1970-01-01T00:00:00.000Z");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `YYYYmmddTHHMMSSZ`, the start of a recording's file name.
pub fn compact_utc(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
pub(crate) fn sample(kind: &str) -> Meta {
    Meta {
        session: 7,
        sub: Some("alice".into()),
        jti: Some("j-1".into()),
        kid: "kid0".into(),
        client: "127.0.0.1:40000".into(),
        target: "127.0.0.1:5900".into(),
        address: "127.0.0.1:5900".into(),
        kind: kind.into(),
        tls: "none".into(),
        view: false,
        input: true,
        start: rfc3339_ms(1_764_000_000_123),
        start_unix_ms: 1_764_000_000_123,
        proxy: proxy_version(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(rfc3339_ms(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(compact_utc(1_764_000_000_123), "20251124T160000Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}

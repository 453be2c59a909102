//! The console ticket: sign, parse and verify (rules 1–6 of `ticket-format.md`).
//!
//! Pure: no I/O and no clock; the caller passes the current time. Rules 7 (single use)
//! and 8 (target policy) need state or DNS and live in `policy`.

use crate::keys::KeySet;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// Largest ticket accepted (rule 1).
pub const MAX_TICKET_LEN: usize = 4096;
/// Largest decoded header or claims JSON (rule 1).
pub const MAX_JSON_LEN: usize = 2048;

/// Which client the console page runs (`kind` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Vnc,
    Spice,
    Serial,
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

/// The claims of a ticket, as signed.
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

/// Why a ticket was refused: one variant per distinct failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket not implemented")]
    Todo,
}

impl TicketError {
    /// HTTP status for a refusal before the upgrade: 400 malformed, 401 bad or
    /// expired, 403 audience.
    pub fn status(&self) -> u16 {
        todo!()
    }
    /// A short stable identifier (`expired`, `bad_signature`, ...) for logs, metrics and
    /// the console page.
    pub fn code(&self) -> &'static str {
        todo!()
    }
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
    pub fn sign(&self, claims: &Claims) -> String {
        let _ = (&self.key, claims);
        todo!()
    }
}

/// Rules 1–6 of the contract, in order.
pub fn verify(
    ticket: &str,
    keys: &KeySet,
    opts: &VerifyOptions,
    now_unix: i64,
) -> Result<Verified, TicketError> {
    let _ = (ticket, keys, opts, now_unix);
    todo!()
}

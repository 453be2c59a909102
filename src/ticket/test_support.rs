//! What the ticket module's unit tests share: fixed keys, a fixed clock, and a forger
//! that signs any header and claims text, so each rule is tested with a valid
//! signature and fails for its own reason.

use super::base64url::B64;
use super::{verify, Claims, TicketError, Verified, VerifyOptions};
use crate::keys::{thumbprint, KeySet};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};

pub const NOW: i64 = 1_700_000_000;

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}
pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}
pub fn kid() -> String {
    thumbprint(&key().verifying_key())
}
pub fn trusted() -> KeySet {
    let mut set = KeySet::new();
    set.insert(key().verifying_key());
    set
}
pub fn claims() -> Claims {
    Claims::new("10.0.0.5", 5900, NOW + 120)
}
pub fn check(ticket: &str) -> Result<Verified, TicketError> {
    verify(ticket, &trusted(), &VerifyOptions::default(), NOW)
}
pub fn refused(ticket: &str) -> TicketError {
    check(ticket).expect_err("ticket should be refused")
}
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}
pub fn unb64(segment: &str) -> String {
    String::from_utf8(B64.decode(segment).unwrap()).unwrap()
}
pub fn header() -> String {
    format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, kid())
}
pub fn good_claims() -> String {
    format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{}}}"#, NOW + 120)
}
/// Signs arbitrary header and claims text, so each rule is tested with a valid
/// signature and fails for its own reason.
pub fn forge(key: &SigningKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(sig.to_bytes()))
}
pub fn forge_claims(claims: &str) -> String {
    forge(&key(), &header(), claims)
}
pub fn with_segment(ticket: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = ticket.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}

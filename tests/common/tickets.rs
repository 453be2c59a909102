//! Tickets for tests: valid claims, and raw JWS crafted from any header and claims
//! text (for forgeries a signer would never produce).

use base64::Engine as _;
use consolegate::front::unix_now;
use consolegate::keys;
use consolegate::ticket::Claims;
use ed25519_dalek::{Signer as _, SigningKey};
use std::net::SocketAddr;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Claims for `target` from user alice with a fresh ticket id, valid for two minutes.
pub fn claims_for(target: SocketAddr) -> Claims {
    Claims {
        sub: Some("alice".into()),
        jti: Some(keys::random_jti()),
        iat: Some(unix_now()),
        ..Claims::new(target.ip().to_string(), target.port(), unix_now() + 120)
    }
}

/// A JWS from raw header and claims JSON, signed with `key` (for crafted tickets).
pub fn raw_ticket(key: &SigningKey, header: &str, claims: &str) -> String {
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.to_bytes()))
}

/// The standard header with the key's id.
pub fn header_for(key: &SigningKey) -> String {
    format!(
        r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
        keys::thumbprint(&key.verifying_key())
    )
}

//! What the fuzz targets share: one fixed trusted key and one fixed clock.
//!
//! Fixed, not random, so that a crash reproduces from its input file alone and the
//! committed seed tickets (written by `make-seeds` with the same key) stay valid.

use consolegate::keys::KeySet;
use ed25519_dalek::SigningKey;

/// The "current time" every target verifies at: the seed tickets live around it.
pub const NOW: i64 = 1_700_000_000;

/// The engine's key: trusted by the proxy under test, and the only private key the
/// fuzzer's tickets can be validly signed with.
pub fn engine_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A second trusted key, so that both the `kid` lookup and the try-every-key path
/// (no `kid`) see more than one candidate.
pub fn rotated_key() -> SigningKey {
    SigningKey::from_bytes(&[8; 32])
}

/// The proxy's trusted set: the engine key and the rotated key.
pub fn trusted() -> KeySet {
    let mut set = KeySet::new();
    set.insert(engine_key().verifying_key());
    set.insert(rotated_key().verifying_key());
    set
}

/// The header the project's own signer writes for `key`.
pub fn standard_header(key: &SigningKey) -> String {
    format!(
        r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
        consolegate::keys::thumbprint(&key.verifying_key())
    )
}

//! Keys: PEM loading, key ids (RFC 7638 thumbprints), the trusted set, key generation.

use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::{Path, PathBuf};

/// Why a key could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys not implemented")]
    Todo,
}

/// The public keys the proxy trusts, by key id. Several at once for rotation.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, VerifyingKey)>,
}

impl KeySet {
    pub fn new() -> Self {
        KeySet::default()
    }
    /// Adds a key; returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> String {
        let kid = thumbprint(&key);
        if self.get(&kid).is_none() {
            self.keys.push((kid.clone(), key));
        }
        kid
    }
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, v)| v)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &VerifyingKey)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let _ = key;
    todo!()
}

/// Reads a PKCS#8 PEM private key, refusing a file that group or others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let _ = path;
    todo!()
}

/// Reads an SPKI PEM public key.
pub fn parse_public_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    let _ = pem;
    todo!()
}

/// Loads trusted keys from files and directories (every `*.pub` inside).
pub fn load_trusted(paths: &[PathBuf]) -> Result<KeySet, KeyError> {
    let _ = paths;
    todo!()
}

/// Writes `NAME.key` (mode 0600) and `NAME.pub` into `dir`, refusing to overwrite;
/// returns the key id.
pub fn generate(dir: &Path, name: &str) -> Result<String, KeyError> {
    let _ = (dir, name);
    todo!()
}

/// A fresh throwaway key (for `demo` and tests).
pub fn random_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// A random ticket id: 128 bits, base64url.
pub fn random_jti() -> String {
    todo!()
}

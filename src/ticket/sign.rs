//! Writing tickets: [`Signer`] holds one private key and emits the compact JWS the
//! contract describes, with the key's RFC 7638 thumbprint as `kid`.

use super::base64url::B64;
use super::claims::Claims;
use super::header;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};

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
        let header = header::signed(&self.kid);
        let input = format!(
            "{}.{}",
            B64.encode(header),
            B64.encode(claims.to_json().to_string())
        );
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn the_header_is_exactly_alg_typ_kid() {
        let t = Signer::new(key()).sign(&claims());
        let h = t.split('.').next().unwrap();
        assert_eq!(unb64(h), header());
        assert!(!t.contains(['=', '+', '/']));
    }
}

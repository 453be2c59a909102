//! Fuzzed claims (and optionally a fuzzed header), signed with the real engine key,
//! so every input gets past rule 3 and exercises the claim rules and rules 4–6.
//!
//! Input: `header "\n" claims`, or just `claims` (then the standard header is used).
//! Anything accepted must be a claim set the signer itself would issue
//! (`Claims::validate`), within the time rules, and must survive a round trip:
//! re-signing the parsed claims verifies to the same claims.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use consolegate::ticket::{verify, Signer, VerifyOptions};
use consolegate_fuzz::{engine_key, standard_header, trusted, NOW};
use ed25519_dalek::Signer as _;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static KEYS: OnceLock<consolegate::KeySet> = OnceLock::new();
    let keys = KEYS.get_or_init(trusted);
    let key = engine_key();
    let (header, claims) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (data[..i].to_vec(), &data[i + 1..]),
        None => (standard_header(&key).into_bytes(), data),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let ticket = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes())
    );
    let opts = VerifyOptions::default();
    match verify(&ticket, keys, &opts, NOW) {
        Err(e) => {
            assert!(matches!(e.status(), 400 | 401 | 403));
            assert!(e.to_string().len() < 512, "{e}");
        }
        Ok(v) => {
            let c = &v.claims;
            assert!(
                c.validate().is_ok(),
                "accepted claims the signer refuses: {c:?}"
            );
            assert!(c.port != 0);
            assert!(NOW < c.exp.saturating_add(opts.leeway_secs));
            assert!(c.exp - NOW <= opts.max_lifetime_secs);
            if let Some(nbf) = c.nbf {
                assert!(NOW >= nbf - opts.leeway_secs);
            }
            // The parsed claims mean the same thing when signed again.
            let again = verify(&Signer::new(key).sign(c), keys, &opts, NOW)
                .expect("re-signed claims verify");
            assert_eq!(&again.claims, c);
        }
    }
});

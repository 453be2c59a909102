//! `ticket::verify` on arbitrary bytes, with fixed trusted keys.
//!
//! Beyond "no panic": anything that verifies must carry exactly the signature the
//! engine key would have made (Ed25519 signing is deterministic), so a ticket the
//! fuzzer mutated into acceptance — a malleated signature, a second spelling of the
//! same segments — fails here instead of passing quietly.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use consolegate::ticket::{verify, VerifyOptions};
use consolegate_fuzz::{engine_key, rotated_key, trusted, NOW};
use ed25519_dalek::Signer as _;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static KEYS: OnceLock<consolegate::KeySet> = OnceLock::new();
    let keys = KEYS.get_or_init(trusted);
    // The proxy only ever sees UTF-8 (the URI is decoded into a String first).
    let Ok(ticket) = std::str::from_utf8(data) else {
        return;
    };
    let opts = VerifyOptions {
        audiences: vec!["proxy-a".into()],
        ..VerifyOptions::default()
    };
    for opts in [&VerifyOptions::default(), &opts] {
        match verify(ticket, keys, opts, NOW) {
            Err(e) => {
                assert!(matches!(e.status(), 400 | 401 | 403));
                assert!(!e.code().is_empty());
                // Refusal messages are logged and shown: bounded whatever the input.
                assert!(e.to_string().len() < 512, "{e}");
            }
            Ok(v) => {
                let (input, sig) = ticket.rsplit_once('.').expect("three segments");
                let key = if v.kid == consolegate::keys::thumbprint(&engine_key().verifying_key()) {
                    engine_key()
                } else {
                    rotated_key()
                };
                let expected = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes());
                assert_eq!(sig, expected, "a second valid signature was accepted");
                assert!(v.claims.validate().is_ok(), "{:?}", v.claims);
            }
        }
    }
});

//! Writes the seed corpus under `fuzz/corpus/<target>/seed-*`: valid tickets signed
//! with the fuzzers' fixed key, one of each refused kind, the packaged config, and
//! typical request and static paths. Run from `fuzz/`: `cargo run --bin make-seeds`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use consolegate_fuzz::{engine_key, rotated_key, standard_header, NOW};
use ed25519_dalek::{Signer as _, SigningKey};
use std::path::Path;

fn signed(key: &SigningKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn main() {
    let key = engine_key();
    let hdr = standard_header(&key);
    let good = format!(
        r#"{{"host":"10.0.0.5","port":5900,"exp":{},"jti":"j1","sub":"alice"}}"#,
        NOW + 120
    );
    let valid = signed(&key, &hdr, &good);

    // ticket_verify: whole tickets.
    write("ticket_verify", "valid", &valid);
    write(
        "ticket_verify",
        "valid-no-kid",
        signed(&key, r#"{"alg":"EdDSA"}"#, &good),
    );
    write(
        "ticket_verify",
        "valid-rotated-key",
        signed(&rotated_key(), &standard_header(&rotated_key()), &good),
    );
    write(
        "ticket_verify",
        "alg-none",
        format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode(&good)),
    );
    write(
        "ticket_verify",
        "expired",
        signed(
            &key,
            &hdr,
            &good.replace(&(NOW + 120).to_string(), &(NOW - 100).to_string()),
        ),
    );
    let (input, sig) = valid.rsplit_once('.').unwrap();
    let mut s = B64.decode(sig).unwrap();
    s[0] ^= 1;
    write(
        "ticket_verify",
        "bad-signature",
        format!("{input}.{}", B64.encode(&s)),
    );
    write("ticket_verify", "padded", format!("{valid}=="));
    write("ticket_verify", "jwe", "a.b.c.d.e");
    let view_rec = good.replace(
        r#""sub":"alice""#,
        r#""sub":"alice","view":true,"rec":true"#,
    );
    write(
        "ticket_verify",
        "valid-view-rec",
        signed(&key, &hdr, &view_rec),
    );
    write(
        "ticket_verify",
        "view-string",
        signed(
            &key,
            &hdr,
            &good.replace(r#""sub":"alice""#, r#""sub":"alice","view":"true""#),
        ),
    );
    write(
        "ticket_verify",
        "typ-at-jwt",
        signed(
            &key,
            &hdr.replace(r#""typ":"JWT""#, r#""typ":"at+jwt""#),
            &good,
        ),
    );
    write(
        "ticket_verify",
        "typ-lowercase",
        signed(
            &key,
            &hdr.replace(r#""typ":"JWT""#, r#""typ":"jwt""#),
            &good,
        ),
    );
    write(
        "ticket_verify",
        "duplicate-host",
        signed(
            &key,
            &hdr,
            &good.replace(r#""host":"10.0.0.5""#, r#""host":"a","host":"10.0.0.5""#),
        ),
    );

    // ticket_signed: claims (or header "\n" claims), signed by the target itself.
    let exp = NOW + 120;
    for (name, claims) in [
        ("valid", good.clone()),
        (
            "all-claims",
            format!(
                r#"{{"host":"console.example","port":5901,"exp":{exp},"nbf":{},"iat":{NOW},"aud":["proxy-a","b"],"jti":"x","sub":"u","kind":"spice","tls":"none"}}"#,
                NOW - 5
            ),
        ),
        (
            "duplicate-host",
            format!(r#"{{"host":"a","host":"b","port":5900,"exp":{exp}}}"#),
        ),
        (
            "view-rec",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"view":true,"rec":true}}"#),
        ),
        (
            "view-false",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"view":false,"rec":false}}"#),
        ),
        (
            "view-string",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"view":"true"}}"#),
        ),
        (
            "view-null",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"view":null}}"#),
        ),
        (
            "rec-number",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"rec":1}}"#),
        ),
        (
            "rec-array",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"rec":[true]}}"#),
        ),
        (
            "view-duplicate",
            format!(r#"{{"host":"10.0.0.5","port":5900,"exp":{exp},"view":false,"view":true}}"#),
        ),
        (
            "exp-string",
            format!(r#"{{"host":"a","port":5900,"exp":"{exp}"}}"#),
        ),
        (
            "exp-float",
            format!(r#"{{"host":"a","port":5900,"exp":{exp}.5}}"#),
        ),
        (
            "exp-huge",
            r#"{"host":"a","port":5900,"exp":99999999999999999999999}"#.to_owned(),
        ),
        (
            "port-70000",
            format!(r#"{{"host":"a","port":70000,"exp":{exp}}}"#),
        ),
        (
            "host-with-port",
            format!(r#"{{"host":"10.0.0.1:22","port":5900,"exp":{exp}}}"#),
        ),
        (
            "host-ipv6-mapped",
            format!(r#"{{"host":"::ffff:10.0.0.1","port":5900,"exp":{exp}}}"#),
        ),
        (
            "host-numeric",
            format!(r#"{{"host":"2130706433","port":5900,"exp":{exp}}}"#),
        ),
        (
            "host-unicode",
            format!(r#"{{"host":"bücher.example","port":5900,"exp":{exp}}}"#),
        ),
    ] {
        write("ticket_signed", name, claims);
    }
    write(
        "ticket_signed",
        "header-crit",
        format!("{{\"alg\":\"EdDSA\",\"crit\":[\"b64\"]}}\n{good}"),
    );
    write(
        "ticket_signed",
        "header-jwk",
        format!("{{\"alg\":\"EdDSA\",\"jwk\":{{}}}}\n{good}"),
    );
    for (name, typ) in [
        ("header-typ-jwt", r#""JWT""#),
        ("header-typ-at-jwt", r#""at+jwt""#),
        ("header-typ-jose", r#""JOSE""#),
        ("header-typ-number", "1"),
        ("header-typ-twice", r#""JWT","typ":"JWT""#),
    ] {
        write(
            "ticket_signed",
            name,
            format!("{{\"alg\":\"EdDSA\",\"typ\":{typ}}}\n{good}"),
        );
    }

    // request_uri: request targets as a browser or websockify client sends them.
    write("request_uri", "path", format!("/{valid}"));
    write("request_uri", "prefixed-path", format!("/console/{valid}"));
    write("request_uri", "query", format!("/websockify?token={valid}"));
    write(
        "request_uri",
        "query-escaped",
        "/websockify?x=1&token=a%2Eb.c",
    );
    write("request_uri", "bad-escape", "/a%zz%+f%");
    write(
        "request_uri",
        "absolute",
        "http://proxy.example:6100/t?token=a",
    );

    // static_path: URL paths of the console page and traversal attempts.
    for (name, path) in [
        ("root", "/"),
        ("page", "/console.html"),
        ("novnc", "/novnc/core/rfb.js"),
        ("dotdot-escaped", "/%2e%2e/%2E%2E/etc/passwd"),
        ("open-redirect", "//evil.example"),
        ("novnc-dotdot", "/novnc/../secret"),
    ] {
        write("static_path", name, path);
    }

    // config_toml: the packaged example and a small odd one.
    write(
        "config_toml",
        "packaged",
        std::fs::read("../packaging/consolegate.toml").unwrap(),
    );
    write(
        "config_toml",
        "minimal",
        "allow_plain = true\n[tickets]\ntrust = [\"k\"]\nleeway = 0\n[targets]\nallow = [\"::ffff:10.0.0.0/104\", \"10.0.0.0/8\"]\nports = [\"1-65535\", \"5900\"]\n",
    );
}

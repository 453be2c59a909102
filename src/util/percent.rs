//! Percent-decoding (`%XX`) for tickets in URLs and oVirt's URL-encoded fields.
//!
//! Kept by hand rather than taken from the `percent-encoding` crate: its decoder
//! passes a malformed escape through as literal text (`%zz` stays `%zz`), where a
//! ticket with a broken escape must be refused, and a second spelling of a byte
//! (`%+f`, found by the request_uri fuzz target) must not decode at all.

/// Decodes `%XX` escapes; `None` on a malformed escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            // Exactly two hex digits: `from_str_radix` alone would also take a sign
            // ("%+f" as 0x0f), a second spelling of the same byte.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%2Eb%2f"), Some(b"a.b/".to_vec()));
        // Found while writing the request_uri fuzz target (its reference decoder guards
        // it now): a sign was taken as part of the number.
        assert_eq!(percent_decode("%+f"), None);
        assert_eq!(percent_decode("%-1"), None);
        assert_eq!(percent_decode("%f"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}

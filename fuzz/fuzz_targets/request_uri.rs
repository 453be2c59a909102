//! The request path that extracts the ticket: `front::ticket_from_uri` on URIs built
//! from the input (as sent, as a path segment, as `?token=`), and `percent_decode`
//! against a plain reference decoder.
//!
//! Raw HTTP bytes through hyper's request parser are hyper's business and are not
//! fuzzed here; this starts from the `Uri` hyper hands the proxy.
#![no_main]

use consolegate::front::ticket_from_uri;
use consolegate::util::percent::percent_decode;
use hyper::Uri;
use libfuzzer_sys::fuzz_target;

/// RFC 3986 percent-decoding: `%` followed by exactly two hex digits, nothing else.
fn reference_decode(s: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

fn check(uri: &Uri) {
    let Some(ticket) = ticket_from_uri(uri) else {
        return;
    };
    assert!(!ticket.is_empty());
    let text = uri.to_string();
    if !text.contains('%') {
        // Nothing was decoded, so the ticket is literally part of the request target.
        assert!(text.contains(&ticket), "{ticket:?} not in {text:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(percent_decode(s), reference_decode(data), "{s:?}");
    if let Ok(uri) = Uri::try_from(data) {
        check(&uri);
    }
    for built in [format!("/{s}"), format!("/websockify?token={s}")] {
        if let Ok(uri) = built.parse::<Uri>() {
            check(&uri);
        }
    }
});

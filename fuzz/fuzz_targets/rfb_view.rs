//! The view-only filter, `rfb::view::ViewOnlyFilter`, and the handshake follower,
//! `rfb::handshake::Handshake`, on hostile browser bytes: neither panics; the filter
//! gives the same answer however the bytes are split across reads; what it forwards is
//! whole allowed messages only (filtering its output again changes nothing and drops
//! nothing); it never holds more than `MAX_HELD` bytes.
#![no_main]

use consolegate::rfb::handshake::Handshake;
use consolegate::rfb::view::{ViewOnlyFilter, MAX_HELD};
use libfuzzer_sys::fuzz_target;

fn filter(input: &[u8], splits: &[usize]) -> (Vec<u8>, Option<String>, u64) {
    let mut f = ViewOnlyFilter::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    for cut in cuts {
        if cut < at {
            continue;
        }
        if let Err(e) = f.push(&input[at..cut], &mut out) {
            return (out, Some(e.to_string()), f.dropped().total());
        }
        at = cut;
    }
    (out, None, f.dropped().total())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    // The first bytes pick split points; the rest is the browser's stream.
    let k = usize::from(n % 8).min(rest.len());
    let (split_bytes, input) = rest.split_at(k);
    let splits: Vec<usize> = split_bytes.iter().map(|b| usize::from(*b) * 7).collect();

    let whole = filter(input, &[]);
    let split = filter(input, &splits);
    assert_eq!(whole, split, "the answer depends on how reads are split");
    let again = filter(&whole.0, &[3, 5, 9]);
    assert_eq!(again.0, whole.0, "forwarded bytes are not whole allowed messages");
    assert_eq!(again.1, None);
    assert_eq!(again.2, 0);
    let mut f = ViewOnlyFilter::new();
    let mut out = Vec::new();
    for chunk in input.chunks(3) {
        if f.push(chunk, &mut out).is_err() {
            break;
        }
    }
    assert!(out.len() <= input.len());
    assert!(MAX_HELD >= 20);

    // The handshake follower: alternate server and browser bytes.
    let mut h = Handshake::new();
    for (i, chunk) in input.chunks(5).enumerate() {
        if i % 2 == 0 {
            if h.observe_down(chunk).is_err() {
                break;
            }
        } else {
            let mut rest = chunk;
            while !rest.is_empty() {
                match h.next_up(rest) {
                    Ok((_, used)) => {
                        assert!(used > 0 && used <= rest.len());
                        rest = &rest[used..];
                    }
                    Err(_) => return,
                }
            }
        }
    }
});

//! Quick measurement of the view-only filter (`consolegate::rfb::view`) on its own:
//! how fast it takes dense browser input, against a plain copy of the same bytes.
//!
//!     cargo run --release --example filter_speed
//!
//! Streams: 32-byte units of an update request (forwarded) and a key press, a pointer
//! move and a key release (dropped), in 64 KiB and in 32-byte pushes (what the bench's
//! view-only uploads send); key events only; update requests only. The filter follows
//! each message's header, so its cost is per message (a few ns), not per byte: the
//! denser the input, the more it costs. The side-by-side benchmark's `cg ws VNC
//! view-only` column measures it inside the proxy.

use consolegate::rfb::view::ViewOnlyFilter;
use std::hint::black_box;
use std::time::Instant;

/// Bytes pushed per stream.
const TOTAL: u64 = 1 << 30;

fn main() {
    let mut unit = Vec::new();
    unit.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 64, 0, 48]);
    unit.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61]);
    unit.extend_from_slice(&[5, 0, 0, 1, 0, 1]);
    unit.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0x61]);
    let repeat = |m: &[u8], n: usize| -> Vec<u8> {
        m.iter()
            .cycle()
            .take(n / m.len() * m.len())
            .copied()
            .collect()
    };
    let mixed = repeat(&unit, 64 << 10);
    let keys = repeat(&[4, 1, 0, 0, 0, 0, 0, 0x61], 64 << 10);
    let fburs = repeat(&[3, 1, 0, 0, 0, 0, 0, 64, 0, 48], 64 << 10);
    let mut out = Vec::with_capacity(1 << 20);

    let t = Instant::now();
    for _ in 0..TOTAL / mixed.len() as u64 {
        out.clear();
        out.extend_from_slice(black_box(&mixed));
        black_box(&out);
    }
    report("copy (no filter), 64 KiB", TOTAL, t, 0);

    for (name, chunk, messages_per_byte) in [
        ("mixed units, 64 KiB pushes", &mixed[..], 4.0 / 32.0),
        ("mixed units, 32-byte pushes", &unit[..], 4.0 / 32.0),
        ("key events only, 64 KiB pushes", &keys[..], 1.0 / 8.0),
        (
            "update requests only, 64 KiB pushes",
            &fburs[..],
            1.0 / 10.0,
        ),
    ] {
        let mut f = ViewOnlyFilter::new();
        let n = TOTAL / chunk.len() as u64;
        let t = Instant::now();
        for _ in 0..n {
            out.clear();
            if let Err(e) = f.push(black_box(chunk), &mut out) {
                eprintln!("{name}: {e}");
                return;
            }
            black_box(&out);
        }
        let bytes = n * chunk.len() as u64;
        report(name, bytes, t, (bytes as f64 * messages_per_byte) as u64);
    }
}

fn report(name: &str, bytes: u64, t: Instant, messages: u64) {
    let secs = t.elapsed().as_secs_f64();
    let per = if messages > 0 {
        format!(", {:.1} ns per message", secs * 1e9 / messages as f64)
    } else {
        String::new()
    };
    println!(
        "{name:<38} {:>7.0} MiB/s{per}",
        bytes as f64 / secs / (1 << 20) as f64
    );
}

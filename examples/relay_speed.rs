//! Quick loopback measurement of `consolegate::relay` against a bare tokio TCP relay
//! (`copy_bidirectional`): throughput down and up, and 64-byte round-trip latency.
//!
//! The browser side is a minimal raw client (pre-masked frames up, byte counting down)
//! so that the figures measure the relay rather than a WebSocket client library.
//!
//!     cargo run --release --example relay_speed [MiB per run, default 2048]
//!
//! The full side-by-side benchmark lives elsewhere; this is the relay author's check.

use consolegate::relay::SessionStats;
use consolegate::relay::{relay_counted, RelayConfig, Stop};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const CHUNK: usize = 64 << 10;

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (a, b) = (a.expect("connect"), b.expect("accept").0);
    a.set_nodelay(true).expect("nodelay");
    b.set_nodelay(true).expect("nodelay");
    (a, b)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bare,
    WebSocket,
}

/// Browser socket, console socket; the proxy runs in a spawned task.
async fn setup(kind: Kind) -> (TcpStream, TcpStream, watch::Sender<Stop>) {
    let (browser, proxy_client) = tcp_pair().await;
    let (proxy_target, console) = tcp_pair().await;
    let (stop, stop_rx) = watch::channel(Stop::Run);
    tokio::spawn(async move {
        match kind {
            Kind::Bare => {
                let (mut c, mut t) = (proxy_client, proxy_target);
                // 64 KiB like the relay (tokio's default is 8 KiB).
                let _ =
                    tokio::io::copy_bidirectional_with_sizes(&mut c, &mut t, CHUNK, CHUNK).await;
            }
            Kind::WebSocket => {
                let cfg = RelayConfig {
                    ping_interval: None,
                    max_message: usize::MAX,
                    ..RelayConfig::default()
                };
                // With live byte counters, as the proxy runs every session
                // (RELAY_STATS=0 measures without them).
                let stats = (std::env::var("RELAY_STATS").as_deref() != Ok("0"))
                    .then(|| Arc::new(SessionStats::default()));
                relay_counted(proxy_client, proxy_target, &cfg, stop_rx, stats).await;
            }
        }
    });
    (browser, console, stop)
}

/// A masked client frame of `payload` (the mask is not secret here).
fn masked(payload: &[u8]) -> Vec<u8> {
    let key = [0x5A, 0x17, 0xC3, 0x81];
    let mut f = vec![0x82];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

async fn down(kind: Kind, total: u64) -> f64 {
    let (mut browser, mut console, _stop) = setup(kind).await;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0xA5u8; CHUNK];
        let mut sent = 0;
        while sent < total {
            console.write_all(&chunk).await.expect("console write");
            sent += CHUNK as u64;
        }
        console
    });
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    while got < total {
        let n = browser.read(&mut buf).await.expect("browser read");
        assert!(n > 0, "EOF");
        got += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(writer.await);
    total as f64 / secs / f64::from(1 << 20)
}

async fn up(kind: Kind, total: u64) -> f64 {
    let (mut browser, mut console, _stop) = setup(kind).await;
    let payload = vec![0xA5u8; CHUNK];
    let block = match kind {
        Kind::Bare => payload,
        Kind::WebSocket => masked(&payload),
    };
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            browser.write_all(&block).await.expect("browser write");
            sent += CHUNK as u64;
        }
        browser
    });
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    while got < total {
        let n = console.read(&mut buf).await.expect("console read");
        assert!(n > 0, "EOF");
        got += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(writer.await);
    total as f64 / secs / f64::from(1 << 20)
}

/// p50 and p99 of a 64-byte browser → console → browser round trip.
async fn latency(kind: Kind, rounds: usize) -> (Duration, Duration) {
    let (mut browser, mut console, _stop) = setup(kind).await;
    tokio::spawn(async move {
        let mut b = [0u8; 64];
        while console.read_exact(&mut b).await.is_ok() {
            if console.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let (request, reply_len) = match kind {
        Kind::Bare => (vec![7u8; 64], 64),
        Kind::WebSocket => (masked(&[7u8; 64]), 2 + 64),
    };
    let mut reply = vec![0u8; reply_len];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        browser.write_all(&request).await.expect("write");
        browser.read_exact(&mut reply).await.expect("read");
        times.push(t.elapsed());
    }
    times.sort();
    (times[rounds / 2], times[rounds * 99 / 100])
}

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2048);
    let total = mib << 20;
    // Interleaved runs, best of each: the machine is shared, so the best run is the
    // one least disturbed by others.
    let (mut bd, mut wd, mut bu, mut wu) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..3 {
        bd = bd.max(down(Kind::Bare, total).await);
        wd = wd.max(down(Kind::WebSocket, total).await);
        bu = bu.max(up(Kind::Bare, total).await);
        wu = wu.max(up(Kind::WebSocket, total).await);
    }
    println!(
        "down: bare {bd:6.0} MiB/s  relay {wd:6.0} MiB/s  ({:3.0}%)",
        100.0 * wd / bd
    );
    println!(
        "up:   bare {bu:6.0} MiB/s  relay {wu:6.0} MiB/s  ({:3.0}%)",
        100.0 * wu / bu
    );
    let (b50, b99) = latency(Kind::Bare, 20_000).await;
    let (w50, w99) = latency(Kind::WebSocket, 20_000).await;
    println!(
        "64-byte round trip: bare p50 {b50:?} p99 {b99:?}; relay p50 {w50:?} p99 {w99:?} ({:.2}x p99)",
        w99.as_secs_f64() / b99.as_secs_f64()
    );
}

//! Load driver for `tests/soak.sh`: opens and closes console sessions through a
//! running proxy at a steady rate for a fixed time, against its own echo "console
//! server", and checks every byte that comes back.
//!
//! Mix per new session: 10 % bulk (256 KiB echoed), 50 % interactive (small
//! messages for a few seconds), 20 % idle (held 20–45 s, answering pings), 12 % bad
//! tickets (must be refused), 8 % faults (browser vanishes without a close, or the
//! console server resets the connection mid-stream). Each session claims one of
//! `--clients` addresses in `X-Forwarded-For` (run the proxy with
//! `--trusted-proxy 127.0.0.1/32`), so per-client limits see a realistic spread.
//!
//! Writes `live=… opened=… ok=… refused=… faults=… failures=… bytes=…` to
//! `--status` every second and exits 1 if any session lost or corrupted a byte or
//! failed unexpectedly.
#![forbid(unsafe_code)]

use clap::Parser;
use consolegate::keys;
use consolegate::ticket::{Claims, Signer};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// The proxy's address.
    #[arg(long)]
    proxy: SocketAddr,
    /// Signing key trusted by the proxy.
    #[arg(long)]
    key: PathBuf,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// New sessions per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Distinct client addresses claimed in X-Forwarded-For.
    #[arg(long, default_value_t = 64)]
    clients: u32,
    /// Status file rewritten every second.
    #[arg(long)]
    status: Option<PathBuf>,
}

#[derive(Default)]
struct Stats {
    live: AtomicU64,
    opened: AtomicU64,
    ok: AtomicU64,
    refused: AtomicU64,
    faults: AtomicU64,
    failures: AtomicU64,
    bytes: AtomicU64,
}

impl Stats {
    fn line(&self) -> String {
        format!(
            "live={} opened={} ok={} refused={} faults={} failures={} bytes={}",
            self.live.load(Relaxed),
            self.opened.load(Relaxed),
            self.ok.load(Relaxed),
            self.refused.load(Relaxed),
            self.faults.load(Relaxed),
            self.failures.load(Relaxed),
            self.bytes.load(Relaxed)
        )
    }
}

/// xorshift64*: enough randomness for a load mix, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The console server stand-in: echoes everything; a connection whose first bytes
/// are `RST!` is reset (SO_LINGER 0, then closed).
async fn echo_target(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            let mut first = true;
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if first && buf[..n].starts_with(b"RST!") {
                    // Linger 0 makes the close a reset; it does not block (the
                    // deprecation is about non-zero linger times).
                    #[allow(deprecated)]
                    let _ = s.set_linger(Some(Duration::ZERO));
                    return;
                }
                first = false;
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn open(proxy: SocketAddr, ticket: &str, client: &str) -> Result<Ws, String> {
    let mut req = format!("ws://{proxy}/{ticket}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "x-forwarded-for",
        client.parse().map_err(|_| "bad header".to_string())?,
    );
    match tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async(req),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// Reads until `want` bytes of echo arrived, checking them against `expect`.
async fn read_echo(ws: &mut Ws, expect: &[u8]) -> Result<(), String> {
    let mut got = 0;
    while got < expect.len() {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| format!("echo stalled at {got}/{}", expect.len()))?;
        match msg {
            Some(Ok(Message::Binary(b))) => {
                let end = got + b.len();
                if end > expect.len() || expect[got..end] != b[..] {
                    return Err(format!("echo mismatch at byte {got}"));
                }
                got = end;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => return Err(format!("unexpected message {other:?}")),
            Some(Err(e)) => return Err(format!("read failed at {got}: {e}")),
            None => return Err(format!("closed at {got}/{}", expect.len())),
        }
    }
    Ok(())
}

async fn close(mut ws: Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

enum Kind {
    Bulk,
    Interactive,
    Idle,
    BadTicket,
    Vanish,
    TargetReset,
}

async fn session(
    kind: Kind,
    proxy: SocketAddr,
    ticket: String,
    client: String,
    seed: u64,
    stats: Arc<Stats>,
) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    match kind {
        Kind::BadTicket => {
            return match open(proxy, &ticket, &client).await {
                Ok(_) => Err("a bad ticket was accepted".into()),
                Err(e) if e.contains("401") || e.contains("403") => {
                    stats.refused.fetch_add(1, Relaxed);
                    Ok(())
                }
                Err(e) => Err(format!("bad ticket: unexpected answer {e}")),
            };
        }
        Kind::Bulk => {
            let mut ws = open(proxy, &ticket, &client).await?;
            let data = pattern(seed, 256 << 10);
            let (mut tx, mut rx) = ws.split();
            let send = async {
                for chunk in data.chunks(16 << 10) {
                    tx.send(Message::binary(chunk.to_vec()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(tx)
            };
            let recv = async {
                let mut got = Vec::with_capacity(data.len());
                while got.len() < data.len() {
                    match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
                        Ok(Some(Ok(Message::Binary(b)))) => got.extend_from_slice(&b),
                        Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                        Ok(other) => return Err(format!("bulk: {other:?} at {}", got.len())),
                        Err(_) => return Err(format!("bulk stalled at {}", got.len())),
                    }
                }
                Ok::<_, String>((rx, got))
            };
            let (tx, recv) = tokio::join!(send, recv);
            let (rx, got) = recv?;
            if got != data {
                return Err("bulk echo differs".into());
            }
            stats.bytes.fetch_add(data.len() as u64, Relaxed);
            ws = tx?.reunite(rx).map_err(|_| "reunite".to_string())?;
            close(ws).await;
        }
        Kind::Interactive => {
            let mut ws = open(proxy, &ticket, &client).await?;
            for i in 0..(10 + rng.below(30)) {
                let msg = pattern(seed.wrapping_add(i), 32);
                ws.send(Message::binary(msg.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
                read_echo(&mut ws, &msg).await?;
                stats.bytes.fetch_add(32, Relaxed);
                tokio::time::sleep(Duration::from_millis(100 + rng.below(100))).await;
            }
            close(ws).await;
        }
        Kind::Idle => {
            let mut ws = open(proxy, &ticket, &client).await?;
            let until = Instant::now() + Duration::from_secs(20 + rng.below(25));
            // Reading answers the proxy's heartbeat pings while nothing else moves.
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match tokio::time::timeout(left, ws.next()).await {
                    Err(_) => break,
                    Ok(Some(Ok(Message::Ping(_)))) => {}
                    Ok(other) => return Err(format!("idle session got {other:?}")),
                }
            }
            let msg = pattern(seed, 64);
            ws.send(Message::binary(msg.clone()))
                .await
                .map_err(|e| e.to_string())?;
            read_echo(&mut ws, &msg).await?;
            stats.bytes.fetch_add(64, Relaxed);
            close(ws).await;
        }
        Kind::Vanish => {
            let mut ws = open(proxy, &ticket, &client).await?;
            let msg = pattern(seed, 100);
            ws.send(Message::binary(msg.clone()))
                .await
                .map_err(|e| e.to_string())?;
            read_echo(&mut ws, &msg).await?;
            drop(ws); // no close frame: the proxy sees the TCP connection end
            stats.faults.fetch_add(1, Relaxed);
        }
        Kind::TargetReset => {
            let mut ws = open(proxy, &ticket, &client).await?;
            ws.send(Message::binary(b"RST!".to_vec()))
                .await
                .map_err(|e| e.to_string())?;
            // The proxy must end the session with a close frame (1011 or 1000).
            let end = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Close(Some(f)))) => return Ok(u16::from(f.code)),
                        Some(Ok(Message::Close(None))) => return Err("close without code"),
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => return Err("no close frame"),
                    }
                }
            })
            .await
            .map_err(|_| "target reset: no close within 30 s".to_string())?;
            match end {
                Ok(1011 | 1000) => {}
                Ok(c) => return Err(format!("target reset closed with {c}")),
                Err(e) => return Err(format!("target reset: {e}")),
            }
            stats.faults.fetch_add(1, Relaxed);
        }
    }
    stats.ok.fetch_add(1, Relaxed);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let signer = match keys::load_signing_key(&args.key) {
        Ok(k) => Signer::new(k),
        Err(e) => {
            eprintln!("soak_driver: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let foreign = {
        let dir = std::env::temp_dir().join(format!("soak-foreign-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let made = keys::generate(&dir, "foreign")
            .and_then(|_| keys::load_signing_key(&dir.join("foreign.key")));
        let _ = std::fs::remove_dir_all(&dir);
        match made {
            Ok(k) => Signer::new(k),
            Err(e) => {
                eprintln!("soak_driver: {e}");
                return std::process::ExitCode::from(2);
            }
        }
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("soak_driver: cannot listen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let target = listener
        .local_addr()
        .expect("bound listener has an address");
    tokio::spawn(echo_target(listener));

    let stats = Arc::new(Stats::default());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs_f64(1.0 / args.rate.max(0.1));
    let mut tick = tokio::time::interval(every);
    let mut status_at = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut failures_shown = 0;
    while Instant::now() < deadline {
        tick.tick().await;
        while let Some(done) = tasks.try_join_next() {
            if let Ok(Err(e)) = done {
                stats.failures.fetch_add(1, Relaxed);
                if failures_shown < 20 {
                    eprintln!("soak_driver: session failed: {e}");
                    failures_shown += 1;
                }
            }
        }
        let roll = rng.below(100);
        let kind = match roll {
            0..=9 => Kind::Bulk,
            10..=59 => Kind::Interactive,
            60..=79 => Kind::Idle,
            80..=91 => Kind::BadTicket,
            92..=95 => Kind::Vanish,
            _ => Kind::TargetReset,
        };
        let claims = Claims {
            sub: Some("soak".into()),
            jti: Some(keys::random_jti()),
            ..Claims::new("127.0.0.1", target.port(), consolegate::unix_now() + 120)
        };
        let ticket = if matches!(kind, Kind::BadTicket) {
            foreign.sign(&claims)
        } else {
            signer.sign(&claims)
        };
        let client = format!(
            "10.9.{}.{}",
            rng.below(4),
            rng.below(u64::from(args.clients.max(1)))
        );
        let stats2 = stats.clone();
        let s = rng.next();
        stats.opened.fetch_add(1, Relaxed);
        tasks.spawn(async move {
            stats2.live.fetch_add(1, Relaxed);
            let r = session(kind, args.proxy, ticket, client, s, stats2.clone()).await;
            stats2.live.fetch_sub(1, Relaxed);
            r
        });
        if status_at.elapsed() >= Duration::from_secs(1) {
            status_at = Instant::now();
            if let Some(p) = &args.status {
                let _ = std::fs::write(p, stats.line() + "\n");
            }
        }
    }
    // Let the sessions in flight finish (idle ones take up to 45 s).
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            stats.failures.fetch_add(1, Relaxed);
            if failures_shown < 20 {
                eprintln!("soak_driver: session failed: {e}");
                failures_shown += 1;
            }
        }
        if let Some(p) = &args.status {
            if status_at.elapsed() >= Duration::from_secs(1) {
                status_at = Instant::now();
                let _ = std::fs::write(p, stats.line() + "\n");
            }
        }
    }
    let line = stats.line();
    if let Some(p) = &args.status {
        let _ = std::fs::write(p, line.clone() + "\n");
    }
    println!("soak_driver: {line}");
    if stats.failures.load(Relaxed) > 0 {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

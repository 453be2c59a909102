//! The measurements, each one bounded in bytes and in time, each checking that every byte
//! arrived intact before it reports a figure: a proxy that drops, duplicates or garbles
//! data gets an error, not a number.

use crate::client::{Conn, Target};
use crate::procstat;
use crate::proto::{self, Pattern, BANNER, MAX_SLICE, MSG_LEN, OP_DOWN, OP_ECHO, OP_UP};
use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read buffer of a connection that moves bulk data.
const BULK_BUF: usize = 256 << 10;
/// Read buffer of a connection that mostly idles.
const SMALL_BUF: usize = 4 << 10;
/// Upload segments in flight before the client waits for a reply: enough to keep the
/// pipe full, few enough that a slow proxy does not overrun the time cap by much.
const UP_WINDOW: u64 = 4;

/// One bulk transfer: bytes, wall time, and the proxy's CPU time over it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Transfer {
    pub bytes: u64,
    pub secs: f64,
    /// CPU seconds of the proxy's process tree; `None` when there is no proxy.
    pub cpu_secs: Option<f64>,
}

impl Transfer {
    pub fn mib_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.secs
    }
    pub fn cpu_per_gib(&self) -> Option<f64> {
        self.cpu_secs
            .map(|c| c / (self.bytes as f64 / (1u64 << 30) as f64))
    }
}

/// Round-trip latencies, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub rounds: usize,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// New-session rate and time to first byte.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connect {
    pub sessions: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Bounds of one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub bytes: u64,
    pub secs: f64,
    /// Transfer unit: each command moves this many bytes.
    pub segment: u64,
}

/// Connects and checks the backend's banner.
async fn open(t: &Target, rbuf: usize) -> Result<Conn> {
    let mut c = Conn::connect(t, rbuf).await?;
    let mut b = [0u8; BANNER.len()];
    c.recv_exact(&mut b)
        .await
        .context("waiting for the banner")?;
    ensure!(
        &b == BANNER,
        "wrong banner {:?}",
        String::from_utf8_lossy(&b)
    );
    Ok(c)
}

fn cpu(pid: Option<u32>) -> Option<f64> {
    pid.map(procstat::cpu_secs)
}

/// Lets a forking proxy's finished children be reaped, so their CPU time is counted.
async fn settle(pid: Option<u32>) {
    if pid.is_some() {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Server → client throughput over `streams` concurrent sessions.
pub async fn down(
    t: &Target,
    pid: Option<u32>,
    pat: &Arc<Pattern>,
    streams: usize,
    lim: Limits,
) -> Result<Transfer> {
    let cpu0 = cpu(pid);
    let mut conns = Vec::new();
    for _ in 0..streams {
        conns.push(open(t, BULK_BUF).await?);
    }
    let per_stream = (lim.bytes / streams as u64).max(lim.segment);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(lim.secs);
    let mut tasks = tokio::task::JoinSet::new();
    for c in conns {
        let pat = pat.clone();
        tasks.spawn(async move { down_stream(c, &pat, per_stream, lim.segment, deadline).await });
    }
    let mut bytes = 0;
    while let Some(r) = tasks.join_next().await {
        bytes += r.context("download task panicked")??;
    }
    let secs = start.elapsed().as_secs_f64();
    settle(pid).await;
    Ok(Transfer {
        bytes,
        secs,
        cpu_secs: cpu0.and_then(|c0| cpu(pid).map(|c1| c1 - c0)),
    })
}

async fn down_stream(
    mut c: Conn,
    pat: &Pattern,
    budget: u64,
    seg: u64,
    deadline: Instant,
) -> Result<u64> {
    let (mut requested, mut outstanding, mut total, mut off) = (0u64, 0u32, 0u64, 0u64);
    // Two segments requested at all times, so the pipe never drains between them.
    let mut to_send = 2u32;
    loop {
        while to_send > 0 {
            to_send -= 1;
            if requested < budget && (requested == 0 || Instant::now() < deadline) {
                c.send(&proto::command(OP_DOWN, seg), MSG_LEN).await?;
                requested += seg;
                outstanding += 1;
            }
        }
        if outstanding == 0 {
            break;
        }
        let mut d = c
            .recv()
            .await?
            .ok_or_else(|| anyhow!("stream ended after {total} of {requested} bytes"))?;
        while !d.is_empty() {
            ensure!(
                outstanding > 0,
                "received bytes beyond the {requested} requested"
            );
            let k = d.len().min((seg - off) as usize);
            ensure!(
                pat.matches(off, &d[..k]),
                "corrupt data at byte {} of a segment",
                off
            );
            off += k as u64;
            total += k as u64;
            d = &d[k..];
            if off == seg {
                off = 0;
                outstanding -= 1;
                to_send += 1;
            }
        }
    }
    ensure!(total == requested, "got {total} bytes of {requested}");
    c.close().await;
    Ok(total)
}

/// Client → server throughput on one session, in WebSocket frames of `frame` bytes.
pub async fn up(
    t: &Target,
    pid: Option<u32>,
    pat: &Pattern,
    frame: usize,
    lim: Limits,
) -> Result<Transfer> {
    let cpu0 = cpu(pid);
    let mut c = open(t, BULK_BUF).await?;
    let seg = lim.segment;
    let want_crc = pat.crc(seg);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(lim.secs);
    let (mut sent, mut acked) = (0u64, 0u64);
    while sent * seg < lim.bytes.max(seg) && (sent == 0 || Instant::now() < deadline) {
        c.send(&proto::command(OP_UP, seg), frame).await?;
        let mut off = 0u64;
        while off < seg {
            let len = (seg - off).min(MAX_SLICE as u64) as usize;
            c.send(pat.slice(off, len), frame).await?;
            off += len as u64;
        }
        sent += 1;
        while sent - acked >= UP_WINDOW {
            check_reply(&mut c, seg, want_crc).await?;
            acked += 1;
        }
    }
    while acked < sent {
        check_reply(&mut c, seg, want_crc).await?;
        acked += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    c.close().await;
    settle(pid).await;
    Ok(Transfer {
        bytes: sent * seg,
        secs,
        cpu_secs: cpu0.and_then(|c0| cpu(pid).map(|c1| c1 - c0)),
    })
}

async fn check_reply(c: &mut Conn, seg: u64, want_crc: u32) -> Result<()> {
    let mut r = [0u8; MSG_LEN];
    c.recv_exact(&mut r)
        .await
        .context("waiting for the upload checksum")?;
    let (n, crc) = proto::parse_reply(&r);
    ensure!(
        n == seg && crc == want_crc,
        "upload arrived damaged: {n} bytes crc {crc:#010x}, sent {seg} bytes crc {want_crc:#010x}"
    );
    Ok(())
}

/// Sequential 64-byte round trips through the backend's echo.
pub async fn latency(t: &Target, pat: &Pattern, rounds: usize) -> Result<Latency> {
    const MSG: usize = 64;
    let warmup = (rounds / 50).max(10);
    let mut c = open(t, SMALL_BUF).await?;
    c.send(
        &proto::command(OP_ECHO, ((rounds + warmup) * MSG) as u64),
        MSG_LEN,
    )
    .await?;
    let mut samples = Vec::with_capacity(rounds);
    let mut buf = [0u8; MSG];
    for i in 0..rounds + warmup {
        let msg = pat.slice((i * MSG) as u64, MSG);
        let t0 = Instant::now();
        c.send(msg, MSG).await?;
        c.recv_exact(&mut buf).await?;
        let dt = t0.elapsed();
        ensure!(buf[..] == *msg, "echo {i} came back changed");
        if i >= warmup {
            samples.push(dt.as_secs_f64() * 1e6);
        }
    }
    c.close().await;
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        rounds,
        p50_us: pct(&samples, 0.50),
        p99_us: pct(&samples, 0.99),
    })
}

/// `clients` loops opening full new sessions (connect, TLS, upgrade with ticket, backend
/// connect, banner) and closing them, until `secs` pass or `max` sessions were started.
pub async fn connect_rate(t: &Target, clients: usize, secs: f64, max: u64) -> Result<Connect> {
    let started = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (t, started) = (t.clone(), started.clone());
        tasks.spawn(async move {
            let (mut ok, mut errors, mut first_error) = (Vec::new(), 0u64, None);
            while Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < max {
                let t0 = Instant::now();
                match tokio::time::timeout(Duration::from_secs(5), open(&t, SMALL_BUF)).await {
                    Ok(Ok(c)) => {
                        ok.push(t0.elapsed().as_secs_f64() * 1e3);
                        c.close().await;
                    }
                    Ok(Err(e)) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                    Err(_) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| "no banner within 5 s".to_string());
                    }
                }
            }
            (ok, errors, first_error)
        });
    }
    let (mut all, mut errors, mut first_error) = (Vec::new(), 0, None);
    while let Some(r) = tasks.join_next().await {
        let (ok, e, fe) = r.context("connect task panicked")?;
        all.extend(ok);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        !all.is_empty(),
        "no session succeeded: {}",
        first_error.unwrap_or_default()
    );
    all.sort_by(f64::total_cmp);
    Ok(Connect {
        sessions: all.len() as u64,
        errors,
        first_error,
        secs,
        rate: all.len() as f64 / secs,
        p50_ms: pct(&all, 0.50),
        p99_ms: pct(&all, 0.99),
    })
}

/// What an idle session did before idling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IdleKind {
    /// Only received the banner.
    Banner,
    /// Moved 1 MiB up and 1 MiB down first (buffers grown, then idle).
    Burst,
}

/// The proxy's memory with `n` idle sessions open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdlePoint {
    pub n: u64,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    pub kind: IdleKind,
    pub base_rss_kib: u64,
    pub base_pss_kib: u64,
    /// The session counts asked for.
    pub checkpoints: Vec<u64>,
    pub points: Vec<IdlePoint>,
    /// Sessions held at once when the ramp stopped.
    pub held: u64,
    /// Why the ramp stopped: a failure, or the cap.
    pub stopped: String,
}

const BURST: u64 = 1 << 20;

/// Opens idle sessions up to each of `checkpoints` (measuring the proxy's memory at
/// each), then keeps ramping by 1,000 up to `max`; stops at the first session that fails.
pub async fn idle(
    t: &Target,
    pid: u32,
    pat: &Arc<Pattern>,
    kind: IdleKind,
    checkpoints: &[u64],
    max: u64,
) -> Result<Idle> {
    let (base_rss_kib, base_pss_kib) = procstat::memory_kib(pid);
    let mut conns: Vec<Conn> = Vec::new();
    let mut points = Vec::new();
    let mut steps: Vec<u64> = checkpoints.iter().copied().filter(|&n| n <= max).collect();
    let mut n = steps.last().copied().unwrap_or(0);
    while n < max {
        n = (n + 1000).min(max);
        steps.push(n);
    }
    let mut stopped = format!("cap of {max} sessions reached");
    for step in steps {
        let want = step - conns.len() as u64;
        let (opened, err) = open_many(t, pat, kind, want).await;
        conns.extend(opened);
        if let Some(e) = err {
            stopped = format!("session {} failed: {e:#}", conns.len() + 1);
            if !conns.is_empty() {
                // The most it held: its memory there is the figure a checkpoint it
                // never reached gets.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (rss_kib, pss_kib) = procstat::memory_kib(pid);
                points.push(IdlePoint {
                    n: conns.len() as u64,
                    rss_kib,
                    pss_kib,
                });
            }
            break;
        }
        if checkpoints.contains(&step) {
            // Let the proxy finish its per-session work (and a forking one its forks).
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (rss_kib, pss_kib) = procstat::memory_kib(pid);
            points.push(IdlePoint {
                n: step,
                rss_kib,
                pss_kib,
            });
        }
    }
    let held = conns.len() as u64;
    drop(conns);
    Ok(Idle {
        kind,
        base_rss_kib,
        base_pss_kib,
        checkpoints: checkpoints.to_vec(),
        points,
        held,
        stopped,
    })
}

/// Opens `n` sessions, 32 at a time; returns what opened and the first error.
async fn open_many(
    t: &Target,
    pat: &Arc<Pattern>,
    kind: IdleKind,
    n: u64,
) -> (Vec<Conn>, Option<anyhow::Error>) {
    let left = Arc::new(AtomicU64::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32.min(n) {
        let (t, pat, left) = (t.clone(), pat.clone(), left.clone());
        tasks.spawn(async move {
            let mut mine = Vec::new();
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                let limit = if kind == IdleKind::Burst { 20 } else { 5 };
                match tokio::time::timeout(Duration::from_secs(limit), open_idle(&t, &pat, kind))
                    .await
                {
                    Ok(Ok(c)) => mine.push(c),
                    Ok(Err(e)) => return (mine, Some(e)),
                    Err(_) => return (mine, Some(anyhow!("session not ready within {limit} s"))),
                }
            }
            (mine, None)
        });
    }
    let (mut all, mut err) = (Vec::new(), None);
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((mine, e)) => {
                all.extend(mine);
                if err.is_none() {
                    err = e;
                }
            }
            Err(e) => err = Some(anyhow!("opener task failed: {e}")),
        }
    }
    (all, err)
}

async fn open_idle(t: &Target, pat: &Pattern, kind: IdleKind) -> Result<Conn> {
    let mut c = open(t, SMALL_BUF).await?;
    if kind == IdleKind::Burst {
        c.send(&proto::command(OP_UP, BURST), MSG_LEN).await?;
        c.send(pat.slice(0, BURST as usize), 64 << 10).await?;
        check_reply(&mut c, BURST, pat.crc(BURST)).await?;
        c.send(&proto::command(OP_DOWN, BURST), MSG_LEN).await?;
        let mut got = 0u64;
        while got < BURST {
            let d = c
                .recv()
                .await?
                .ok_or_else(|| anyhow!("burst download ended early"))?;
            ensure!(
                got + d.len() as u64 <= BURST,
                "burst download longer than asked"
            );
            ensure!(pat.matches(got, d), "burst download corrupt");
            got += d.len() as u64;
        }
    }
    Ok(c)
}

/// Nearest-rank percentile of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Runs `f` with an overall deadline, so no measurement can hang the run.
pub async fn bounded<T>(
    secs: f64,
    what: &str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(Duration::from_secs_f64(secs), f).await {
        Ok(r) => r,
        Err(_) => bail!("{what}: no result within {secs:.0} s"),
    }
}

//! The measurements, each one bounded in bytes and in time, each checking that every byte
//! arrived intact before it reports a figure: a proxy that drops, duplicates or garbles
//! data gets an error, not a number.

use crate::client::{Conn, Target, Vnc};
use crate::procstat;
use crate::proto::{self, BusyPlan, Pattern, BANNER, MAX_SLICE, MSG_LEN, OP_DOWN, OP_ECHO, OP_UP};
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

/// Lets a forking proxy's finished children be reaped, so their CPU time is counted,
/// and a proxy with work left after the transfer (a recording's writer catching up)
/// finish it, so that its CPU counts in this measurement and does not spill into the
/// next one: waits until the proxy's tree uses at most one clock tick in 200 ms (at
/// most 60 s). A proxy that is done costs one more 200 ms look.
async fn settle(pid: Option<u32>) {
    let Some(pid) = pid else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = procstat::cpu_secs(pid);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = procstat::cpu_secs(pid);
        if now - last <= 0.011 {
            break;
        }
        last = now;
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
                c.command(&proto::command(OP_DOWN, seg)).await?;
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
/// For a `vncview+ws://` target the bytes are RFB input a view-only proxy filters
/// ([`proto::ViewUpload`]): the figure counts what the browser sent, and the backend's
/// count and CRC must be those of the part the filter forwards.
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
    let view = (c.vnc == Vnc::View).then(proto::ViewUpload::new);
    // What the backend must receive per segment, and its CRC.
    let (arrives, want_crc) = match &view {
        None => (seg, pat.crc(seg)),
        Some(v) => {
            ensure!(
                seg % proto::VIEW_UNIT as u64 == 0,
                "a view-only upload segment is whole units"
            );
            let mut h = crc32fast::Hasher::new();
            let mut off = 0u64;
            while off < seg {
                let len = (seg - off).min(MAX_SLICE as u64) as usize;
                h.update(v.kept_of(len));
                off += len as u64;
            }
            (
                seg / proto::VIEW_UNIT as u64 * proto::VIEW_KEPT as u64,
                h.finalize(),
            )
        }
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(lim.secs);
    let (mut sent, mut acked) = (0u64, 0u64);
    while sent * seg < lim.bytes.max(seg) && (sent == 0 || Instant::now() < deadline) {
        c.command(&proto::command(OP_UP, arrives)).await?;
        let mut off = 0u64;
        while off < seg {
            let len = (seg - off).min(MAX_SLICE as u64) as usize;
            match &view {
                None => c.send(pat.slice(off, len), frame).await?,
                Some(v) => c.send(&v.mixed[..len], frame).await?,
            }
            off += len as u64;
        }
        sent += 1;
        while sent - acked >= UP_WINDOW {
            check_reply(&mut c, arrives, want_crc).await?;
            acked += 1;
        }
    }
    while acked < sent {
        check_reply(&mut c, arrives, want_crc).await?;
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
    c.command(&proto::command(OP_ECHO, ((rounds + warmup) * MSG) as u64))
        .await?;
    let mut samples = Vec::with_capacity(rounds);
    let mut buf = [0u8; MSG];
    // Through a view-only proxy the message must be one it forwards: a SetEncodings
    // of 15 encodings is 64 bytes.
    let view = c.vnc == Vnc::View;
    let mut framed = [0u8; MSG];
    for i in 0..rounds + warmup {
        let mut msg = pat.slice((i * MSG) as u64, MSG);
        if view {
            framed[..4].copy_from_slice(&[2, 0, 0, 15]);
            framed[4..].copy_from_slice(&msg[4..]);
            msg = &framed;
        }
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
        let (opened, err) = open_many(t, pat, kind, want, SMALL_BUF).await;
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
            // Let the proxy finish its per-session work (and a forking one its forks);
            // sessions that moved a burst first stay quiet for a few seconds, as a
            // console does between bursts, so that buffers kept only while data moves
            // are not counted as idle memory.
            let settle = if kind == IdleKind::Burst { 3000 } else { 500 };
            tokio::time::sleep(Duration::from_millis(settle)).await;
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
    rbuf: usize,
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
                match tokio::time::timeout(
                    Duration::from_secs(limit),
                    open_idle(&t, &pat, kind, rbuf),
                )
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

async fn open_idle(t: &Target, pat: &Pattern, kind: IdleKind, rbuf: usize) -> Result<Conn> {
    let mut c = open(t, rbuf).await?;
    if kind == IdleKind::Burst {
        c.command(&proto::command(OP_UP, BURST)).await?;
        c.send(pat.slice(0, BURST as usize), 64 << 10).await?;
        check_reply(&mut c, BURST, pat.crc(BURST)).await?;
        c.command(&proto::command(OP_DOWN, BURST)).await?;
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

/// The busy-host scenario's sizes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct BusySpec {
    /// Busy sessions asked for (the proxy may hold fewer: websockify).
    pub sessions: u64,
    /// How long every session runs its plan.
    pub load_secs: f64,
    /// How long the sessions then stay open and quiet before the last memory reading.
    pub after_secs: f64,
}

/// What the busy-host scenario measured on one proxy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Busy {
    pub sessions_asked: u64,
    /// Busy sessions open at once (fewer than asked when the proxy refused more).
    pub sessions: u64,
    /// Why fewer were opened, if they were.
    pub open_stopped: Option<String>,
    /// The freshly started proxy, before any session.
    pub base_rss_kib: u64,
    /// All sessions open (banner received), before the load.
    pub open_rss_kib: u64,
    /// Highest reading during the load.
    pub peak_rss_kib: u64,
    /// Median of the readings from a quarter into the load to its end.
    pub steady_rss_kib: u64,
    /// `after_secs` after the load stopped, every session still open and quiet.
    pub after_rss_kib: u64,
    /// Every session closed, 2 s later.
    pub closed_rss_kib: u64,
    pub planned_secs: f64,
    /// From the first command to the last session's reply: beyond `planned_secs` when
    /// the machine could not keep up with the plan.
    pub load_secs: f64,
    pub bytes_down: u64,
    pub bytes_up: u64,
    pub input_messages: u64,
    /// CPU seconds of the proxy's process tree over the load.
    pub cpu_secs: f64,
    /// Round trips of input-sized messages on one extra session during the load.
    pub rtt: Option<Latency>,
    /// (seconds since the load started, RSS KiB) readings.
    pub samples: Vec<(f64, u64)>,
}

impl Busy {
    /// Proxy CPU seconds per GiB moved (both ways).
    pub fn cpu_per_gib(&self) -> f64 {
        self.cpu_secs / ((self.bytes_down + self.bytes_up) as f64 / (1u64 << 30) as f64)
    }
    /// KiB per session above the fresh proxy for a reading.
    pub fn per_session(&self, rss_kib: u64) -> f64 {
        rss_kib.saturating_sub(self.base_rss_kib) as f64 / self.sessions.max(1) as f64
    }
}

/// The busy host: `spec.sessions` consoles, each running its own [`BusyPlan`] (bursts
/// down, input messages up) at once for `spec.load_secs`, while one more session
/// (`probe_target`: through the same proxy to a console served on a thread of its own)
/// times input round trips from its own thread, and a sampler reads the proxy's memory. Then
/// the sessions stay open and quiet for `spec.after_secs` and are closed. Every byte is
/// checked: downloads against the pattern, inputs by count and CRC.
pub async fn busy(
    t: &Target,
    probe_target: &Target,
    pid: Option<u32>,
    pat: &Arc<Pattern>,
    spec: BusySpec,
) -> Result<Busy> {
    let mem = |pid: Option<u32>| pid.map_or(0, |p| procstat::memory_kib(p).0);
    let mut out = Busy {
        sessions_asked: spec.sessions,
        base_rss_kib: mem(pid),
        planned_secs: spec.load_secs,
        ..Busy::default()
    };
    let (mut conns, err) = open_many(t, pat, IdleKind::Banner, spec.sessions, 64 << 10).await;
    if let Some(e) = err {
        out.open_stopped = Some(format!("session {} failed: {e:#}", conns.len() + 1));
        // A proxy at its limit (websockify near 500): give one slot back for the
        // round-trip session.
        if let Some(c) = conns.pop() {
            c.close().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    ensure!(
        !conns.is_empty(),
        "no busy session opened: {:?}",
        out.open_stopped
    );
    out.sessions = conns.len() as u64;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    out.open_rss_kib = mem(pid);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load_start = Instant::now();
    // The memory sampler: its own thread, so reading /proc never stalls the sessions.
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(p) = pid {
                    samples.push((
                        load_start.elapsed().as_secs_f64(),
                        procstat::memory_kib(p).0,
                    ));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    };
    // The extra session: its own thread and runtime, so the generator's busy thread
    // does not delay its timing.
    let probe = {
        let (t, pat, stop) = (probe_target.clone(), pat.clone(), stop.clone());
        let limit = spec.load_secs * 3.0 + 30.0;
        std::thread::spawn(move || -> Result<Latency> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(bounded(
                limit,
                "input round trips",
                input_rtt(&t, &pat, &stop),
            ))
        })
    };
    let cpu0 = cpu(pid);
    let ms = (spec.load_secs * 1000.0) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut c) in conns.drain(..).enumerate() {
        let pat = pat.clone();
        tasks.spawn(async move {
            let r = busy_session(&mut c, &pat, i as u32, ms).await;
            (c, r)
        });
    }
    let limit = Duration::from_secs_f64(spec.load_secs * 3.0 + 30.0);
    let mut first_err = None;
    let joined = tokio::time::timeout(limit, async {
        while let Some(r) = tasks.join_next().await {
            let (c, r) = r.context("busy session task panicked")?;
            match r {
                Ok((down, up, msgs)) => {
                    out.bytes_down += down;
                    out.bytes_up += up;
                    out.input_messages += msgs;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            conns.push(c);
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    out.load_secs = load_start.elapsed().as_secs_f64();
    out.cpu_secs = cpu0
        .and_then(|c0| cpu(pid).map(|c1| c1 - c0))
        .unwrap_or(0.0);
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let rtt = probe.join();
    match joined {
        Err(_) => bail!("busy sessions not done within {:.0} s", limit.as_secs_f64()),
        Ok(r) => r?,
    }
    if let Some(e) = first_err {
        return Err(e.context("a busy session failed"));
    }
    out.rtt = match rtt {
        Ok(Ok(l)) => Some(l),
        Ok(Err(e)) => return Err(e.context("input round trips")),
        Err(_) => bail!("input round-trip thread panicked"),
    };
    out.peak_rss_kib = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let mut steady: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 >= spec.load_secs / 4.0)
        .map(|s| s.1)
        .collect();
    steady.sort_unstable();
    out.steady_rss_kib = steady.get(steady.len() / 2).copied().unwrap_or(0);
    out.samples = samples;

    tokio::time::sleep(Duration::from_secs_f64(spec.after_secs)).await;
    out.after_rss_kib = mem(pid);
    for c in conns {
        c.close().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    out.closed_rss_kib = mem(pid);
    Ok(out)
}

/// One busy console: sends `B`, then takes the bursts (checking every byte) while
/// sending the plan's input messages on time, then checks the inputs' count and CRC.
/// Returns (bytes down, bytes up, input messages).
async fn busy_session(c: &mut Conn, pat: &Pattern, seed: u32, ms: u64) -> Result<(u64, u64, u64)> {
    let plan = BusyPlan::new(seed, ms);
    c.command(&proto::busy_command(seed, ms)).await?;
    let start = tokio::time::Instant::now();
    let (mut got, mut next, mut up_off) = (0u64, 0usize, 0u64);
    let mut crc = crc32fast::Hasher::new();
    while got < plan.down_total || next < plan.inputs.len() {
        let due = plan
            .inputs
            .get(next)
            .map(|&(at, _)| start + Duration::from_millis(at));
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(due.unwrap_or(start)), if due.is_some() => {
                let len = plan.inputs[next].1;
                let msg = pat.slice(up_off, len);
                crc.update(msg);
                c.send(msg, len).await?;
                up_off += len as u64;
                next += 1;
            }
            n = recv_checked(c, pat, got, plan.down_total - got), if got < plan.down_total => {
                got += n? as u64;
            }
        }
    }
    check_reply(c, plan.up_total, crc.finalize()).await?;
    Ok((got, plan.up_total, plan.inputs.len() as u64))
}

/// Receives what has arrived (at most `left` bytes), checks it against the pattern at
/// stream offset `off`; returns the count. Cancel-safe: nothing is consumed until it
/// returns.
async fn recv_checked(c: &mut Conn, pat: &Pattern, off: u64, left: u64) -> Result<usize> {
    let d = c
        .recv()
        .await?
        .ok_or_else(|| anyhow!("stream ended after {off} bytes"))?;
    let k = d.len().min(left as usize);
    ensure!(
        pat.matches(off, &d[..k]),
        "corrupt burst data at byte {off}"
    );
    // Past the last burst comes the inputs' reply: leave it for `check_reply`.
    let extra = d.len() - k;
    c.unread(extra);
    Ok(k)
}

/// The extra session: an input-sized message (6–20 bytes) every 20 ms, echoed by the
/// backend; each round trip timed until `stop` is set.
async fn input_rtt(
    t: &Target,
    pat: &Pattern,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Latency> {
    const MAX_MSGS: usize = 100_000;
    let size = |i: usize| 6 + (i * 7) % 15;
    let total: usize = (0..MAX_MSGS).map(size).sum();
    let mut c = open(t, SMALL_BUF).await?;
    c.command(&proto::command(OP_ECHO, total as u64)).await?;
    let (mut samples, mut off) = (Vec::new(), 0u64);
    let mut buf = [0u8; 32];
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) && i < MAX_MSGS {
        let n = size(i);
        let msg = pat.slice(off, n);
        let t0 = Instant::now();
        c.send(msg, n).await?;
        c.recv_exact(&mut buf[..n]).await?;
        samples.push(t0.elapsed().as_secs_f64() * 1e6);
        ensure!(buf[..n] == *msg, "input echo {i} came back changed");
        off += n as u64;
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.close().await;
    ensure!(!samples.is_empty(), "no input round trip during the load");
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        rounds: samples.len(),
        p50_us: pct(&samples, 0.50),
        p99_us: pct(&samples, 0.99),
    })
}

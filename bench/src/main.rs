//! `cgbench`: the side-by-side benchmark's one binary.
//!
//! - `backend`: the stand-in console server every target relays to;
//! - `relay`: the bare tokio TCP relay baseline;
//! - `throughput`: throughput, latency and connect-rate runs against several targets,
//!   repetitions interleaved so that background load hits every target alike;
//! - `idle`: memory per idle session and the most sessions a proxy holds;
//! - `busy`: the busy host: many consoles all a little busy at once (memory at peak,
//!   steady and after the load, CPU per GiB, input round trips during the load);
//! - `report`: the Markdown table and the SVG chart from a results directory.
//!
//! `bench/run.sh` starts the servers and drives these; see bench/README.md.

mod backend;
mod client;
mod measure;
mod procstat;
mod proto;
mod relay;
mod report;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use client::Target;
use measure::{bounded, Busy, BusySpec, Connect, Idle, IdleKind, Latency, Limits, Transfer};
use proto::Pattern;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "cgbench", about = "consolegate side-by-side benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bench backend (banner, then D/U/E commands) until killed.
    Backend {
        #[arg(long)]
        listen: String,
        /// Be a TLS-enabled console server: RFB VeNCrypt X509None with this
        /// certificate (PEM chain), then the banner and commands inside TLS.
        #[arg(long, requires = "vencrypt_key")]
        vencrypt_cert: Option<PathBuf>,
        /// The private key (PEM) for --vencrypt-cert.
        #[arg(long, requires = "vencrypt_cert")]
        vencrypt_key: Option<PathBuf>,
        /// Be a plain VNC server first (RFB 3.8, security None, ClientInit), commands
        /// wrapped as RFB messages: for `vnc+ws://` and `vncview+ws://` targets.
        #[arg(long, conflicts_with = "vencrypt_cert")]
        rfb: bool,
        /// Also serve plain sessions here on a thread of their own: the busy host's
        /// input round trips go to this console, so that they time the proxy rather
        /// than this backend's one thread, busy with a thousand consoles.
        #[arg(long)]
        probe_listen: Option<String>,
    },
    /// Run the bare TCP relay baseline until killed.
    Relay {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        to: String,
        /// A second route on the same runtime (the busy host's round-trip session to
        /// the backend's --probe-listen): LISTEN,TO.
        #[arg(long)]
        probe: Option<String>,
    },
    /// Throughput, latency and connect rate against each target; writes JSON.
    Throughput {
        /// NAME,PID,URL: URL is tcp://IP:PORT, ws://IP:PORT/?token=…, wss://…,
        /// rfb+ws://… (ws, then the browser's side of RFB security None), vnc+ws://…
        /// (the same with ClientInit, to a `backend --rfb`: commands as RFB messages)
        /// or vncview+ws://… (vnc+ws with uploads as RFB input a view-only proxy
        /// filters); PID is the proxy's process (0 for none) for CPU accounting.
        /// Repeatable.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// CA certificate (PEM) for wss:// targets.
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Tiny sizes: checks integrity, says nothing about speed.
        #[arg(long)]
        smoke: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Memory per idle session and the largest number held; writes JSON.
    Idle {
        /// NAME,PID,URL as for `throughput` (PID required).
        #[arg(long)]
        target: String,
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long, value_enum)]
        kind: IdleKind,
        /// Session counts at which to read the proxy's memory, e.g. 1000,10000.
        #[arg(long, value_delimiter = ',', required = true)]
        at: Vec<u64>,
        /// Keep ramping to this many sessions (or the first failure).
        #[arg(long, default_value_t = 0)]
        max: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The busy host against one target; writes JSON.
    Busy {
        /// NAME,PID,URL as for `throughput`.
        #[arg(long)]
        target: String,
        /// URL of the extra session that times input round trips: the same proxy,
        /// reaching the backend's --probe-listen console (default: the target's URL).
        #[arg(long)]
        probe: Option<String>,
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Busy sessions at once.
        #[arg(long, default_value_t = 1000)]
        sessions: u64,
        /// Seconds every session runs its plan of bursts and inputs.
        #[arg(long, default_value_t = 20.0)]
        secs: f64,
        /// Seconds the sessions then stay open and quiet before the last reading.
        #[arg(long, default_value_t = 30.0)]
        after: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Markdown table and SVG chart from a results directory.
    Report {
        #[arg(long)]
        dir: PathBuf,
        /// Extra lines for the notes under the table (machine load, fd limit…).
        #[arg(long)]
        note: Vec<String>,
    },
}

/// A measurement's outcome: a figure, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome<T> {
    Ok(T),
    Err(String),
}

impl<T> From<Result<T>> for Outcome<T> {
    fn from(r: Result<T>) -> Self {
        match r {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(format!("{e:#}")),
        }
    }
}

/// Everything measured against one target, one entry per repetition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetRuns {
    pub name: String,
    /// TLS version and cipher suite negotiated (TLS targets only).
    #[serde(default)]
    pub tls: Option<String>,
    pub down1: Vec<Outcome<Transfer>>,
    pub down8: Vec<Outcome<Transfer>>,
    pub up_small: Vec<Outcome<Transfer>>,
    pub up_large: Vec<Outcome<Transfer>>,
    pub latency: Vec<Outcome<Latency>>,
    pub connect: Vec<Outcome<Connect>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThroughputFile {
    pub smoke: bool,
    pub cores: usize,
    pub unix_time: u64,
    pub small_frame: usize,
    pub targets: Vec<TargetRuns>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusyFile {
    pub target: String,
    pub spec: BusySpec,
    pub busy: Outcome<Busy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleFile {
    pub target: String,
    pub idle: Idle,
}

/// Sizes of one run.
struct Plan {
    down1: Limits,
    down8: Limits,
    up_small: Limits,
    up_large: Limits,
    small_frame: usize,
    rounds: usize,
    connect_secs: f64,
    connect_max: u64,
}

impl Plan {
    fn new(smoke: bool) -> Plan {
        const MIB: u64 = 1 << 20;
        if smoke {
            let l = |bytes, segment| Limits {
                bytes,
                secs: 2.0,
                segment,
            };
            return Plan {
                down1: l(4 * MIB, MIB),
                down8: l(8 * MIB, MIB),
                up_small: l(MIB / 4, 64 << 10),
                up_large: l(4 * MIB, MIB),
                small_frame: 32,
                rounds: 200,
                connect_secs: 0.3,
                connect_max: 100,
            };
        }
        // Sized for a full run (6 targets × 3 repetitions) well under 10 minutes on 2
        // cores: each transfer stops at its byte budget or its time cap, whichever first.
        Plan {
            down1: Limits {
                bytes: 1024 * MIB,
                secs: 2.5,
                segment: 8 * MIB,
            },
            down8: Limits {
                bytes: 1024 * MIB,
                secs: 2.5,
                segment: 8 * MIB,
            },
            up_small: Limits {
                bytes: 64 * MIB,
                secs: 2.0,
                segment: MIB / 4,
            },
            up_large: Limits {
                bytes: 1024 * MIB,
                secs: 2.5,
                segment: 4 * MIB,
            },
            small_frame: 32,
            rounds: 10_000,
            connect_secs: 2.0,
            connect_max: 50_000,
        }
    }
}

fn parse_target(spec: &str, ca: Option<&std::path::Path>) -> Result<(Target, Option<u32>)> {
    let mut it = spec.splitn(3, ',');
    let (Some(name), Some(pid), Some(url)) = (it.next(), it.next(), it.next()) else {
        return Err(anyhow!("--target {spec:?}: want NAME,PID,URL"));
    };
    let pid: u32 = pid
        .parse()
        .with_context(|| format!("--target {name}: PID {pid:?}"))?;
    Ok((Target::parse(name, url, ca)?, (pid != 0).then_some(pid)))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One thread: the generator must leave the second core to the proxy under test.
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cgbench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.cmd {
        Cmd::Backend {
            listen,
            vencrypt_cert,
            vencrypt_key,
            rfb,
            probe_listen,
        } => {
            let vencrypt = match (vencrypt_cert, vencrypt_key) {
                (Some(c), Some(k)) => Some(backend::vencrypt_config(&c, &k)?),
                _ => None,
            };
            if let Some(addr) = probe_listen {
                std::thread::spawn(move || {
                    let served =
                        runtime().and_then(|rt| rt.block_on(backend::serve(&addr, None, false)));
                    if let Err(e) = served {
                        eprintln!("backend: probe listener: {e:#}");
                    }
                });
            }
            runtime()?.block_on(backend::serve(&listen, vencrypt, rfb))?
        }
        Cmd::Relay { listen, to, probe } => {
            // The relay gets the runtime a proxy would use: one worker per core.
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(async move {
                    if let Some(p) = probe {
                        let (l, t) = p
                            .split_once(',')
                            .ok_or_else(|| anyhow!("--probe {p:?}: want LISTEN,TO"))?;
                        let (l, t) = (l.to_string(), t.to_string());
                        tokio::spawn(async move {
                            if let Err(e) = relay::serve(&l, &t).await {
                                eprintln!("relay: probe route: {e:#}");
                            }
                        });
                    }
                    relay::serve(&listen, &to).await
                })?
        }
        Cmd::Throughput {
            targets,
            ca,
            reps,
            smoke,
            out,
        } => {
            let targets = targets
                .iter()
                .map(|s| parse_target(s, ca.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            let file = runtime()?.block_on(throughput(&targets, reps, smoke))?;
            std::fs::write(&out, serde_json::to_string_pretty(&file)?)
                .with_context(|| format!("write {}", out.display()))?;
            let failed = failures(&file);
            if !failed.is_empty() {
                for f in &failed {
                    eprintln!("FAILED {f}");
                }
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Cmd::Idle {
            target,
            ca,
            kind,
            at,
            max,
            out,
        } => {
            let (t, pid) = parse_target(&target, ca.as_deref())?;
            let pid = pid.ok_or_else(|| anyhow!("idle needs the proxy's PID"))?;
            let pat = Arc::new(Pattern::new());
            let max = max.max(at.iter().copied().max().unwrap_or(0));
            let idle = runtime()?.block_on(bounded(
                300.0,
                "idle",
                measure::idle(&t, pid, &pat, kind, &at, max),
            ))?;
            eprintln!(
                "  {} {:?}: held {} ({})",
                t.name, kind, idle.held, idle.stopped
            );
            let file = IdleFile {
                target: t.name.clone(),
                idle,
            };
            std::fs::write(&out, serde_json::to_string_pretty(&file)?)
                .with_context(|| format!("write {}", out.display()))?;
        }
        Cmd::Busy {
            target,
            probe,
            ca,
            sessions,
            secs,
            after,
            out,
        } => {
            let (t, pid) = parse_target(&target, ca.as_deref())?;
            let probe = match probe {
                Some(url) => client::Target::parse(&t.name, &url, ca.as_deref())?,
                None => t.clone(),
            };
            let spec = BusySpec {
                sessions,
                load_secs: secs,
                after_secs: after,
            };
            let pat = Arc::new(Pattern::new());
            // Opening (websockify forks slowly), the load with its lag, the quiet wait.
            let limit = 120.0 + secs * 3.0 + after;
            let busy: Outcome<Busy> = runtime()?
                .block_on(bounded(
                    limit,
                    "busy host",
                    measure::busy(&t, &probe, pid, &pat, spec),
                ))
                .into();
            let failed = matches!(busy, Outcome::Err(_));
            match &busy {
                Outcome::Ok(b) => eprintln!(
                    "  {} busy: {} sessions, {:.0} MiB down in {:.1} s, peak {:.0} KiB/session, after {:.1}, {:.2} CPU s/GiB, input rtt {}",
                    t.name,
                    b.sessions,
                    b.bytes_down as f64 / (1 << 20) as f64,
                    b.load_secs,
                    b.per_session(b.peak_rss_kib),
                    b.per_session(b.after_rss_kib),
                    b.cpu_per_gib(),
                    b.rtt.as_ref().map_or("-".into(), |l| format!("{:.0}/{:.0} µs", l.p50_us, l.p99_us))
                ),
                Outcome::Err(e) => eprintln!("FAILED {} busy: {e}", t.name),
            }
            let file = BusyFile {
                target: t.name.clone(),
                spec,
                busy,
            };
            std::fs::write(&out, serde_json::to_string_pretty(&file)?)
                .with_context(|| format!("write {}", out.display()))?;
            if failed {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Cmd::Report { dir, note } => report::write(&dir, &note)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Every measurement that produced an error instead of a figure.
fn failures(f: &ThroughputFile) -> Vec<String> {
    fn errs<T>(out: &mut Vec<String>, target: &str, what: &str, v: &[Outcome<T>]) {
        for o in v {
            if let Outcome::Err(e) = o {
                out.push(format!("{target} {what}: {e}"));
            }
        }
    }
    let mut out = Vec::new();
    for t in &f.targets {
        errs(&mut out, &t.name, "down 1", &t.down1);
        errs(&mut out, &t.name, "down 8", &t.down8);
        errs(&mut out, &t.name, "up small frames", &t.up_small);
        errs(&mut out, &t.name, "up large frames", &t.up_large);
        errs(&mut out, &t.name, "latency", &t.latency);
        errs(&mut out, &t.name, "connect", &t.connect);
    }
    out
}

async fn throughput(
    targets: &[(Target, Option<u32>)],
    reps: usize,
    smoke: bool,
) -> Result<ThroughputFile> {
    let plan = Plan::new(smoke);
    let pat = Arc::new(Pattern::new());
    let reps = if smoke { 1 } else { reps.max(1) };
    let mut runs: Vec<TargetRuns> = targets
        .iter()
        .map(|(t, _)| TargetRuns {
            name: t.name.clone(),
            ..Default::default()
        })
        .collect();
    // One untimed transfer per target first: in every full run the first measured
    // transfer after start-up came out about 40% slower than the later ones (cold
    // caches, the CPU clock ramping up, TCP buffers still autotuning). That is start-up,
    // not the proxy's steady state, and it fell on whichever target came first.
    if !smoke {
        let warm = Limits {
            bytes: 256 << 20,
            secs: 1.0,
            segment: 8 << 20,
        };
        for (t, pid) in targets {
            eprintln!("  warm-up {}", t.name);
            let _ = bounded(
                warm.secs * 4.0 + 20.0,
                "warm-up",
                measure::down(t, *pid, &pat, 1, warm),
            )
            .await;
        }
    }
    // What TLS each TLS target negotiates with the generator's browser-like offer.
    for ((t, _), r) in targets.iter().zip(runs.iter_mut()) {
        if t.tls.is_some() {
            if let Ok(Ok(c)) = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client::Conn::connect(t, 4096),
            )
            .await
            {
                r.tls = c.tls.clone();
                c.close().await;
            }
        }
    }
    // Repetitions outermost: a burst of background load then hurts one repetition of
    // every target rather than all repetitions of one, and the median drops it.
    for rep in 1..=reps {
        for ((t, pid), r) in targets.iter().zip(runs.iter_mut()) {
            let pid = *pid;
            let cap = |l: &Limits| l.secs * 4.0 + 20.0;
            eprint!("  rep {rep}/{reps} {:<18}", t.name);
            r.down1.push(
                bounded(
                    cap(&plan.down1),
                    "down 1",
                    measure::down(t, pid, &pat, 1, plan.down1),
                )
                .await
                .into(),
            );
            r.down8.push(
                bounded(
                    cap(&plan.down8),
                    "down 8",
                    measure::down(t, pid, &pat, 8, plan.down8),
                )
                .await
                .into(),
            );
            r.up_small.push(
                bounded(
                    cap(&plan.up_small),
                    "up small",
                    measure::up(t, pid, &pat, plan.small_frame, plan.up_small),
                )
                .await
                .into(),
            );
            r.up_large.push(
                bounded(
                    cap(&plan.up_large),
                    "up large",
                    measure::up(t, pid, &pat, 64 << 10, plan.up_large),
                )
                .await
                .into(),
            );
            r.latency.push(
                bounded(60.0, "latency", measure::latency(t, &pat, plan.rounds))
                    .await
                    .into(),
            );
            r.connect.push(
                bounded(
                    plan.connect_secs + 30.0,
                    "connect",
                    measure::connect_rate(t, 32, plan.connect_secs, plan.connect_max),
                )
                .await
                .into(),
            );
            eprintln!(" {}", brief(r));
        }
    }
    Ok(ThroughputFile {
        smoke,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        small_frame: plan.small_frame,
        targets: runs,
    })
}

/// One progress line: the last repetition's figures.
fn brief(r: &TargetRuns) -> String {
    let t = |v: &[Outcome<Transfer>]| match v.last() {
        Some(Outcome::Ok(t)) => format!("{:.0}", t.mib_s()),
        _ => "ERR".into(),
    };
    let lat = match r.latency.last() {
        Some(Outcome::Ok(l)) => format!("{:.0}/{:.0}µs", l.p50_us, l.p99_us),
        _ => "ERR".into(),
    };
    let con = match r.connect.last() {
        Some(Outcome::Ok(c)) => format!("{:.0}/s", c.rate),
        _ => "ERR".into(),
    };
    format!(
        "down {}/{} up {}/{} MiB/s, rtt {lat}, {con}",
        t(&r.down1),
        t(&r.down8),
        t(&r.up_small),
        t(&r.up_large)
    )
}

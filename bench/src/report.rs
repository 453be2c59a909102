//! Turns a results directory (`throughput.json`, `idle-*.json`, `busy-*.json`,
//! `first-frame.json`) into `report.md` (the table, with consolegate's ratios to the
//! others beside each figure, the first-frame table, and issue 15's targets checked one
//! by one) and `chart.svg`.
//! Each figure is the median of the repetitions; a measurement that failed shows as
//! "error" and its message is listed under the table, never silently dropped.

use crate::measure::{Busy, Idle, IdleKind};
use crate::{BusyFile, IdleFile, Outcome, TargetRuns, ThroughputFile};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

const CG_WS: &str = "consolegate-ws";
const WF_WS: &str = "websockify-ws";
const CG_WSS: &str = "consolegate-wss";
const WF_WSS: &str = "websockify-wss";
const BARE: &str = "bare-relay";
const DIRECT: &str = "direct";
/// consolegate over ws:// to a TLS-enabled console server (VeNCrypt X509None): what TLS
/// to the console server costs, compared with `CG_WS` rather than with websockify,
/// which cannot reach such a server.
const CG_VENC: &str = "consolegate-ws-vencrypt";
/// TLS relays as anchors for `CG_WSS`: nginx `stream` and HAProxy terminating TLS with
/// the same certificate and proxying the bytes to the backend.
/// consolegate over ws:// to a VNC server (`backend --rfb`) with a `view` ticket: the
/// browser's uploads are RFB input the view-only filter parses and drops (issue 14).
const CG_VIEW: &str = "consolegate-ws-view";
/// consolegate over ws:// to the same VNC server with every session recorded to disk.
const CG_REC: &str = "consolegate-ws-rec";
const NGINX: &str = "nginx-tls";
const HAPROXY: &str = "haproxy-tls";

/// Everything known about one target.
struct Data<'a> {
    runs: Option<&'a TargetRuns>,
    idle: Vec<&'a Idle>,
    busy: Option<&'a Outcome<Busy>>,
}

#[derive(Clone)]
enum Cell {
    Num(f64),
    /// A figure shown with extra text (the ratio uses the figure).
    NumNote(f64, String),
    Text(String),
    Missing,
}

impl Cell {
    fn num(&self) -> Option<f64> {
        match self {
            Cell::Num(v) | Cell::NumNote(v, _) => Some(*v),
            _ => None,
        }
    }
    fn show(&self) -> String {
        match self {
            Cell::Num(v) => fmt_num(*v),
            Cell::NumNote(v, note) => format!("{} {note}", fmt_num(*v)),
            Cell::Text(s) => s.clone(),
            Cell::Missing => "–".into(),
        }
    }
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio; small ones as "1/N×" so that 0.0001 does not print as 0.00.
fn fmt_ratio(r: f64) -> String {
    if r > 0.0 && r < 0.1 {
        format!("1/{:.0}×", 1.0 / r)
    } else {
        format!("{}×", fmt_num(r))
    }
}

/// Median of `f` over the repetitions; "error" when any repetition failed.
fn median<T>(v: &[Outcome<T>], f: impl Fn(&T) -> Option<f64>) -> Cell {
    if v.is_empty() {
        return Cell::Missing;
    }
    let mut xs = Vec::new();
    for o in v {
        match o {
            Outcome::Ok(t) => match f(t) {
                Some(x) => xs.push(x),
                None => return Cell::Missing,
            },
            Outcome::Err(_) => return Cell::Text("error".into()),
        }
    }
    xs.sort_by(f64::total_cmp);
    Cell::Num(xs[xs.len() / 2])
}

type Getter = Box<dyn Fn(&Data) -> Cell>;

struct Row {
    label: String,
    higher_better: bool,
    get: Getter,
    /// Shown in the chart under this title.
    chart: Option<&'static str>,
}

fn runs_row(
    label: &str,
    higher: bool,
    chart: Option<&'static str>,
    f: impl Fn(&TargetRuns) -> Cell + 'static,
) -> Row {
    Row {
        label: label.into(),
        higher_better: higher,
        chart,
        get: Box::new(move |d| d.runs.map(&f).unwrap_or(Cell::Missing)),
    }
}

fn idle_row(kind: IdleKind, n: u64) -> Row {
    let what = match kind {
        IdleKind::Banner => "banner only",
        IdleKind::Burst => "after 1 MiB each way",
    };
    Row {
        label: format!("idle KiB/session, {n} sessions, {what}: RSS (PSS) ↓"),
        higher_better: false,
        chart: None,
        get: Box::new(move |d| {
            let Some(i) = d.idle.iter().find(|i| i.kind == kind) else {
                return Cell::Missing;
            };
            if let Some(p) = i.points.iter().find(|p| p.n == n) {
                let pss = p.pss_kib.saturating_sub(i.base_pss_kib) as f64 / n as f64;
                return Cell::NumNote(
                    p.rss_kib.saturating_sub(i.base_rss_kib) as f64 / n as f64,
                    format!("({})", fmt_num(pss)),
                );
            }
            match i.points.last() {
                // It could not hold `n`: its cost per session at the most it held is
                // the best figure there is, marked as such.
                Some(p) if p.n > 0 => Cell::NumNote(
                    p.rss_kib.saturating_sub(i.base_rss_kib) as f64 / p.n as f64,
                    format!(
                        "({}) at {}: ✗ held {}",
                        fmt_num(p.pss_kib.saturating_sub(i.base_pss_kib) as f64 / p.n as f64),
                        p.n,
                        i.held
                    ),
                ),
                _ => Cell::Text(format!("✗ held {}", i.held)),
            }
        }),
    }
}

fn busy_row(
    label: &str,
    chart: Option<&'static str>,
    f: impl Fn(&Busy) -> Option<f64> + 'static,
) -> Row {
    Row {
        label: label.into(),
        higher_better: false,
        chart,
        get: Box::new(move |d| match d.busy {
            None => Cell::Missing,
            Some(Outcome::Err(_)) => Cell::Text("error".into()),
            Some(Outcome::Ok(b)) => match f(b) {
                Some(v) if b.sessions < b.sessions_asked => {
                    Cell::NumNote(v, format!("(held {})", b.sessions))
                }
                Some(v) => Cell::Num(v),
                None => Cell::Missing,
            },
        }),
    }
}

fn busy_rows(n: u64) -> Vec<Row> {
    vec![
        busy_row(
            &format!("busy host ({n} sessions): RSS KiB/session at peak ↓"),
            Some("busy host: RSS KiB/session at peak"),
            |b| Some(b.per_session(b.peak_rss_kib)),
        ),
        busy_row("busy host: RSS KiB/session, steady ↓", None, |b| {
            Some(b.per_session(b.steady_rss_kib))
        }),
        busy_row(
            "busy host: RSS KiB/session 30 s after the load (open, quiet) ↓",
            Some("busy host: KiB/session after the load"),
            |b| Some(b.per_session(b.after_rss_kib)),
        ),
        busy_row(
            "busy host: CPU s/GiB moved ↓",
            Some("busy host: CPU s/GiB"),
            |b| Some(b.cpu_per_gib()),
        ),
        busy_row("busy host: input round trip p50 µs ↓", None, |b| {
            b.rtt.as_ref().map(|l| l.p50_us)
        }),
        busy_row(
            "busy host: input round trip p99 µs ↓",
            Some("busy host: input round trip p99 µs"),
            |b| b.rtt.as_ref().map(|l| l.p99_us),
        ),
    ]
}

fn rows(small_frame: usize, checkpoints: &[u64], kinds: &[IdleKind]) -> Vec<Row> {
    let mut rows = vec![
        runs_row(
            "down MiB/s, 1 stream ↑",
            true,
            Some("down MiB/s, 1 stream"),
            |r| median(&r.down1, |t| Some(t.mib_s())),
        ),
        runs_row(
            "down MiB/s, 8 streams ↑",
            true,
            Some("down MiB/s, 8 streams"),
            |r| median(&r.down8, |t| Some(t.mib_s())),
        ),
        runs_row(
            &format!("up MiB/s, {small_frame} B messages ↑"),
            true,
            Some("up MiB/s, small messages"),
            |r| median(&r.up_small, |t| Some(t.mib_s())),
        ),
        runs_row(
            "up MiB/s, 64 KiB messages ↑",
            true,
            Some("up MiB/s, 64 KiB messages"),
            |r| median(&r.up_large, |t| Some(t.mib_s())),
        ),
        runs_row("64 B round trip p50 µs ↓", false, None, |r| {
            median(&r.latency, |l| Some(l.p50_us))
        }),
        runs_row(
            "64 B round trip p99 µs ↓",
            false,
            Some("64 B round trip p99 µs"),
            |r| median(&r.latency, |l| Some(l.p99_us)),
        ),
        runs_row(
            "new sessions/s, 32 clients ↑",
            true,
            Some("new sessions/s, 32 clients"),
            |r| median(&r.connect, |c| Some(c.rate)),
        ),
        runs_row("time to first byte p50 ms ↓", false, None, |r| {
            median(&r.connect, |c| Some(c.p50_ms))
        }),
        runs_row("time to first byte p99 ms ↓", false, None, |r| {
            median(&r.connect, |c| Some(c.p99_ms))
        }),
        runs_row("CPU s/GiB, down 1 stream ↓", false, None, |r| {
            median(&r.down1, |t| t.cpu_per_gib())
        }),
        runs_row("CPU s/GiB, up 64 KiB ↓", false, None, |r| {
            median(&r.up_large, |t| t.cpu_per_gib())
        }),
    ];
    for &k in kinds {
        for &n in checkpoints {
            rows.push(idle_row(k, n));
        }
    }
    if !kinds.is_empty() {
        rows.push(Row {
            label: "most idle sessions held ↑".into(),
            higher_better: true,
            chart: None,
            get: Box::new(|d| match d.idle.iter().map(|i| i.held).max() {
                Some(h) => {
                    let capped = d
                        .idle
                        .iter()
                        .any(|i| i.held == h && i.stopped.starts_with("cap"));
                    if capped {
                        Cell::Text(format!("≥ {h} (cap)"))
                    } else {
                        Cell::Num(h as f64)
                    }
                }
                None => Cell::Missing,
            }),
        });
    }
    rows
}

enum Col {
    Target(&'static str, &'static str),
    Ratio(&'static str, &'static str, &'static str),
    /// The first target's figure divided by the better of the other two's.
    Best(&'static str, &'static str, &'static str, &'static str),
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(unix: u64) -> String {
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn write(dir: &Path, notes: &[String]) -> Result<()> {
    let tp_path = dir.join("throughput.json");
    let tp: ThroughputFile = serde_json::from_str(
        &std::fs::read_to_string(&tp_path)
            .with_context(|| format!("read {}", tp_path.display()))?,
    )
    .with_context(|| format!("parse {}", tp_path.display()))?;
    let mut idles: Vec<IdleFile> = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("idle-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(e.path())?;
            idles.push(serde_json::from_str(&text).with_context(|| format!("parse {name}"))?);
        }
    }
    // Same order as the table's columns, banner before burst.
    let order = [
        CG_WS, CG_WSS, WF_WS, WF_WSS, NGINX, HAPROXY, BARE, DIRECT, CG_VENC, CG_VIEW, CG_REC,
    ];
    idles.sort_by_key(|f| {
        (
            order
                .iter()
                .position(|n| *n == f.target)
                .unwrap_or(order.len()),
            f.idle.kind as u8,
        )
    });
    let mut checkpoints: Vec<u64> = idles
        .iter()
        .flat_map(|f| f.idle.checkpoints.iter().copied())
        .collect();
    checkpoints.sort();
    checkpoints.dedup();
    let mut kinds: Vec<IdleKind> = idles.iter().map(|f| f.idle.kind).collect();
    kinds.sort_by_key(|k| *k as u8);
    kinds.dedup();

    let mut busies: Vec<BusyFile> = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("busy-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(e.path())?;
            busies.push(serde_json::from_str(&text).with_context(|| format!("parse {name}"))?);
        }
    }
    let data = |name: &str| Data {
        runs: tp.targets.iter().find(|t| t.name == name),
        idle: idles
            .iter()
            .filter(|f| f.target == name)
            .map(|f| &f.idle)
            .collect(),
        busy: busies.iter().find(|f| f.target == name).map(|f| &f.busy),
    };
    let present = |name: &str| {
        let d = data(name);
        d.runs.is_some() || !d.idle.is_empty() || d.busy.is_some()
    };
    let layout = [
        Col::Target(CG_WS, "consolegate ws"),
        Col::Target(WF_WS, "websockify ws"),
        Col::Ratio(CG_WS, WF_WS, "cg ÷ wsfy"),
        Col::Target(CG_WSS, "consolegate wss"),
        Col::Target(WF_WSS, "websockify wss"),
        Col::Ratio(CG_WSS, WF_WSS, "cg ÷ wsfy (TLS)"),
        Col::Target(NGINX, "nginx stream TLS"),
        Col::Target(HAPROXY, "HAProxy TLS"),
        Col::Best(CG_WSS, NGINX, HAPROXY, "cg wss ÷ better TLS relay"),
        Col::Target(BARE, "bare TCP relay"),
        Col::Ratio(CG_WS, BARE, "cg ÷ bare"),
        Col::Target(DIRECT, "backend direct"),
        Col::Target(CG_VENC, "cg ws + VeNCrypt"),
        Col::Ratio(CG_VENC, CG_WS, "VeNCrypt ÷ ws"),
        Col::Target(CG_VIEW, "cg ws VNC view-only"),
        Col::Ratio(CG_VIEW, CG_WS, "view-only ÷ ws"),
        Col::Target(CG_REC, "cg ws VNC recorded"),
        Col::Ratio(CG_REC, CG_WS, "recorded ÷ ws"),
    ];
    let cols: Vec<&Col> = layout
        .iter()
        .filter(|c| match c {
            Col::Target(n, _) => present(n),
            Col::Ratio(a, b, _) => present(a) && present(b),
            Col::Best(a, b, c, _) => present(a) && (present(b) || present(c)),
        })
        .collect();
    let mut rows = rows(tp.small_frame, &checkpoints, &kinds);
    if let Some(f) = busies.first() {
        rows.extend(busy_rows(f.spec.sessions));
    }

    let date = civil(tp.unix_time);
    let reps = tp.targets.first().map(|t| t.down1.len()).unwrap_or(0);
    let mut md = String::new();
    writeln!(md, "## consolegate side-by-side benchmark, {date}\n")?;
    writeln!(
        md,
        "{} cores; loopback; median of {reps} repetition(s){}. ↑ higher is better, ↓ lower is better; \
         ratios are consolegate's figure divided by the other's.\n",
        tp.cores,
        if tp.smoke { "; **smoke run: integrity only, the figures mean nothing**" } else { "" }
    )?;
    let head: Vec<&str> = cols
        .iter()
        .map(|c| match c {
            Col::Target(_, h) | Col::Ratio(_, _, h) | Col::Best(_, _, _, h) => *h,
        })
        .collect();
    writeln!(md, "| figure | {} |", head.join(" | "))?;
    writeln!(md, "|---|{}", "---:|".repeat(cols.len()))?;
    for row in &rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match c {
                Col::Target(n, _) => (row.get)(&data(n)).show(),
                Col::Ratio(a, b, _) => match ((row.get)(&data(a)).num(), (row.get)(&data(b)).num())
                {
                    (Some(x), Some(y)) if y != 0.0 => fmt_ratio(x / y),
                    _ => "–".into(),
                },
                Col::Best(a, b, c, _) => {
                    match ((row.get)(&data(a)).num(), better(row, &data(b), &data(c))) {
                        (Some(x), Some(y)) if y != 0.0 => fmt_ratio(x / y),
                        _ => "–".into(),
                    }
                }
            })
            .collect();
        writeln!(md, "| {} | {} |", row.label, cells.join(" | "))?;
    }
    writeln!(md)?;
    for n in notes {
        writeln!(md, "- {n}")?;
    }
    for f in &idles {
        writeln!(
            md,
            "- {} idle ({:?}): baseline RSS {} KiB (PSS {}); {}; {}",
            f.target,
            f.idle.kind,
            f.idle.base_rss_kib,
            f.idle.base_pss_kib,
            f.idle
                .points
                .iter()
                .map(|p| format!(
                    "{} sessions: RSS {} KiB, PSS {} KiB",
                    p.n, p.rss_kib, p.pss_kib
                ))
                .collect::<Vec<_>>()
                .join("; "),
            f.idle.stopped
        )?;
    }
    for f in order
        .iter()
        .filter_map(|n| busies.iter().find(|f| f.target == *n))
    {
        match &f.busy {
            Outcome::Ok(b) => writeln!(
                md,
                "- {} busy host: {} of {} sessions{}; {:.0} MiB down, {:.1} MiB up ({} input messages) in {:.1} s (plan {:.0} s); RSS KiB: fresh {}, all open {}, peak {}, steady {}, {:.0} s after {}, all closed {}; {} input round trips",
                f.target,
                b.sessions,
                b.sessions_asked,
                b.open_stopped.as_ref().map_or(String::new(), |s| format!(" ({s})")),
                b.bytes_down as f64 / (1 << 20) as f64,
                b.bytes_up as f64 / (1 << 20) as f64,
                b.input_messages,
                b.load_secs,
                b.planned_secs,
                b.base_rss_kib,
                b.open_rss_kib,
                b.peak_rss_kib,
                b.steady_rss_kib,
                f.spec.after_secs,
                b.after_rss_kib,
                b.closed_rss_kib,
                b.rtt.as_ref().map_or(0, |l| l.rounds)
            )?,
            Outcome::Err(e) => writeln!(md, "- error: {} busy host: {e}", f.target)?,
        }
    }
    let suites: Vec<String> = tp
        .targets
        .iter()
        .filter_map(|t| t.tls.as_ref().map(|s| format!("{} {s}", t.name)))
        .collect();
    if !suites.is_empty() {
        writeln!(md, "- TLS negotiated: {}", suites.join("; "))?;
    }
    for t in &tp.targets {
        let errs = crate::failures(&ThroughputFile {
            targets: vec![t.clone()],
            ..tp.clone()
        });
        for e in errs {
            writeln!(md, "- error: {e}")?;
        }
        for c in t.connect.iter().filter_map(|o| {
            if let Outcome::Ok(c) = o {
                Some(c)
            } else {
                None
            }
        }) {
            if c.errors > 0 {
                writeln!(
                    md,
                    "- {}: {} failed session(s) in the connect run, first: {}",
                    t.name,
                    c.errors,
                    c.first_error.clone().unwrap_or_default()
                )?;
            }
        }
    }
    let first_frame = first_frame(dir)?;
    if let Some(ff) = &first_frame {
        md.push_str(&first_frame_table(ff));
    }
    md.push_str(&targets(&data, &busies, first_frame.as_ref()));
    std::fs::write(dir.join("report.md"), &md)?;
    print!("{md}");

    // The chart: one panel per charted row, a bar per target.
    let targets: Vec<(&str, &str)> = layout
        .iter()
        .filter_map(|c| {
            if let Col::Target(n, h) = c {
                present(n).then_some((*n, *h))
            } else {
                None
            }
        })
        .collect();
    let charted: Vec<&Row> = rows.iter().filter(|r| r.chart.is_some()).collect();
    std::fs::write(
        dir.join("chart.svg"),
        svg(&date, tp.cores, &charted, &targets, &data),
    )?;
    Ok(())
}

fn svg<'a>(
    date: &str,
    cores: usize,
    rows: &[&Row],
    targets: &[(&str, &str)],
    data: &dyn Fn(&str) -> Data<'a>,
) -> String {
    const COLORS: [&str; 9] = [
        "#1f6feb", "#d1242f", "#54aeff", "#ff8182", "#bf8700", "#fb8f44", "#6e7781", "#2da44e",
        "#8250df",
    ];
    let (pw, bar, gap) = (470.0, 18.0, 4.0);
    let ph = 34.0 + targets.len() as f64 * (bar + gap) + 10.0;
    let ncol = 2;
    let nrow = rows.len().div_ceil(ncol);
    let (w, h) = (pw * ncol as f64 + 20.0, ph * nrow as f64 + 50.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"24\" font-size=\"15\" font-weight=\"bold\">consolegate vs websockify vs bare relay — {date}, {cores} cores, loopback, median of repetitions</text>\n"
    );
    for (i, row) in rows.iter().enumerate() {
        let (x0, y0) = (10.0 + (i % ncol) as f64 * pw, 40.0 + (i / ncol) as f64 * ph);
        let better = if row.higher_better {
            "longer is better"
        } else {
            "shorter is better"
        };
        let _ = writeln!(
            s,
            "<text x=\"{x0}\" y=\"{}\" font-weight=\"bold\">{} ({better})</text>",
            y0 + 16.0,
            row.chart.unwrap_or("")
        );
        let vals: Vec<Option<f64>> = targets
            .iter()
            .map(|(n, _)| (row.get)(&data(n)).num())
            .collect();
        let max = vals.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
        for (j, ((_, label), v)) in targets.iter().zip(&vals).enumerate() {
            let y = y0 + 26.0 + j as f64 * (bar + gap);
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
                x0 + 115.0,
                y + 13.0
            );
            let (len, text) = match v {
                Some(v) if max > 0.0 => ((v / max) * 260.0, fmt_num(*v)),
                _ => (0.0, "n/a".into()),
            };
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{y}\" width=\"{len:.1}\" height=\"{bar}\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{text}</text>",
                x0 + 120.0,
                COLORS[j % COLORS.len()],
                x0 + 124.0 + len,
                y + 13.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The better of two targets' figures for a row (higher or lower, as the row says).
fn better(row: &Row, b: &Data, c: &Data) -> Option<f64> {
    match ((row.get)(b).num(), (row.get)(c).num()) {
        (Some(x), Some(y)) if row.higher_better => Some(x.max(y)),
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// `first-frame.json`, written by bench/first-frame.mjs.
#[derive(serde::Deserialize)]
struct FirstFrame {
    loads: usize,
    #[serde(default)]
    browser: String,
    paths: Vec<FramePath>,
}

#[derive(serde::Deserialize)]
struct FramePath {
    name: String,
    label: String,
    ok: usize,
    #[serde(default)]
    errors: Vec<String>,
    /// Medians in ms: socket created → open; socket created → first non-blank frame;
    /// page navigation start → first non-blank frame.
    connect_ms: Option<f64>,
    first_frame_ms: Option<f64>,
    page_first_frame_ms: Option<f64>,
}

fn first_frame(dir: &Path) -> Result<Option<FirstFrame>> {
    let path = dir.join("first-frame.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?,
    ))
}

fn first_frame_table(ff: &FirstFrame) -> String {
    let mut md = format!(
        "\n### Time to first frame in a real browser ({}, QEMU's VNC, median of {} loads)\n\n\
         | path | connect ms ↓ | first frame ms (from the socket) ↓ | first frame ms (from page start) ↓ | loads ok |\n|---|---:|---:|---:|---:|\n",
        if ff.browser.is_empty() { "chromium" } else { &ff.browser },
        ff.loads
    );
    let show = |v: Option<f64>| v.map_or("–".to_string(), fmt_num);
    for p in &ff.paths {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {}/{} |\n",
            p.label,
            show(p.connect_ms),
            show(p.first_frame_ms),
            show(p.page_first_frame_ms),
            p.ok,
            ff.loads
        ));
    }
    for p in &ff.paths {
        if let Some(e) = p.errors.first() {
            md.push_str(&format!(
                "\n- {}: {} failed load(s), first: {e}",
                p.name,
                p.errors.len()
            ));
        }
    }
    md.push('\n');
    md
}

/// Issue 15's targets, and issue 14's (view-only and recording costs), each checked
/// against this run's figures: met, missed, or not measured in this run.
fn targets<'a>(
    data: &dyn Fn(&str) -> Data<'a>,
    busies: &[BusyFile],
    ff: Option<&FirstFrame>,
) -> String {
    let mut out = String::from("\n### Targets (issues 15 and 14)\n\n");
    let mut line = |what: &str, ok: Option<bool>, detail: String| {
        let mark = match ok {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        out.push_str(&format!("- {mark}: {what} ({detail})\n"));
    };
    let busy = |name: &str| {
        busies
            .iter()
            .find(|f| f.target == name)
            .and_then(|f| match &f.busy {
                Outcome::Ok(b) => Some(b),
                Outcome::Err(_) => None,
            })
    };
    let runs_med =
        |name: &str, f: &dyn Fn(&TargetRuns) -> Cell| data(name).runs.and_then(|r| f(r).num());
    let (cg, bare) = (busy(CG_WS), busy(BARE));
    // Memory under load.
    match (cg, bare) {
        (Some(c), Some(b)) => {
            let (cp, bp) = (c.per_session(c.peak_rss_kib), b.per_session(b.peak_rss_kib));
            let (cs, bs) = (
                c.per_session(c.steady_rss_kib),
                b.per_session(b.steady_rss_kib),
            );
            line(
                "RSS per busy session ≤ the bare relay's, at peak and steady",
                Some(cp <= bp && cs <= bs),
                format!("peak {cp:.1} vs {bp:.1} KiB, steady {cs:.1} vs {bs:.1} KiB"),
            );
            let cpu = (c.cpu_per_gib(), b.cpu_per_gib());
            line(
                "CPU s/GiB at the busy host ≤ the bare relay's",
                Some(cpu.0 <= cpu.1),
                format!("{:.2} vs {:.2}", cpu.0, cpu.1),
            );
            match (&c.rtt, &b.rtt) {
                (Some(x), Some(y)) => line(
                    "p99 input round trip under load ≤ 1.2× the bare relay's",
                    Some(x.p99_us <= 1.2 * y.p99_us),
                    format!(
                        "{:.0} vs {:.0} µs: {:.2}×",
                        x.p99_us,
                        y.p99_us,
                        x.p99_us / y.p99_us
                    ),
                ),
                _ => line("p99 input round trip under load", None, "no figure".into()),
            }
        }
        _ => line(
            "busy host against the bare relay",
            None,
            "no busy-host figures".into(),
        ),
    }
    // Idle after a burst.
    let idle = data(CG_WS);
    let bursts: Vec<String> = idle
        .idle
        .iter()
        .filter(|i| i.kind == IdleKind::Burst)
        .flat_map(|i| {
            i.points.iter().map(move |p| {
                let per = p.rss_kib.saturating_sub(i.base_rss_kib) as f64 / p.n as f64;
                (p.n, per)
            })
        })
        .map(|(n, per)| format!("{n}: {per:.1}"))
        .collect();
    let worst = idle
        .idle
        .iter()
        .filter(|i| i.kind == IdleKind::Burst)
        .flat_map(|i| {
            i.points
                .iter()
                .map(move |p| p.rss_kib.saturating_sub(i.base_rss_kib) as f64 / p.n as f64)
        })
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    line(
        "a session quiet for a few seconds after 1 MiB each way costs ≤ 16 KiB (RSS)",
        worst.map(|w| w <= 16.0),
        if bursts.is_empty() {
            "no idle figures".into()
        } else {
            format!("KiB/session at {}", bursts.join(", "))
        },
    );
    if let Some(c) = cg {
        let n = c.sessions as f64;
        let allowed = c.base_rss_kib as f64 + 6.0 * n;
        let slack = (0.1 * allowed).max(1024.0);
        line(
            "30 s after the busy load stops, RSS within 10% (or 1 MiB) of the idle baseline + 6 KiB per open session",
            Some((c.after_rss_kib as f64) <= allowed + slack),
            format!(
                "{:.1} MiB against {:.1} + {:.1} MiB allowed",
                c.after_rss_kib as f64 / 1024.0,
                allowed / 1024.0,
                slack / 1024.0
            ),
        );
    }
    let down1 = |n: &str| runs_med(n, &|r| median(&r.down1, |t| Some(t.mib_s())));
    match (down1(CG_WS), down1(BARE)) {
        (Some(c), Some(b)) => line(
            "single-stream down ≥ 1.1× the bare relay",
            Some(c >= 1.1 * b),
            format!("{c:.0} vs {b:.0} MiB/s: {:.2}×", c / b),
        ),
        _ => line(
            "single-stream down against the bare relay",
            None,
            "no figures".into(),
        ),
    }
    // Issue 14: what view-only filtering and recording cost, against consolegate ws.
    let up_small = |n: &str| runs_med(n, &|r| median(&r.up_small, |t| Some(t.mib_s())));
    let up_large = |n: &str| runs_med(n, &|r| median(&r.up_large, |t| Some(t.mib_s())));
    match (down1(CG_REC), down1(CG_WS)) {
        (Some(r), Some(w)) => line(
            "issue 14: recording costs ≤ 30% of the unrecorded down throughput (1 stream)",
            Some(r >= 0.7 * w),
            format!("{r:.0} vs {w:.0} MiB/s: {:.2}×", r / w),
        ),
        _ => line("issue 14: recorded down throughput", None, "not run".into()),
    }
    for (what, f) in [
        (
            "32-byte messages",
            &up_small as &dyn Fn(&str) -> Option<f64>,
        ),
        ("64 KiB messages", &up_large),
    ] {
        match (f(CG_VIEW), f(CG_WS)) {
            (Some(v), Some(w)) => line(
                &format!("issue 14: view-only up ≥ 0.9× the unfiltered up ({what})"),
                Some(v >= 0.9 * w),
                format!("{v:.1} vs {w:.1} MiB/s: {:.2}×", v / w),
            ),
            _ => line(
                &format!("issue 14: view-only up ({what})"),
                None,
                "not run".into(),
            ),
        }
    }
    // TLS against the TLS relays.
    let pick = |f: &dyn Fn(&str) -> Option<f64>, higher: bool| -> Option<(f64, f64)> {
        let c = f(CG_WSS)?;
        let best = match (f(NGINX), f(HAPROXY)) {
            (Some(a), Some(b)) if higher => a.max(b),
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some((c, best))
    };
    type Figure<'f> = Box<dyn Fn(&str) -> Option<f64> + 'f>;
    let tls_rows: [(&str, Figure, bool); 5] = [
        (
            "wss down (1 stream) ≥ 1.0× the better TLS relay",
            Box::new(|n| down1(n)),
            true,
        ),
        (
            "wss up (64 KiB messages) ≥ 1.0× the better TLS relay",
            Box::new(|n| runs_med(n, &|r| median(&r.up_large, |t| Some(t.mib_s())))),
            true,
        ),
        (
            "wss CPU s/GiB down ≤ the TLS relays'",
            Box::new(|n| runs_med(n, &|r| median(&r.down1, |t| t.cpu_per_gib()))),
            false,
        ),
        (
            "wss CPU s/GiB up ≤ the TLS relays'",
            Box::new(|n| runs_med(n, &|r| median(&r.up_large, |t| t.cpu_per_gib()))),
            false,
        ),
        (
            "wss new sessions/s ≥ the TLS relays'",
            Box::new(|n| runs_med(n, &|r| median(&r.connect, |c| Some(c.rate)))),
            true,
        ),
    ];
    for (what, f, higher) in &tls_rows {
        match pick(f.as_ref(), *higher) {
            Some((c, b)) => line(
                what,
                Some(if *higher { c >= b } else { c <= b }),
                format!("{} vs {}: {:.2}×", fmt_num(c), fmt_num(b), c / b),
            ),
            None => line(what, None, "no TLS relay figures".into()),
        }
    }
    // First frame.
    match ff {
        Some(ff) => {
            let get = |n: &str| {
                ff.paths
                    .iter()
                    .find(|p| p.name == n)
                    .and_then(|p| p.first_frame_ms)
            };
            match get("qemu-websocket") {
                Some(floor) => {
                    for n in ["consolegate-ws", "consolegate-wss"] {
                        if let Some(v) = get(n) {
                            line(
                                &format!("{n} first frame within 10% of noVNC straight at QEMU"),
                                Some(v <= 1.1 * floor),
                                format!("{v:.1} vs {floor:.1} ms: {:.2}×", v / floor),
                            );
                        }
                    }
                }
                None => line("first frame", None, "no floor figure".into()),
            }
        }
        None => line("first frame in a real browser", None, "step not run".into()),
    }
    out
}

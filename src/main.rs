//! The `consolegate` command: engine-side tools (keygen, sign, verify), the proxy
//! (serve), operator tools talking to a running proxy's admin listener (sessions,
//! kill) and the self-contained demo.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use consolegate::config::{Config, LogFormat, ServeArgs};
use consolegate::demo::engine::DemoEngine;
use consolegate::front::Proxy;
use consolegate::keys;
use consolegate::ops::admin::{self, Admin};
use consolegate::ops::client;
use consolegate::refusal::Refuse;
use consolegate::reload::{Outcome, Part};
use consolegate::ticket::Signer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "consolegate",
    version,
    about = "Stateless ticket-checking WebSocket proxy for VM consoles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an Ed25519 key pair: NAME.key (PKCS#8 PEM, 0600) and NAME.pub (SPKI PEM).
    Keygen(KeygenArgs),
    /// Sign a console ticket for host:port and print it (or the console URL, or JSON).
    Sign(SignArgs),
    /// Check a ticket against trusted keys; print its claims as JSON, or why it is refused.
    Verify(VerifyArgs),
    /// Run the proxy.
    Serve(Box<ServeArgs>),
    /// Throwaway keys, a demo console server and the proxy on 127.0.0.1:6100, in one process.
    Demo(DemoArgs),
    /// List a running proxy's live sessions (through its admin listener).
    Sessions(SessionsArgs),
    /// End live sessions of a running proxy: the browser gets close 1008 and the reason.
    Kill(KillArgs),
    /// Check session recordings and list them (docs/recording-format.md).
    #[command(subcommand)]
    Recording(RecordingCommand),
}

#[derive(Subcommand)]
enum RecordingCommand {
    /// Check recordings against their SHA-256 trailer and print their metadata and
    /// digest (compare it with the session's end log line). Exit status 0 only when
    /// every file is intact.
    Verify {
        /// Recording files (.vncrec, .cast).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the recordings in a directory, oldest first.
    List {
        /// The recording directory [recording.dir].
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Read every file whole and show its duration and integrity (slower).
        #[arg(long)]
        verify: bool,
    },
}

/// Where the admin listener is and how to authenticate to it.
#[derive(clap::Args)]
struct AdminArgs {
    /// The proxy's admin listener [admin.listen].
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:6101")]
    admin: String,
    /// File holding the admin bearer token [admin.token_file].
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/consolegate/admin.token"
    )]
    token_file: PathBuf,
}

#[derive(clap::Args)]
struct SessionsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Print the JSON array the admin API returns instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "jti", "sub"])))]
struct KillArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The session with this id (from `consolegate sessions`).
    #[arg(long)]
    id: Option<u64>,
    /// Every session opened with this ticket id.
    #[arg(long)]
    jti: Option<String>,
    /// Every session of this user.
    #[arg(long)]
    sub: Option<String>,
    /// Close reason shown to the user (default: "session ended by an operator").
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Directory to write the key pair into.
    #[arg(long)]
    out_dir: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "consolegate")]
    name: String,
}

#[derive(clap::Args)]
struct SignArgs {
    /// Private key (PKCS#8 PEM); must not be readable by group or others.
    #[arg(long)]
    key: PathBuf,
    /// Console server host as the proxy reaches it.
    #[arg(long)]
    host: String,
    /// Console server TCP port.
    #[arg(long)]
    port: u16,
    /// Lifetime of the ticket (e.g. 120s, 5m).
    #[arg(long, default_value = "120s")]
    ttl: String,
    /// Audience (proxy name); repeat for several.
    #[arg(long)]
    aud: Vec<String>,
    /// User the ticket is issued to (audit logs).
    #[arg(long)]
    sub: Option<String>,
    /// Ticket id (default: random).
    #[arg(long, conflicts_with = "no_jti")]
    jti: Option<String>,
    /// Issue the ticket without a jti.
    #[arg(long)]
    no_jti: bool,
    /// Console kind: vnc, spice or serial.
    #[arg(long)]
    kind: Option<String>,
    /// How the proxy reaches the console server: none, tls or vencrypt.
    #[arg(long)]
    tls: Option<String>,
    /// View only: the proxy forwards no keys, pointer or clipboard to the console.
    #[arg(long)]
    view: bool,
    /// Record the session: a proxy that cannot record it refuses the session.
    #[arg(long)]
    rec: bool,
    /// Print the full console URL on this base (e.g. wss://proxy.example:6100): the
    /// ticket in its path, for clients that can only set a URL. A URL reaches access
    /// logs; the console page sends the ticket as a subprotocol instead.
    #[arg(long)]
    url: Option<String>,
    /// Print {ticket, url, kid, exp, jti} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Trusted public key files or directories of *.pub; repeat for several.
    #[arg(long, required = true)]
    trust: Vec<PathBuf>,
    /// Clock-skew leeway in seconds.
    #[arg(long, default_value_t = 30)]
    leeway: i64,
    /// Maximum ticket lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    max_lifetime: i64,
    /// Required audience; repeat for several.
    #[arg(long)]
    aud: Vec<String>,
    /// The ticket (or - to read it from standard input).
    ticket: String,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Address of the proxy.
    #[arg(long, default_value = "127.0.0.1:6100")]
    listen: String,
    /// Directory of the console page.
    #[arg(long)]
    web_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Sign(a) => sign(a),
        Command::Verify(a) => verify(a),
        Command::Serve(a) => serve(*a),
        Command::Demo(a) => demo(a),
        Command::Sessions(a) => sessions(a),
        Command::Kill(a) => kill(a),
        Command::Recording(c) => recording(c),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("consolegate: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let kid = consolegate::keys::generate(&args.out_dir, &args.name)?;
    let key = args.out_dir.join(format!("{}.key", args.name));
    let public = args.out_dir.join(format!("{}.pub", args.name));
    eprintln!(
        "wrote {} (private, mode 0600) and {} (give this one to the proxies)",
        key.display(),
        public.display()
    );
    println!("{kid}");
    Ok(ExitCode::SUCCESS)
}

fn sign(args: SignArgs) -> Result<ExitCode> {
    use anyhow::Context as _;
    use consolegate::ticket::{Claims, Kind, Signer, TargetTls};
    let ttl = parse_duration(&args.ttl).with_context(|| format!("--ttl {:?}", args.ttl))?;
    let kind = match args.kind.as_deref() {
        None => Kind::default(),
        Some(k) => k
            .parse()
            .map_err(|_| anyhow::anyhow!("--kind {k:?}: expected vnc, spice or serial"))?,
    };
    let tls = match args.tls.as_deref() {
        None => TargetTls::default(),
        Some(t) => t
            .parse()
            .map_err(|_| anyhow::anyhow!("--tls {t:?}: expected none, tls or vencrypt"))?,
    };
    let key = consolegate::keys::load_signing_key(&args.key)?;
    let now = consolegate::unix_now();
    let exp = now
        .checked_add(ttl)
        .context("--ttl is too long to express as a time")?;
    let mut claims = Claims::new(args.host, args.port, exp)
        .with_iat(now)
        .with_kind(kind)
        .with_tls(tls)
        .with_view(args.view)
        .with_rec(args.rec);
    claims.aud = args.aud;
    claims.sub = args.sub;
    claims.jti = match (args.no_jti, args.jti) {
        (true, _) => None,
        (false, Some(jti)) => Some(jti),
        (false, None) => Some(consolegate::keys::random_jti()),
    };
    claims.validate().context("refusing to sign")?;
    let default_max = consolegate::ticket::VerifyOptions::default().max_lifetime_secs;
    if ttl > default_max {
        eprintln!(
            "warning: a {ttl} s ticket is refused by proxies with the default maximum \
             lifetime of {default_max} s"
        );
    }

    let signer = Signer::new(key);
    let ticket = signer.sign(&claims);
    let url = args
        .url
        .map(|base| format!("{}/{ticket}", base.trim_end_matches('/')));
    if args.json {
        let out = serde_json::json!({
            "ticket": ticket,
            "url": url,
            "kid": signer.kid(),
            "exp": exp,
            "jti": claims.jti,
        });
        println!("{out}");
    } else {
        println!("{}", url.as_deref().unwrap_or(&ticket));
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    use anyhow::Context as _;
    use std::io::Read as _;
    if args.leeway < 0 {
        anyhow::bail!("--leeway must be 0 or more seconds");
    }
    if args.max_lifetime <= 0 {
        anyhow::bail!("--max-lifetime must be more than 0 seconds");
    }
    let keys = consolegate::keys::load_trusted(&args.trust)?;
    let ticket = if args.ticket == "-" {
        // Bounded: a ticket is at most 4 KiB, and anything far larger is a mistake.
        let mut text = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("cannot read the ticket from standard input")?;
        text.trim().to_owned()
    } else {
        args.ticket
    };
    let opts = consolegate::ticket::VerifyOptions {
        leeway_secs: args.leeway,
        max_lifetime_secs: args.max_lifetime,
        audiences: args.aud,
    };
    match consolegate::ticket::verify(&ticket, &keys, &opts, consolegate::unix_now()) {
        Ok(v) => {
            println!(
                "{}",
                serde_json::json!({ "kid": v.kid, "claims": v.claims })
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("refused: {err} ({})", err.refusal_code());
            Ok(ExitCode::from(1))
        }
    }
}

/// A ticket lifetime (`120`, `120s`, `5m`, `1h`, as every duration option reads):
/// more than zero and at most a day; a longer bearer ticket is never what anyone
/// wants, and no proxy accepts it.
fn parse_duration(text: &str) -> Result<i64> {
    let secs = consolegate::config::parse_duration(text)
        .flatten()
        .filter(|d| d.subsec_nanos() == 0)
        .map(|d| d.as_secs())
        .ok_or_else(|| anyhow::anyhow!("expected a number like 120s, 5m or 1h"))?;
    if !(1..=86_400).contains(&secs) {
        anyhow::bail!("a ticket lifetime must be between 1 s and 24 h");
    }
    Ok(secs as i64)
}

fn init_logging(format: LogFormat, level: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("log level {level:?} is not a level or filter"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into journald or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Browsers, tickets and file names put strings in log lines: escaped, so that
        // none can start a line of its own (JSON escapes by itself).
        LogFormat::Text => builder
            .fmt_fields(consolegate::util::text::TextFields)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let config = Config::load(&args).context("invalid configuration")?;
    init_logging(config.log.format, &config.log.level)?;
    let listen = config.listen;
    let plain = config.tls.is_none();
    let admin_listen = config.admin.listen;
    let proxy = Arc::new(Proxy::new(config).context("cannot load keys, certificate or deny list")?);
    let admin = Admin::new(proxy.clone()).context("admin listener")?;
    if proxy.config().admin.token_file.is_some() {
        proxy.metrics().reloaded(Part::AdminToken.as_str(), true);
    }
    if args.check_config {
        println!(
            "configuration OK: listen {listen} ({}), {} trusted key(s): {}; {}; admin {}",
            if plain { "plain ws://" } else { "TLS" },
            proxy.key_ids().len(),
            proxy.key_ids().join(", "),
            proxy.backend().summary(),
            admin_listen.map_or("off".to_string(), |a| a.to_string()),
        );
        return Ok(ExitCode::SUCCESS);
    }
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        if plain {
            warn!("TLS is off: browsers connect with plain ws://; use this only behind a TLS-terminating balancer or for tests");
        }
        // Before the "listening" line: a SIGHUP that arrives once a supervisor has
        // seen it must reload, not kill the process (SIGHUP's default action).
        spawn_reload_on_sighup(proxy.clone(), admin.clone());
        if let Some(addr) = admin_listen {
            let admin_listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin; \"off\" disables it)"))?;
            if !addr.ip().is_loopback() {
                warn!(admin = %addr, "the admin listener is plain HTTP and not on loopback: its token and session data cross the network unencrypted");
            }
            info!(admin = %addr, session_control = proxy.config().admin.token_file.is_some(), "admin listening");
            tokio::spawn(admin.serve(admin_listener));
        }
        let bound = listener.local_addr().unwrap_or(listen);
        let limits = &proxy.config().limits;
        info!(
            listen = %bound,
            keys = %proxy.key_ids().join(","),
            open_files = consolegate::config::open_file_limit(),
            max_pending = limits.max_pending,
            max_pending_per_client = limits.max_pending_per_client,
            "consolegate listening"
        );
        proxy.serve(listener, termination()).await;
        Ok(ExitCode::SUCCESS)
    })
}

fn spawn_reload_on_sighup(proxy: Arc<Proxy>, admin: Arc<Admin>) {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered here, not in the task, so the handler is in place on return.
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot handle SIGHUP; reload by restarting");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // Each part is logged on its own line as it loads or fails.
            let _ = proxy.reload();
            if let Some(loaded) = admin.reload() {
                let outcome = Outcome::of(Part::AdminToken, loaded);
                proxy
                    .metrics()
                    .reloaded(Part::AdminToken.as_str(), outcome.ok());
                outcome.log();
            }
        }
    });
}

/// One admin API call for the `sessions` and `kill` subcommands; a non-200 answer is
/// an error carrying the proxy's one-line reason.
fn admin_call(
    args: &AdminArgs,
    method: hyper::Method,
    path: &str,
    body: Option<String>,
) -> Result<String> {
    let token = admin::read_token(&args.token_file)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = rt.block_on(client::request(
        &args.admin,
        method,
        path,
        Some(&token),
        body,
    ))?;
    if answer.status != hyper::StatusCode::OK {
        anyhow::bail!(
            "the proxy answered {}: {}",
            answer.status,
            answer.body.trim()
        );
    }
    Ok(answer.body)
}

fn recording(command: RecordingCommand) -> Result<ExitCode> {
    use consolegate::recording::{report, verify};
    match command {
        RecordingCommand::Verify { files } => {
            let mut all_ok = true;
            for (i, path) in files.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                match verify::verify_file(path) {
                    Ok(r) => {
                        print!("{}", report::verify_text(path, &r));
                        all_ok &= r.integrity.is_intact();
                    }
                    Err(e) => {
                        println!("{:<15} {}", "file", path.display());
                        println!("{:<15} FAILED: {e}", "integrity");
                        all_ok = false;
                    }
                }
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RecordingCommand::List { dir, verify } => {
            let entries = report::list_dir(&dir).with_context(|| {
                format!("cannot read the recording directory {}", dir.display())
            })?;
            let (text, all_ok) = report::list_text(&entries, verify);
            print!("{text}");
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn sessions(args: SessionsArgs) -> Result<ExitCode> {
    let body = admin_call(&args.admin, hyper::Method::GET, "/sessions", None)?;
    if args.json {
        println!("{}", body.trim());
        return Ok(ExitCode::SUCCESS);
    }
    let list: Vec<admin::SessionView> =
        serde_json::from_str(&body).context("the proxy's session list is not the expected JSON")?;
    print!("{}", session_table(&list));
    Ok(ExitCode::SUCCESS)
}

/// The session list as an aligned table, one line a session, newest last. Every
/// cell is escaped: `sub` and `jti` come from tickets, and a control character in
/// one must not drive the operator's terminal or break the table.
fn session_table(list: &[admin::SessionView]) -> String {
    let mut rows = vec![[
        "ID", "CLIENT", "TARGET", "SUB", "JTI", "STARTED", "UP", "DOWN",
    ]
    .map(String::from)];
    for s in list {
        rows.push([
            s.id.to_string(),
            s.client.to_string(),
            s.target.to_string(),
            s.sub.clone().unwrap_or_else(|| "-".into()),
            s.jti.clone().unwrap_or_else(|| "-".into()),
            s.started.clone(),
            human_bytes(s.bytes_up),
            human_bytes(s.bytes_down),
        ]);
    }
    for row in rows.iter_mut() {
        for cell in row.iter_mut() {
            if let std::borrow::Cow::Owned(escaped) = consolegate::util::text::escape(cell) {
                *cell = escaped;
            }
        }
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if list.is_empty() {
        out.push_str("(no live sessions)\n");
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn kill(args: KillArgs) -> Result<ExitCode> {
    let req = admin::KillRequest {
        id: args.id,
        jti: args.jti,
        sub: args.sub,
        reason: args.reason,
    };
    let body = serde_json::to_string(&req)?;
    let answer = admin_call(
        &args.admin,
        hyper::Method::POST,
        "/sessions/kill",
        Some(body),
    )?;
    let killed = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["killed"].as_u64())
        .context("the proxy's kill answer is not the expected JSON")?;
    println!("ended {killed} session(s)");
    // A kill that matched nothing is worth noticing in a script (a typo in the id).
    Ok(if killed == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where the console page is: the flag, ./web, next to the binary in a source tree,
/// or where the Debian package puts it.
fn find_web_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    let mut candidates = vec![PathBuf::from("web")];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe
            .parent()
            .and_then(|d| d.parent())
            .and_then(|d| d.parent())
        {
            candidates.push(root.join("web"));
        }
    }
    candidates.push(PathBuf::from("/usr/share/consolegate/web"));
    candidates
        .iter()
        .find(|d| d.join("console.html").is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("web"))
}

fn random_password() -> String {
    // VNC passwords are at most 8 characters; avoid look-alike characters.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn demo(args: DemoArgs) -> Result<ExitCode> {
    init_logging(LogFormat::Text, "info")?;
    let listen: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("{:?} is not an address", args.listen))?;
    let key_dir = std::env::temp_dir().join(format!("consolegate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir)
        .with_context(|| format!("cannot create {}", key_dir.display()))?;
    let _cleanup = RemoveOnDrop(key_dir.clone());
    keys::generate(&key_dir, "demo").context("cannot make the demo key")?;
    let signer = Signer::new(
        keys::load_signing_key(&key_dir.join("demo.key")).context("cannot read the demo key")?,
    );
    let password = random_password();
    let web_dir = find_web_dir(args.web_dir);

    runtime()?.block_on(async move {
        let rfb = TcpListener::bind("127.0.0.1:0").await.context("cannot start the demo console server")?;
        let rfb_port = rfb.local_addr()?.port();
        tokio::spawn(consolegate::demo::run_rfb_server(rfb, Some(password.clone())));

        let host_ip = if listen.ip().is_unspecified() { "127.0.0.1".to_string() } else { listen.ip().to_string() };
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port(); // the bound one: `--listen 127.0.0.1:0` works
        let base = format!("http://{}", SocketAddr::new(host_ip.parse()?, port));
        let serve_args = ServeArgs {
            listen: Some(listen.to_string()),
            allow_plain: true,
            trust: vec![key_dir.clone()],
            allow_target: vec!["127.0.0.1/32".into()],
            allow_port: vec![rfb_port.to_string()],
            engine_origin: vec![base.clone(), format!("http://localhost:{port}")],
            web_dir: Some(web_dir.clone()),
            ..ServeArgs::default()
        };
        let config = Config::load(&serve_args).context("demo configuration")?;
        let engine = DemoEngine::new(signer, rfb_port, password.clone(), web_dir.clone());
        let url_ticket = engine.ticket(600);
        let proxy = Proxy::new(config)?.with_extension(engine);
        let has_page = web_dir.join("console.html").is_file();
        println!();
        println!("consolegate demo is running (Ctrl-C to stop)");
        if has_page {
            println!("  open in a browser:  {base}/engine-demo.html   and click \"Open console\"");
        } else {
            println!("  (console page not found in {}: run from the source tree)", web_dir.display());
        }
        println!("  WebSocket URL:      ws://{}:{port}/{url_ticket}", host_ip);
        println!("  VNC password:       {password}");
        println!("  (the URL's ticket is valid for 10 minutes; the demo console server is 127.0.0.1:{rfb_port})");
        println!();
        Arc::new(proxy).serve(listener, termination()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Removes the demo's throwaway key directory when the demo ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, parse_duration, session_table};
    use consolegate::ops::admin::SessionView;

    #[test]
    fn the_session_table_aligns_columns_and_says_when_it_is_empty() {
        assert_eq!(
            session_table(&[]),
            "ID  CLIENT  TARGET  SUB  JTI  STARTED  UP  DOWN\n(no live sessions)\n"
        );
        let s = SessionView {
            id: 7,
            client: "127.0.0.1:40000".parse().unwrap(),
            target: "127.0.0.1:5901".parse().unwrap(),
            sub: Some("alice".into()),
            jti: None,
            kid: "k".into(),
            started: "2025-01-02T03:04:05Z".into(),
            started_unix: 1_735_787_045,
            bytes_up: 10,
            bytes_down: 3 << 20,
        };
        let t = session_table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("SUB"), lines[1].find("alice"));
        assert!(lines[1].ends_with("10 B  3.0 MiB"), "{t}");
        assert!(lines[1].contains(" - "), "{t}");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn the_session_table_escapes_control_characters_from_tickets() {
        let s = SessionView {
            id: 1,
            client: "127.0.0.1:40000".parse().unwrap(),
            target: "127.0.0.1:5901".parse().unwrap(),
            sub: Some("eve\n2   127.0.0.1:1  fake\u{1b}[2J\u{9b}31m".into()),
            jti: Some("j\r\u{7}\u{202e}".into()),
            kid: "k".into(),
            started: "2025-01-02T03:04:05Z\u{1b}]0;x\u{7}".into(),
            started_unix: 0,
            bytes_up: 0,
            bytes_down: 0,
        };
        let t = session_table(&[s]);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(
            t.contains("eve\\n2   127.0.0.1:1  fake\\u{1b}[2J\\u{9b}31m"),
            "{t}"
        );
        assert!(t.contains("j\\r\\u{7}\\u{202e}"), "{t}");
    }

    #[test]
    fn ttl_accepts_seconds_minutes_and_hours() {
        for (text, secs) in [("120", 120), ("120s", 120), ("5m", 300), ("1h", 3600)] {
            assert_eq!(parse_duration(text).unwrap(), secs, "{text}");
        }
    }

    #[test]
    fn ttl_refuses_zero_junk_negative_and_overflow() {
        for text in [
            "",
            "0",
            "0s",
            "s",
            "-5",
            "5x",
            "1.5m",
            "25h",
            "99999999999999999999",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}

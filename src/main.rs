//! The `consolegate` command: engine-side tools (keygen, sign, verify), the proxy
//! (serve) and the self-contained demo.
#![forbid(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Serve(Box<consolegate::config::ServeArgs>),
    /// Throwaway keys, a demo console server and the proxy on 127.0.0.1:6100, in one process.
    Demo(DemoArgs),
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
    /// Print the full console URL on this base (e.g. wss://proxy.example:6100).
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
    let now = unix_now()?;
    let exp = now
        .checked_add(ttl)
        .context("--ttl is too long to express as a time")?;
    let mut claims = Claims::new(args.host, args.port, exp)
        .with_iat(now)
        .with_kind(kind)
        .with_tls(tls);
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
    match consolegate::ticket::verify(&ticket, &keys, &opts, unix_now()?) {
        Ok(v) => {
            println!(
                "{}",
                serde_json::json!({ "kid": v.kid, "claims": v.claims })
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("refused: {err} ({})", err.code());
            Ok(ExitCode::from(1))
        }
    }
}

/// Seconds since 1970 by the system clock.
fn unix_now() -> Result<i64> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("the system clock is before 1970"))?;
    Ok(i64::try_from(since.as_secs())?)
}

/// A ticket lifetime: `120`, `120s`, `5m` or `1h`; more than zero, at most a day
/// (a longer bearer ticket is never what anyone wants, and no proxy accepts it).
fn parse_duration(text: &str) -> Result<i64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => anyhow::bail!("expected a number of seconds, or a number followed by s, m or h"),
    };
    let secs = digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| anyhow::anyhow!("expected a number like 120s, 5m or 1h"))?;
    if !(1..=86_400).contains(&secs) {
        anyhow::bail!("a ticket lifetime must be between 1 s and 24 h");
    }
    Ok(secs)
}

fn serve(args: consolegate::config::ServeArgs) -> Result<ExitCode> {
    let _ = args;
    todo!()
}

fn demo(args: DemoArgs) -> Result<ExitCode> {
    let _ = args;
    todo!()
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

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
            "5 m",
            "5d",
            "1.5m",
            "25h",
            "99999999999999999999",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}

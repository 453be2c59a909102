//! `consolegate sign`: a console ticket, as an engine signs it.

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SignArgs {
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

pub fn run(args: SignArgs) -> Result<ExitCode> {
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
            "5x",
            "1.5m",
            "25h",
            "99999999999999999999",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}

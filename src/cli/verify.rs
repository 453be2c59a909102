//! `consolegate verify`: would this proxy accept this ticket, and if not, why not?
//!
//! The answer comes from the proxy's own admission code: the configuration is
//! loaded as `serve` loads it (the file, then the flags), the admission gate is
//! built for checking ([`Gate::for_checking`]: nothing is created on disk) and
//! [`Gate::check`] runs what a session's admission runs short of its slots and the
//! console connection: signature and the ticket's rules, legacy sources, the deny
//! list, console TLS, view and recording, single use (looked at, never taken), the
//! port for the ticket's kind, every address the host resolves to, and the proxy's
//! own listeners. So `verify` and `serve` cannot disagree. What depends on the
//! request (the browser's Origin, client limits) is not checked.
//!
//! The ticket may be given as the signer prints it: a bare ticket, or a URL holding
//! it where the proxy reads it (the last path segment, `?token=`, an oVirt path) or
//! in its fragment.

use anyhow::{Context, Result};
use consolegate::admission::Gate;
use consolegate::config::{Config, ServeArgs};
use consolegate::legacy::Legacy;
use consolegate::refusal::Refusal;
use consolegate::ticket::Verified;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of the same meaning as `serve`'s, which override the file's options.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The proxy's config file: check the ticket against everything it sets (keys,
    /// policy, audiences, deny list, legacy sources, recording).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Trusted public key file or directory of *.pub; repeat [tickets.trust].
    #[arg(long, value_name = "PATH")]
    trust: Vec<PathBuf>,
    /// Clock-skew leeway, e.g. 30s [tickets.leeway; default 30s].
    #[arg(long, value_name = "DUR")]
    leeway: Option<String>,
    /// Longest ticket lifetime accepted [tickets.max_lifetime; default 600s].
    #[arg(long, value_name = "DUR")]
    max_lifetime: Option<String>,
    /// The proxy's audience name; repeat [tickets.audiences].
    #[arg(long, value_name = "NAME")]
    aud: Vec<String>,
    /// Allowed target address range (CIDR); repeat [targets.allow; default 127.0.0.0/8, ::1/128].
    #[arg(long, value_name = "CIDR")]
    allow_target: Vec<String>,
    /// Allowed port range for VNC and SPICE tickets; repeat [targets.ports; default 5900-6923].
    #[arg(long, value_name = "RANGE")]
    allow_port: Vec<String>,
    /// Port range for `serial` tickets; repeat [targets.serial_ports; default: none].
    #[arg(long, value_name = "RANGE")]
    allow_serial_port: Vec<String>,
    /// Revoked tickets and users [tickets.deny_list].
    #[arg(long, value_name = "FILE")]
    deny_list: Option<PathBuf>,
    /// Check only the ticket itself against the trusted keys (signature, expiry,
    /// lifetime, audience, its claims), not what this proxy's policy allows: whether
    /// an engine signs well-formed tickets.
    #[arg(long)]
    ticket_only: bool,
    /// The ticket, or a URL holding it (as `consolegate sign --url` prints it), or -
    /// to read either from standard input.
    #[arg(value_name = "TICKET-OR-URL")]
    ticket: String,
}

impl VerifyArgs {
    /// The `serve` flags these stand for.
    fn serve_args(&self) -> ServeArgs {
        ServeArgs {
            config: self.config.clone(),
            // TLS toward browsers plays no part in a ticket's check; without a file
            // there is no certificate, and that is fine here.
            allow_plain: true,
            trust: self.trust.clone(),
            leeway: self.leeway.clone(),
            max_lifetime: self.max_lifetime.clone(),
            aud: self.aud.clone(),
            allow_target: self.allow_target.clone(),
            allow_port: self.allow_port.clone(),
            allow_serial_port: self.allow_serial_port.clone(),
            deny_list: self.deny_list.clone(),
            ..ServeArgs::default()
        }
    }
}

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let config = Config::load(&args.serve_args()).context("invalid configuration")?;
    let gate = Gate::for_checking(&config)
        .context("cannot load keys, deny list, legacy sources or console TLS files")?;
    let given = if args.ticket == "-" {
        read_stdin()?
    } else {
        args.ticket
    };
    let ticket = ticket_of(&given, gate.legacy())?;
    if args.ticket_only {
        let keys = consolegate::keys::load_trusted(&config.tickets.trust)?;
        let opts = &config.tickets.verify;
        return Ok(
            match consolegate::ticket::verify(&ticket, &keys, opts, consolegate::unix_now()) {
                Ok(v) => accepted(&v, &[]),
                Err(e) => refused(&Refusal::of(&e)),
            },
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(match rt.block_on(gate.check(&ticket)) {
        Ok(checked) => accepted(&checked.ticket, &checked.addrs),
        Err(rejected) => refused(&rejected.refusal),
    })
}

/// The ticket's key id and claims as JSON on standard output, with the addresses its
/// console server resolved to (none when only the ticket was checked).
fn accepted(ticket: &Verified, addrs: &[SocketAddr]) -> ExitCode {
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    println!(
        "{}",
        serde_json::json!({
            "kid": ticket.kid,
            "claims": ticket.claims,
            "addresses": addrs,
        })
    );
    ExitCode::SUCCESS
}

/// The refusal's reason and code, as the proxy logs it: exit status 1.
fn refused(r: &Refusal) -> ExitCode {
    eprintln!("refused: {} ({})", r.reason, r.code.as_str());
    ExitCode::from(1)
}

/// A ticket or URL from standard input; bounded: a ticket is at most 4 KiB, and
/// anything far larger is a mistake.
fn read_stdin() -> Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_string(&mut text)
        .context("cannot read the ticket from standard input")?;
    Ok(text.trim().to_owned())
}

/// The ticket in `given`: a URL's fragment (`#<ticket>`, `#ticket=<ticket>`,
/// `#token=<ticket>`: a page's URL, whose fragment never reaches a server), else the
/// ticket where the proxy reads it in a URL's path or query, else `given` itself.
fn ticket_of(given: &str, legacy: &Legacy) -> Result<String> {
    let given = given.trim();
    let Some(rest) = given
        .split_once("://")
        .map(|(_, rest)| rest)
        .or_else(|| given.starts_with('/').then_some(given))
    else {
        return Ok(given.to_string());
    };
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let in_fragment = ["ticket=", "token="]
        .iter()
        .find_map(|p| fragment.strip_prefix(p))
        .unwrap_or(fragment);
    if !in_fragment.is_empty() {
        return Ok(in_fragment.to_string());
    }
    // What follows the authority: the path and query the proxy is asked for.
    let target = match rest.find('/') {
        Some(i) if !given.starts_with('/') => &rest[i..],
        Some(_) => rest,
        None => "/",
    };
    let uri: hyper::Uri = target
        .parse()
        .with_context(|| format!("{target:?} is not a URL path"))?;
    consolegate::front::ticket_in(&uri, None, legacy)
        .map_err(|r| anyhow::anyhow!("{} ({})", r.reason, r.code.as_str()))?
        .context(
            "no ticket in the URL (expected it as the last path segment, ?token=, or the fragment)",
        )
}

#[cfg(test)]
mod tests {
    use super::ticket_of;
    use consolegate::legacy::Legacy;

    #[test]
    fn the_ticket_is_read_from_each_form_the_signer_or_an_engine_prints() {
        let none = Legacy::default();
        let t = |s: &str| ticket_of(s, &none).map_err(|e| e.to_string());
        let ticket = "aaa.bbb.ccc";
        for given in [
            "aaa.bbb.ccc",
            " aaa.bbb.ccc\n",
            "wss://proxy.example:6100/aaa.bbb.ccc",
            "ws://127.0.0.1:6100/aaa.bbb.ccc",
            "wss://proxy.example/some/prefix/aaa.bbb.ccc",
            "wss://proxy.example:6100/websockify?token=aaa.bbb.ccc",
            "wss://proxy.example:6100/websockify?x=1&token=aaa%2Ebbb.ccc",
            "https://proxy.example:6100/console.html#aaa.bbb.ccc",
            "https://proxy.example:6100/console.html#ticket=aaa.bbb.ccc",
            "https://proxy.example:6100/#token=aaa.bbb.ccc",
            "/aaa.bbb.ccc",
            "/websockify?token=aaa.bbb.ccc",
        ] {
            assert_eq!(t(given).as_deref(), Ok(ticket), "{given}");
        }
        assert!(t("wss://proxy.example:6100/console").is_err());
        assert!(t("wss://proxy.example:6100").is_err());
        assert_eq!(
            t("https://p/x.y.z#ticket=aaa.bbb.ccc").as_deref(),
            Ok(ticket)
        );
        let two = t("wss://p/websockify?token=a.b.c&token=d.e.f").unwrap_err();
        assert!(two.contains("ambiguous_ticket"), "{two}");
    }
}

//! `consolegate verify`: why a proxy accepts or refuses a ticket.

use anyhow::Result;
use consolegate::refusal::Refuse;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct VerifyArgs {
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

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
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

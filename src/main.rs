//! The `consolegate` command: engine-side tools (keygen, sign, verify), the proxy
//! (serve) and the self-contained demo.
#![forbid(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "consolegate", version, about = "Stateless ticket-checking WebSocket proxy for VM consoles")]
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
    let _ = args;
    todo!()
}

fn sign(args: SignArgs) -> Result<ExitCode> {
    let _ = args;
    todo!()
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let _ = args;
    todo!()
}

fn serve(args: consolegate::config::ServeArgs) -> Result<ExitCode> {
    let _ = args;
    todo!()
}

fn demo(args: DemoArgs) -> Result<ExitCode> {
    let _ = args;
    todo!()
}

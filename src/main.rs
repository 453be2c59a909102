//! The `consolegate` command: engine-side tools (keygen, sign, verify), the proxy
//! (serve), operator tools talking to a running proxy's admin listener (sessions,
//! kill) and the self-contained demo. Each subcommand lives in its own module under
//! `src/cli/`; this file only parses the command line and prints the error, if any.
#![forbid(unsafe_code)]

mod cli;

use clap::{Parser, Subcommand};
use consolegate::config::ServeArgs;
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
    Keygen(cli::keygen::KeygenArgs),
    /// Sign a console ticket for host:port and print it (or the console URL, or JSON).
    Sign(cli::sign::SignArgs),
    /// Check a ticket against trusted keys; print its claims as JSON, or why it is refused.
    Verify(cli::verify::VerifyArgs),
    /// Run the proxy.
    Serve(Box<ServeArgs>),
    /// Throwaway keys, a demo console server and the proxy on 127.0.0.1:6100, in one process.
    Demo(cli::demo::DemoArgs),
    /// List a running proxy's live sessions (through its admin listener).
    Sessions(cli::ops::SessionsArgs),
    /// End live sessions of a running proxy: the browser gets close 1008 and the reason.
    Kill(cli::ops::KillArgs),
    /// Check session recordings and list them (docs/recording-format.md).
    #[command(subcommand)]
    Recording(cli::recording::RecordingCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(a) => cli::keygen::run(a),
        Command::Sign(a) => cli::sign::run(a),
        Command::Verify(a) => cli::verify::run(a),
        Command::Serve(a) => cli::serve::run(*a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Sessions(a) => cli::ops::sessions(a),
        Command::Kill(a) => cli::ops::kill(a),
        Command::Recording(c) => cli::recording::run(c),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("consolegate: {err:#}");
            ExitCode::from(2)
        }
    }
}

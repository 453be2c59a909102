//! `consolegate keygen`: an engine's Ed25519 key pair.

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory to write the key pair into.
    #[arg(long)]
    out_dir: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "consolegate")]
    name: String,
}

pub fn run(args: KeygenArgs) -> Result<ExitCode> {
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

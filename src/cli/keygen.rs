//! `consolegate keygen`: an engine's Ed25519 key pair, and what to do with it.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory to write the key pair into.
    #[arg(long)]
    out_dir: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "consolegate")]
    name: String,
    /// Print {kid, private_key, public_key} as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

pub fn run(args: KeygenArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let kid = consolegate::keys::generate(&args.out_dir, &args.name)?;
    // Absolute, so the summary's commands work from any directory.
    let dir = std::fs::canonicalize(&args.out_dir).unwrap_or(args.out_dir);
    let key = dir.join(format!("{}.key", args.name));
    let public = dir.join(format!("{}.pub", args.name));
    if args.json {
        let out = serde_json::json!({
            "kid": kid,
            "private_key": key,
            "public_key": public,
        });
        println!("{out}");
    } else {
        print!("{}", summary(&kid, &key, &public));
    }
    Ok(ExitCode::SUCCESS)
}

/// What was made, where, and the next steps, as commands to copy.
fn summary(kid: &str, key: &Path, public: &Path) -> String {
    let (key, public) = (key.display(), public.display());
    format!(
        "key id       {kid}\n\
         private key  {key}\n\
         \x20            mode 0600; stays on the engine: it signs tickets\n\
         public key   {public}\n\
         \x20            goes to every proxy that accepts this engine's tickets\n\
         \n\
         Next:\n\
         \x20 on each proxy:  install -m 0644 {public} /etc/consolegate/keys/\n\
         \x20                 ([tickets] trust names that directory; then systemctl reload consolegate)\n\
         \x20 sign a ticket:  consolegate sign --key {key} --host 127.0.0.1 --port 5901\n\
         \x20 check it:       consolegate verify --trust {public} TICKET\n"
    )
}

#[cfg(test)]
mod tests {
    use super::summary;
    use std::path::Path;

    #[test]
    fn the_summary_names_the_key_id_both_files_and_the_next_commands() {
        let s = summary("KID", Path::new("/k/e.key"), Path::new("/k/e.pub"));
        assert!(s.starts_with("key id       KID\n"), "{s}");
        assert!(s.contains("private key  /k/e.key\n"), "{s}");
        assert!(s.contains("public key   /k/e.pub\n"), "{s}");
        assert!(
            s.contains("install -m 0644 /k/e.pub /etc/consolegate/keys/"),
            "{s}"
        );
        assert!(s.contains("consolegate sign --key /k/e.key"), "{s}");
        assert!(s.contains("consolegate verify --trust /k/e.pub"), "{s}");
    }
}

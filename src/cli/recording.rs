//! `consolegate recording verify|list`: session recordings on disk.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RecordingCommand {
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

pub fn run(command: RecordingCommand) -> Result<ExitCode> {
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

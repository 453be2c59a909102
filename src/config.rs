//! Configuration: the TOML file and the command-line flags merged into one validated
//! [`Config`].

use std::path::PathBuf;

/// `consolegate serve` flags; each overrides the same option of the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

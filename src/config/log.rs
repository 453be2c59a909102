//! `[log]`: the log's format and level, and how many refusal lines a storm may write.

use super::{ConfigError, ServeArgs};
use serde::Deserialize;

const DEFAULT_FORMAT: &str = "text";
const DEFAULT_LEVEL: &str = "info";
const DEFAULT_REFUSALS_PER_SECOND: u32 = 10;

/// `[log]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogFile {
    format: Option<String>,
    level: Option<String>,
    refusals_per_second: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How the proxy logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A level or a `tracing` filter.
    pub level: String,
    /// Refusal lines per second per refusal code, the rest summarised; 0: all.
    pub refusals_per_second: u32,
}

pub(super) fn merge(f: LogFile, a: &ServeArgs) -> Result<LogConfig, ConfigError> {
    let format_text = a
        .log_format
        .clone()
        .or(f.format)
        .unwrap_or_else(|| DEFAULT_FORMAT.into());
    let format = match format_text.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(ConfigError::LogFormat(other.to_string())),
    };
    Ok(LogConfig {
        format,
        level: a
            .log_level
            .clone()
            .or(f.level)
            .unwrap_or_else(|| DEFAULT_LEVEL.into()),
        refusals_per_second: a
            .log_refusals_per_second
            .or(f.refusals_per_second)
            .unwrap_or(DEFAULT_REFUSALS_PER_SECOND),
    })
}

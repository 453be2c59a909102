//! How values are written, shared by every section: durations ("30s", "5m", bare
//! seconds, "off"), and the rule that a flag wins over the file key of the same
//! meaning (a repeated flag replaces the file's whole list).

use super::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A duration as written in the file: seconds, or a string such as "30s".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// Parses "30s", "5m", "2h", "500ms", "1d" or bare seconds; "off" and "0" are `None`.
///
/// Kept by hand rather than taken from `humantime`: that crate reads no bare seconds
/// and no "off", and accepts far more ("1h 30m", "2days", "1year") than this file
/// format has ever promised, so a typo could turn into a valid but surprising value.
pub fn parse_duration(s: &str) -> Option<Option<Duration>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") || s == "0" {
        return Some(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86400)?),
        _ => return None,
    };
    Some(if d.is_zero() { None } else { Some(d) })
}

fn duration(option: &'static str, v: &DurationValue) -> Result<Option<Duration>, ConfigError> {
    match v {
        DurationValue::Seconds(0) => Ok(None),
        DurationValue::Seconds(n) => Ok(Some(Duration::from_secs(*n))),
        DurationValue::Text(t) => parse_duration(t).ok_or_else(|| ConfigError::Duration {
            option,
            value: t.clone(),
        }),
    }
}

/// The flag, else the file, else `default`; "off" (or 0) is `None`.
pub(super) fn pick_duration(
    option: &'static str,
    flag: &Option<String>,
    file: Option<DurationValue>,
    default: &str,
) -> Result<Option<Duration>, ConfigError> {
    let v = flag
        .clone()
        .map(DurationValue::Text)
        .or(file)
        .unwrap_or_else(|| DurationValue::Text(default.to_string()));
    duration(option, &v)
}

/// [`pick_duration`] for an option that cannot be switched off.
pub(super) fn pick_required_duration(
    option: &'static str,
    flag: &Option<String>,
    file: Option<DurationValue>,
    default: &str,
) -> Result<Duration, ConfigError> {
    pick_duration(option, flag, file, default)?.ok_or(ConfigError::Zero { option })
}

/// A relative path written in the config file is relative to the file's directory
/// `base` (as in systemd units and most daemons' files), not to wherever the proxy
/// was started from; an absolute path stays as it is. Flags are not rebased: a
/// relative path on the command line is relative to the working directory.
pub(super) fn rebase_path(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

/// [`rebase_path`] for an optional key.
pub(super) fn rebase(base: &Path, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        rebase_path(base, p);
    }
}

/// A repeatable flag's values replace the file's list; `None` when neither is set.
pub(super) fn pick_list<T: Clone>(flag: &[T], file: Option<Vec<T>>) -> Option<Vec<T>> {
    if flag.is_empty() {
        file
    } else {
        Some(flag.to_vec())
    }
}

/// Parses every entry of a list, naming the option in the error.
pub(super) fn parse_list<T: std::str::FromStr<Err = crate::policy::PolicySyntaxError>>(
    option: &'static str,
    list: &[String],
) -> Result<Vec<T>, ConfigError> {
    list.iter()
        .map(|s| s.parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|cause| ConfigError::Policy { option, cause })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Some(Some(Duration::from_secs(30))));
        assert_eq!(parse_duration("5m"), Some(Some(Duration::from_secs(300))));
        assert_eq!(parse_duration("2h"), Some(Some(Duration::from_secs(7200))));
        assert_eq!(
            parse_duration("500ms"),
            Some(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_duration("45"), Some(Some(Duration::from_secs(45))));
        assert_eq!(parse_duration("off"), Some(None));
        assert_eq!(parse_duration("0"), Some(None));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("-3s"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }
}

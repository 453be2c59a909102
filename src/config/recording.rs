//! `[recording]`: where session recordings go, which sessions are recorded, what is
//! kept of the browser's input, retention, and the free-space floor. Without `dir`,
//! recording is off and a ticket with `rec: true` is refused (503
//! `recording_unavailable`): nothing requested goes unrecorded.

use super::value::{pick_duration, rebase, DurationValue};
use super::{ConfigError, ServeArgs};
use crate::recording::store::Retention;
use crate::recording::{
    parse_size, Policy, RecordingConfig, DEFAULT_MIN_FREE_BYTES, DEFAULT_QUEUE_BYTES,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

const DEFAULT_POLICY: &str = "ticket";
const DEFAULT_MAX_AGE: &str = "off";

/// A size as written in the file: bytes, or a string such as "10G".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// `[recording]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordingFile {
    dir: Option<PathBuf>,
    policy: Option<String>,
    input: Option<bool>,
    max_age: Option<DurationValue>,
    max_size: Option<SizeValue>,
    min_free: Option<SizeValue>,
    queue_size: Option<SizeValue>,
}

fn size(option: &'static str, v: &SizeValue) -> Result<Option<u64>, ConfigError> {
    match v {
        SizeValue::Bytes(0) => Ok(None),
        SizeValue::Bytes(n) => Ok(Some(*n)),
        SizeValue::Text(t) => parse_size(t).ok_or_else(|| ConfigError::Size {
            option,
            value: t.clone(),
        }),
    }
}

fn pick_size(
    option: &'static str,
    flag: &Option<String>,
    file: Option<SizeValue>,
) -> Result<Option<Option<u64>>, ConfigError> {
    flag.clone()
        .map(SizeValue::Text)
        .or(file)
        .map(|v| size(option, &v))
        .transpose()
}

/// The section, merged with its flags; `None` when recording is off.
impl RecordingFile {
    /// Relative paths of the file become relative to `base`, the file's directory.
    pub(super) fn rebase(&mut self, base: &Path) {
        rebase(base, &mut self.dir);
    }
}

pub(super) fn merge(
    f: RecordingFile,
    a: &ServeArgs,
) -> Result<Option<RecordingConfig>, ConfigError> {
    let Some(dir) = a.recording_dir.clone().or(f.dir) else {
        return Ok(None);
    };
    let policy_text = a
        .recording_policy
        .clone()
        .or(f.policy)
        .unwrap_or_else(|| DEFAULT_POLICY.into());
    let policy: Policy = policy_text
        .trim()
        .parse()
        .map_err(|()| ConfigError::RecordingPolicy(policy_text.clone()))?;
    let max_age = pick_duration(
        "recording.max_age",
        &a.recording_max_age,
        f.max_age,
        DEFAULT_MAX_AGE,
    )?;
    let max_total_bytes =
        pick_size("recording.max_size", &a.recording_max_size, f.max_size)?.flatten();
    let min_free_bytes = pick_size("recording.min_free", &a.recording_min_free, f.min_free)?
        .map_or(DEFAULT_MIN_FREE_BYTES, |v| v.unwrap_or(0));
    let queue_bytes = match pick_size(
        "recording.queue_size",
        &a.recording_queue_size,
        f.queue_size,
    )? {
        Some(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        Some(None) => {
            return Err(ConfigError::Zero {
                option: "recording.queue_size",
            })
        }
        None => DEFAULT_QUEUE_BYTES,
    };
    Ok(Some(RecordingConfig {
        dir,
        policy,
        retention: Retention {
            max_age,
            max_total_bytes,
        },
        min_free_bytes,
        input: !a.recording_no_input && f.input.unwrap_or(true),
        queue_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use crate::recording::Policy;
    use std::time::Duration;

    const BASE: &str = "allow_plain = true\n[tickets]\ntrust = [\"/nonexistent\"]\n";

    #[test]
    fn recording_is_off_without_a_directory() {
        let c = Config::from_toml(BASE).unwrap();
        assert_eq!(c.recording, None);
    }

    #[test]
    fn every_recording_option_is_read() {
        let c = Config::from_toml(&format!(
            "{BASE}[recording]\ndir = \"/var/lib/consolegate/recordings\"\npolicy = \"all\"\n\
             input = false\nmax_age = \"90d\"\nmax_size = \"200G\"\nmin_free = \"5G\"\n\
             queue_size = \"4M\"\n"
        ))
        .unwrap();
        let r = c.recording.unwrap();
        assert_eq!(r.dir.to_str(), Some("/var/lib/consolegate/recordings"));
        assert_eq!(r.policy, Policy::All);
        assert!(!r.input);
        assert_eq!(r.retention.max_age, Some(Duration::from_secs(90 * 86400)));
        assert_eq!(r.retention.max_total_bytes, Some(200 << 30));
        assert_eq!(r.min_free_bytes, 5 << 30);
        assert_eq!(r.queue_bytes, 4 << 20);
    }

    #[test]
    fn defaults_record_input_with_a_one_gigabyte_floor() {
        let c = Config::from_toml(&format!("{BASE}[recording]\ndir = \"/r\"\n")).unwrap();
        let r = c.recording.unwrap();
        assert_eq!(r.policy, Policy::Ticket);
        assert!(r.input);
        assert_eq!(r.min_free_bytes, 1 << 30);
        assert_eq!(r.retention, Default::default());
        let c =
            Config::from_toml(&format!("{BASE}[recording]\ndir = \"/r\"\nmin_free = 0\n")).unwrap();
        assert_eq!(c.recording.unwrap().min_free_bytes, 0);
    }

    #[test]
    fn bad_recording_values_are_refused_by_name() {
        for (text, needle) in [
            ("policy = \"some\"", "recording.policy"),
            ("max_size = \"lots\"", "recording.max_size"),
            ("max_age = \"forever\"", "recording.max_age"),
            ("colour = \"red\"", "colour"),
            ("queue_size = 0", "recording.queue_size"),
        ] {
            let err = Config::from_toml(&format!("{BASE}[recording]\ndir = \"/r\"\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}

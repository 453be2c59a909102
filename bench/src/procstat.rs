//! What a proxy costs, read from /proc: the process tree under a pid (websockify forks a
//! child per session), its resident memory, and its CPU time.
//!
//! CPU is the sum of `utime + stime` over the live tree plus the root's `cutime +
//! cstime`, so the time of children that already exited and were reaped (websockify's
//! finished sessions) still counts.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for /proc/<pid>/stat times. Linux has reported 100 (USER_HZ)
/// on every architecture we run on; reading it would need libc.
const TICKS_PER_SEC: f64 = 100.0;

/// Fields of /proc/<pid>/stat after the command name (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    // Field 3 (state) is a letter; keep positions by mapping it to 0.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// `root` and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(pid) {
                // rest[1] is field 4, ppid.
                if let Some(&ppid) = f.get(1) {
                    children.entry(ppid as u32).or_default().push(pid);
                }
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend_from_slice(c);
        }
        i += 1;
    }
    out
}

/// CPU seconds used so far by the tree under `root`, including reaped children.
pub fn cpu_secs(root: u32) -> f64 {
    let mut ticks = 0u64;
    for (i, pid) in tree(root).into_iter().enumerate() {
        if let Some(f) = stat_fields(pid) {
            // utime = field 14, stime 15, cutime 16, cstime 17 → rest[11..15].
            ticks += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            if i == 0 {
                ticks += f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
            }
        }
    }
    ticks as f64 / TICKS_PER_SEC
}

/// Resident memory of the tree under `root`, in KiB: (sum of RSS, sum of PSS). RSS
/// counts pages shared between forked children once per process; PSS splits them.
pub fn memory_kib(root: u32) -> (u64, u64) {
    let (mut rss, mut pss) = (0, 0);
    for pid in tree(root) {
        if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            rss += field_kib(&s, "Rss:");
            pss += field_kib(&s, "Pss:");
        } else if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/status")) {
            let v = field_kib(&s, "VmRSS:");
            rss += v;
            pss += v;
        }
    }
    (rss, pss)
}

fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(super::tree(me).contains(&me));
        assert!(super::memory_kib(me).0 > 0);
        assert!(super::cpu_secs(me) >= 0.0);
    }
}

//! The config file parser, `config::Config::from_toml`, on arbitrary text.
//!
//! Beyond "no panic": every address range and port range it accepted must print back
//! to text that parses to the same range, so what `--check-config` shows the operator
//! is what the proxy enforces.
#![no_main]

use consolegate::config::Config;
use consolegate::policy::{Cidr, PortRange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    for c in &config.targets.policy.allow {
        let shown = c.to_string();
        assert_eq!(shown.parse::<Cidr>().as_ref(), Ok(c), "{shown}");
    }
    let t = &config.targets.policy;
    for r in t.vnc_ports.iter().chain(&t.spice_ports).chain(&t.serial_ports) {
        let shown = r.to_string();
        assert_eq!(shown.parse::<PortRange>().as_ref(), Ok(r), "{shown}");
        assert!(r.first >= 1 && r.first <= r.last);
    }
    assert!(config.tickets.verify.max_lifetime_secs > 0);
    assert!(config.tickets.verify.leeway_secs >= 0);
    assert!(config.limits.max_sessions > 0);
});

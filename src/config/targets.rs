//! `[targets]`: the console servers tickets may reach (rule 8) and how long a
//! connect may take.

use super::value::{parse_list, pick_list, pick_required_duration};
use super::{ConfigError, ServeArgs};
use crate::policy::{PortRange, TargetPolicy};
use serde::Deserialize;
use std::time::Duration;

const DEFAULT_CONNECT_TIMEOUT: &str = "5s";

/// `[targets]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetsFile {
    allow: Option<Vec<String>>,
    ports: Option<Vec<String>>,
    vnc_ports: Option<Vec<String>>,
    spice_ports: Option<Vec<String>>,
    serial_ports: Option<Vec<String>>,
    connect_timeout: Option<super::value::DurationValue>,
}

/// Where tickets may lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetsConfig {
    /// Address and per-kind port ranges; the defaults are [`TargetPolicy::default`]
    /// (loopback, the VNC and SPICE console ports, no serial ports).
    pub policy: TargetPolicy,
    pub connect_timeout: Duration,
}

pub(super) fn merge(f: TargetsFile, a: &ServeArgs) -> Result<TargetsConfig, ConfigError> {
    let mut policy = TargetPolicy::default();
    if let Some(list) = pick_list(&a.allow_target, f.allow) {
        policy.allow = parse_list("targets.allow", &list)?;
    }
    let ranges = |option: &'static str,
                  flag: &[String],
                  file: Option<Vec<String>>|
     -> Result<Option<Vec<PortRange>>, ConfigError> {
        pick_list(flag, file)
            .map(|l| parse_list(option, &l))
            .transpose()
    };
    // `ports` is the VNC and SPICE default (as before per-kind ports existed);
    // `vnc_ports` and `spice_ports` override it for their kind. Serial ports are
    // only ever the explicit `serial_ports`.
    if let Some(ports) = ranges("targets.ports", &a.allow_port, f.ports)? {
        policy.vnc_ports = ports.clone();
        policy.spice_ports = ports;
    }
    if let Some(ports) = ranges("targets.vnc_ports", &a.allow_vnc_port, f.vnc_ports)? {
        policy.vnc_ports = ports;
    }
    if let Some(ports) = ranges("targets.spice_ports", &a.allow_spice_port, f.spice_ports)? {
        policy.spice_ports = ports;
    }
    if let Some(ports) = ranges("targets.serial_ports", &a.allow_serial_port, f.serial_ports)? {
        policy.serial_ports = ports;
    }
    let connect_timeout = pick_required_duration(
        "targets.connect_timeout",
        &a.connect_timeout,
        f.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    )?;
    Ok(TargetsConfig {
        policy,
        connect_timeout,
    })
}

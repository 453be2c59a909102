//! Configuration: the TOML file and the command-line flags merged into one validated
//! [`Config`]. Every option of the file has a flag of the same meaning, and a flag
//! wins over the file, so operators can try a change without editing the file.
//!
//! One file per section of the config file, as the operator writes it (`[tickets]` in
//! `tickets.rs`, `[targets]` in `targets.rs`, …): each holds the section's file
//! layout, its defaults, its merge with the flags and the validated result. The flags
//! are one flat list in [`args`] (`--help` and scripts know them by name), the file's
//! outline is [`file`], and the checks that span sections (TLS or plain, keys or a
//! legacy source, token files without single use) are in [`Config::merge`] below.
//! Adding an option: a field in its section's file and a flag in `args.rs`.

mod admin;
mod args;
mod backend_tls;
mod clients;
mod file;
mod legacy;
mod limits;
mod listener;
mod log;
mod origins;
mod paths;
mod recording;
mod targets;
mod tickets;
mod value;
mod web;

pub use admin::AdminConfig;
pub use args::ServeArgs;
pub use limits::{open_file_limit, pending_defaults, LimitsConfig};
pub use listener::TlsFiles;
pub use log::{LogConfig, LogFormat};
pub use paths::{Expect, NamedPath, PathProblem};
pub use targets::TargetsConfig;
pub use tickets::TicketsConfig;
pub use value::parse_duration;
pub use web::WebConfig;

use crate::backend::BackendTlsFiles;
use crate::clientaddr::ClientsConfig;
use crate::legacy::LegacyConfig;
use crate::policy::{OriginPolicy, PolicySyntaxError};
use crate::recording::RecordingConfig;
use file::FileConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{option}: {value:?} is not a duration (expected e.g. 30s, 5m, 2h, 500ms or seconds)")]
    Duration { option: &'static str, value: String },
    #[error("{option}: {cause}")]
    Policy {
        option: &'static str,
        cause: PolicySyntaxError,
    },
    #[error("listen: {0:?} is not an address (expected e.g. 0.0.0.0:6100 or [::]:6100)")]
    Listen(String),
    #[error("no TLS certificate configured: set [tls] cert and key (--tls-cert/--tls-key), or allow_plain = true (--allow-plain) for plain ws://")]
    NoTls,
    #[error("[tls] needs both cert and key")]
    HalfTls,
    #[error("no trusted keys configured: set [tickets] trust (--trust) to public key files or directories, or enable a [legacy] source")]
    NoTrust,
    #[error("legacy.ovirt_allow_sha1 needs legacy.ovirt_certificate (--ovirt-certificate)")]
    Sha1WithoutOvirt,
    #[error("legacy.token_source cannot be combined with tickets.single_use: websockify tokens are reusable by design")]
    TokensSingleUse,
    #[error("{option}: must be greater than zero")]
    Zero { option: &'static str },
    #[error("{option}: {value} is not a rate (expected a number of 0 or more)")]
    Rate { option: &'static str, value: f64 },
    #[error("clients.proxy_protocol needs clients.trusted_proxies (--trusted-proxy): PROXY headers are believed only from the balancers named there")]
    ProxyProtocolWithoutTrust,
    #[error("clients.balancer_only needs clients.trusted_proxies (--trusted-proxy): sessions are taken only from the balancers named there")]
    BalancerOnlyWithoutTrust,
    #[error("log format {0:?} is not text or json")]
    LogFormat(String),
    #[error("[backend_tls] needs both client_cert and client_key (--backend-client-cert/--backend-client-key)")]
    HalfBackendClientCert,
    #[error("[backend_tls] client_cert is set without ca (--backend-ca): console servers cannot be checked")]
    BackendClientCertWithoutCa,
    #[error("admin.listen: {0:?} is not an address or \"off\" (expected e.g. 127.0.0.1:6101)")]
    AdminListen(String),
    #[error("admin.listen {0} is the same address as listen")]
    AdminSameAsListen(SocketAddr),
    #[error("admin.hosts: {0:?} is not a host name (letters, digits, '-' and '.', no port)")]
    AdminHost(String),
    #[error("{option}: {value:?} is not a size (expected bytes, or e.g. 500M, 10G, 2T)")]
    Size { option: &'static str, value: String },
    #[error("recording.policy: {0:?} is not ticket or all")]
    RecordingPolicy(String),
}

/// The validated configuration of one proxy, one field per section of the file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `listen`: the browsers' address.
    pub listen: SocketAddr,
    /// `[tls]`; `None` when plain ws:// is allowed (`allow_plain`) and no certificate set.
    pub tls: Option<TlsFiles>,
    pub tickets: TicketsConfig,
    pub targets: TargetsConfig,
    pub origins: OriginPolicy,
    pub web: WebConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    /// TLS to console servers; `ca` unset: only `tls: none` tickets are served.
    pub backend_tls: BackendTlsFiles,
    pub admin: AdminConfig,
    /// Balancers trusted about the client address and scheme.
    pub clients: ClientsConfig,
    pub legacy: LegacyConfig,
    /// `[recording]`; `None`: off, and sessions that must be recorded are refused.
    pub recording: Option<RecordingConfig>,
}

impl Config {
    /// Reads the file named by `--config` (if any) and applies the flags over it.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
                    path: path.clone(),
                    cause,
                })?;
                let mut file = FileConfig::parse(&text, path)?;
                // `dir/x.toml` names paths relative to `dir`; `x.toml` to `.`.
                file.rebase(path.parent().unwrap_or(Path::new("")));
                file
            }
            None => FileConfig::default(),
        };
        Self::merge(file, args)
    }

    /// Parses the text of a config file with no flags (for `--check-config` and fuzzing).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = FileConfig::parse(text, Path::new("(config)"))?;
        Self::merge(file, &ServeArgs::default())
    }

    /// Each section merges its own keys and flags; what spans sections is checked here.
    fn merge(f: FileConfig, a: &ServeArgs) -> Result<Config, ConfigError> {
        let (listen, tls) = listener::merge(f.listen, f.allow_plain, f.tls, a)?;
        let legacy = legacy::merge(f.legacy, a)?;
        let tickets = tickets::merge(f.tickets, a)?;
        // A proxy replacing ovirt-websocket-proxy or websockify may have no Ed25519
        // engine yet: a legacy source alone is enough to serve.
        let legacy_only = legacy.ovirt_certificate.is_some() || legacy.token_source.is_some();
        if tickets.trust.is_empty() && !legacy_only {
            return Err(ConfigError::NoTrust);
        }
        let config = Config {
            targets: targets::merge(f.targets, a)?,
            origins: origins::merge(f.origins, a)?,
            web: web::merge(f.web, a)?,
            limits: limits::merge(f.limits, a)?,
            log: log::merge(f.log, a)?,
            backend_tls: backend_tls::merge(f.backend_tls, a)?,
            admin: admin::merge(f.admin, a, listen)?,
            clients: clients::merge(f.clients, a)?,
            recording: recording::merge(f.recording, a)?,
            listen,
            tls,
            tickets,
            legacy,
        };
        if config.tickets.single_use && config.legacy.token_source.is_some() {
            return Err(ConfigError::TokensSingleUse);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PortRange, TargetPolicy};
    use std::time::Duration;

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../packaging/consolegate.toml");
        let c = Config::from_toml(text).expect("example config parses");
        assert_eq!(c.listen.port(), 6100);
        assert!(c.tls.is_some());
        assert_eq!(c.admin.listen, Some("127.0.0.1:6101".parse().unwrap()));
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = Config::from_toml("allow_plain = true\n[tickets]\ntrust = [\"keys\"]\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:6100".parse().unwrap());
        assert_eq!(c.tickets.verify.leeway_secs, 30);
        assert_eq!(c.tickets.verify.max_lifetime_secs, 600);
        assert_eq!(c.targets.policy, TargetPolicy::default());
        assert_eq!(c.targets.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.max_sessions, 10_000);
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.relay.ping_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.limits.relay.idle_timeout, None);
        assert_eq!(c.limits.grace, Duration::from_secs(30));
        assert_eq!(c.admin.listen, Some("127.0.0.1:6101".parse().unwrap()));
        assert_eq!(c.admin.token_file, None);
        assert_eq!(c.tickets.deny_list, None);
    }

    #[test]
    fn the_admin_listener_can_be_switched_off_and_must_be_an_address() {
        let base = "allow_plain = true\n[tickets]\ntrust = [\"k\"]\n";
        let c = Config::from_toml(&format!("{base}[admin]\nlisten = \"off\"\n")).unwrap();
        assert_eq!(c.admin.listen, None);
        let err =
            Config::from_toml(&format!("{base}[admin]\nlisten = \"localhost\"\n")).unwrap_err();
        assert!(err.to_string().contains("admin.listen"), "{err}");
        let err = Config::from_toml(&format!(
            "listen = \"127.0.0.1:7000\"\n{base}[admin]\nlisten = \"127.0.0.1:7000\"\n"
        ))
        .unwrap_err();
        assert!(matches!(err, ConfigError::AdminSameAsListen(_)), "{err}");
        let args = ServeArgs {
            admin_listen: Some("off".into()),
            deny_list: Some("deny.list".into()),
            admin_token_file: Some("t".into()),
            ..ServeArgs::default()
        };
        let file: FileConfig =
            toml::from_str(&format!("{base}[admin]\nlisten = \"127.0.0.1:1\"")).unwrap();
        let c = Config::merge(file, &args).unwrap();
        assert_eq!(c.admin.listen, None);
        assert_eq!(c.admin.token_file, Some(PathBuf::from("t")));
        assert_eq!(c.tickets.deny_list, Some(PathBuf::from("deny.list")));
    }

    #[test]
    fn hardening_options_have_documented_defaults_and_flags_override_them() {
        let c = Config::from_toml("allow_plain = true\n[tickets]\ntrust = [\"keys\"]\n").unwrap();
        assert_eq!(c.tickets.max_sessions_per_ticket, 2);
        assert_eq!(c.limits.per_client.max_sessions_per_client, 100);
        assert_eq!(c.limits.per_client.handshakes_per_second, 20.0);
        assert_eq!(c.limits.per_client.handshake_burst, 40.0);
        assert_eq!(c.log.refusals_per_second, 10);
        assert_eq!(c.clients, ClientsConfig::default());
        let file: FileConfig = toml::from_str::<FileConfig>(
            "allow_plain = true\n[tickets]\ntrust=[\"k\"]\nmax_sessions_per_ticket = 1\n\
             [clients]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true\n\
             [limits]\nhandshakes_per_second_per_client = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            max_sessions_per_ticket: Some(3),
            trusted_proxy: vec!["127.0.0.1/32".into()],
            ..ServeArgs::default()
        };
        let c = Config::merge(file, &args).unwrap();
        assert_eq!(c.tickets.max_sessions_per_ticket, 3);
        assert_eq!(c.limits.per_client.handshakes_per_second, 5.0);
        assert!(c.clients.proxy_protocol);
        assert!(c.clients.trusts("127.0.0.1".parse().unwrap()));
        assert!(
            !c.clients.trusts("10.1.2.3".parse().unwrap()),
            "the flag replaces the file's list"
        );
        let err = Config::from_toml(
            "allow_plain = true\n[tickets]\ntrust=[\"k\"]\n[clients]\nproxy_protocol = true\n",
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::ProxyProtocolWithoutTrust),
            "{err}"
        );
        let err = Config::from_toml(
            "allow_plain = true\n[tickets]\ntrust=[\"k\"]\n[limits]\nhandshake_burst_per_client = -1\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("handshake_burst_per_client"),
            "{err}"
        );
    }

    #[test]
    fn plain_websocket_needs_an_explicit_opt_in() {
        let err = Config::from_toml("[tickets]\ntrust = [\"keys\"]\n").unwrap_err();
        assert!(matches!(err, ConfigError::NoTls), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_the_option() {
        assert!(matches!(
            Config::from_toml("allow_plan = true"),
            Err(ConfigError::Parse { .. })
        ));
        let err =
            Config::from_toml("allow_plain = true\n[tickets]\ntrust=[\"k\"]\nleeway = \"soon\"")
                .unwrap_err();
        assert!(err.to_string().contains("tickets.leeway"), "{err}");
        let err = Config::from_toml(
            "allow_plain = true\n[tickets]\ntrust=[\"k\"]\n[targets]\nallow=[\"10.0.0.0/40\"]",
        )
        .unwrap_err();
        assert!(err.to_string().contains("targets.allow"), "{err}");
    }

    #[test]
    fn backend_tls_comes_from_the_file_or_the_flags_and_must_be_whole() {
        let base = "allow_plain = true\n[tickets]\ntrust = [\"k\"]\n";
        let c = Config::from_toml(base).unwrap();
        assert_eq!(c.backend_tls, BackendTlsFiles::default());
        let c = Config::from_toml(&format!(
            "{base}[backend_tls]\nca = \"ca.pem\"\nclient_cert = \"c.pem\"\nclient_key = \"k.pem\"\n"
        ))
        .unwrap();
        assert_eq!(c.backend_tls.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(c.backend_tls.client_key, Some(PathBuf::from("k.pem")));
        let err = Config::from_toml(&format!(
            "{base}[backend_tls]\nca = \"ca.pem\"\nclient_cert = \"c.pem\"\n"
        ))
        .unwrap_err();
        assert!(matches!(err, ConfigError::HalfBackendClientCert), "{err}");
        let err = Config::from_toml(&format!(
            "{base}[backend_tls]\nclient_cert = \"c.pem\"\nclient_key = \"k.pem\"\n"
        ))
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::BackendClientCertWithoutCa),
            "{err}"
        );
        let args = ServeArgs {
            backend_ca: Some(PathBuf::from("flag-ca.pem")),
            ..ServeArgs::default()
        };
        let file: FileConfig = toml::from_str::<FileConfig>(
            "allow_plain = true\n[tickets]\ntrust=[\"k\"]\n[backend_tls]\nca = \"file-ca.pem\"",
        )
        .unwrap();
        let c = Config::merge(file, &args).unwrap();
        assert_eq!(c.backend_tls.ca, Some(PathBuf::from("flag-ca.pem")));
    }

    #[test]
    fn legacy_sources_are_off_by_default_and_read_from_file_and_flags() {
        let c = Config::from_toml("allow_plain = true\n[tickets]\ntrust = [\"keys\"]\n").unwrap();
        assert_eq!(c.legacy, LegacyConfig::default());
        let c = Config::from_toml(
            "allow_plain = true\n[legacy]\novirt_certificate = \"/etc/pki/ovirt-engine/certs/engine.cer\"\n\
             token_source = \"/var/lib/one/sunstone_vnc_tokens\"\n",
        )
        .unwrap();
        assert!(
            c.tickets.trust.is_empty(),
            "a legacy source alone is enough"
        );
        assert_eq!(
            c.legacy.ovirt_certificate,
            Some(PathBuf::from("/etc/pki/ovirt-engine/certs/engine.cer"))
        );
        assert!(!c.legacy.ovirt_allow_sha1);
        let err = Config::from_toml("allow_plain = true\n[legacy]\novirt_allow_sha1 = true\n")
            .unwrap_err();
        assert!(matches!(err, ConfigError::Sha1WithoutOvirt), "{err}");
        let err = Config::from_toml(
            "allow_plain = true\n[tickets]\nsingle_use = true\n[legacy]\ntoken_source = \"t\"\n",
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::TokensSingleUse), "{err}");
        let args = ServeArgs {
            allow_plain: true,
            ovirt_certificate: Some(PathBuf::from("engine.cer")),
            ovirt_allow_sha1: true,
            ..ServeArgs::default()
        };
        let c = Config::merge(FileConfig::default(), &args).unwrap();
        assert!(c.legacy.ovirt_allow_sha1);
    }

    #[test]
    fn flags_override_the_file() {
        let args = ServeArgs {
            listen: Some("127.0.0.1:7000".into()),
            allow_plain: true,
            trust: vec![PathBuf::from("other")],
            allow_port: vec!["5901".into()],
            ..ServeArgs::default()
        };
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:6100\"\n[tickets]\ntrust=[\"k\"]").unwrap();
        let c = Config::merge(file, &args).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.tickets.trust, vec![PathBuf::from("other")]);
        let p5901 = vec![PortRange {
            first: 5901,
            last: 5901,
        }];
        assert_eq!(c.targets.policy.vnc_ports, p5901);
        assert_eq!(c.targets.policy.spice_ports, p5901);
        assert!(c.targets.policy.serial_ports.is_empty());
    }

    #[test]
    fn ports_is_the_vnc_and_spice_default_and_serial_ports_are_explicit() {
        let base = "allow_plain = true\n[tickets]\ntrust = [\"k\"]\n[targets]\n";
        let c = Config::from_toml(&format!("{base}ports = [\"5901\"]\n")).unwrap();
        assert_eq!(c.targets.policy.vnc_ports, c.targets.policy.spice_ports);
        assert!(c.targets.policy.serial_ports.is_empty());
        let c = Config::from_toml(&format!(
            "{base}ports = [\"5901\"]\nspice_ports = [\"6100-6199\"]\nserial_ports = [\"7000\", \"7100-7101\"]\n"
        ))
        .unwrap();
        assert_eq!(c.targets.policy.vnc_ports, vec!["5901".parse().unwrap()]);
        assert_eq!(
            c.targets.policy.spice_ports,
            vec!["6100-6199".parse().unwrap()]
        );
        assert_eq!(c.targets.policy.serial_ports.len(), 2);
        let err = Config::from_toml(&format!("{base}serial_ports = [\"0\"]\n")).unwrap_err();
        assert!(err.to_string().contains("targets.serial_ports"), "{err}");
        let args = ServeArgs {
            allow_plain: true,
            trust: vec![PathBuf::from("k")],
            allow_serial_port: vec!["7000".into()],
            ..ServeArgs::default()
        };
        let c = Config::merge(FileConfig::default(), &args).unwrap();
        assert_eq!(c.targets.policy.serial_ports, vec!["7000".parse().unwrap()]);
        assert_eq!(
            c.targets.policy,
            TargetPolicy {
                serial_ports: vec!["7000".parse().unwrap()],
                ..TargetPolicy::default()
            }
        );
        assert_eq!(
            c.web.spice_dir,
            PathBuf::from("web/node_modules/@spice-project/spice-html5/src")
        );
        assert_eq!(c.web.xterm_dir, PathBuf::from("web/node_modules/@xterm"));
    }

    #[test]
    fn every_file_key_has_a_flag_whose_help_names_it() {
        use clap::Args as _;
        let mut serve = ServeArgs::augment_args(clap::Command::new("serve"));
        let help = serve.render_long_help().to_string();
        let keys = FileConfig::keys();
        assert!(keys.len() >= 40, "{keys:?}");
        for key in keys {
            // Each flag's help ends with `[section.key]` or `[section.key; default …]`.
            assert!(
                help.contains(&format!("[{key}]")) || help.contains(&format!("[{key};")),
                "no flag's --help names the file key {key}"
            );
        }
    }
}

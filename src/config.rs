//! Configuration: the TOML file and the command-line flags merged into one validated
//! [`Config`]. Every option of the file has a flag of the same meaning, and a flag
//! wins over the file, so operators can try a change without editing the file.

use crate::backend::BackendTlsFiles;
use crate::clientaddr::ClientsConfig;
use crate::limits::LimitsConfig;
use crate::policy::{Cidr, Origin, OriginPolicy, PolicySyntaxError, PortRange, TargetPolicy};
use crate::relay::RelayConfig;
use crate::ticket::VerifyOptions;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod recording;
pub use recording::RecordingArgs;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{option}: {value:?} is not a duration (expected e.g. 30s, 5m, 2h, 500ms or seconds)")]
    Duration { option: &'static str, value: String },
    #[error("{option}: {source}")]
    Policy {
        option: &'static str,
        source: PolicySyntaxError,
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
    #[error("{option}: {value:?} is not a size (expected bytes, or e.g. 500M, 10G, 2T)")]
    Size { option: &'static str, value: String },
    #[error("recording.policy: {0:?} is not ticket or all")]
    RecordingPolicy(String),
}

/// A duration as written in the file: seconds, or a string such as "30s".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// Parses "30s", "5m", "2h", "500ms", "1d" or bare seconds; "off" and "0" are `None`.
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

/// The file's layout. Unknown keys are errors: a typo must not silently fall back to
/// a default in a security setting.
#[derive(Debug, Default, Deserialize)]
// Every section is optional (`default` on the struct, so a new section cannot
// forget it).
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    allow_plain: Option<bool>,
    tls: FileTls,
    tickets: FileTickets,
    targets: FileTargets,
    origins: FileOrigins,
    web: FileWeb,
    limits: FileLimits,
    log: FileLog,
    backend_tls: FileBackendTls,
    admin: FileAdmin,
    clients: FileClients,
    legacy: FileLegacy,
    recording: recording::RecordingFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClients {
    trusted_proxies: Option<Vec<String>>,
    proxy_protocol: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLegacy {
    ovirt_certificate: Option<PathBuf>,
    ovirt_allow_sha1: Option<bool>,
    token_source: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// TLS to console servers (tickets with `tls` "tls" or "vencrypt").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackendTls {
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTickets {
    trust: Option<Vec<PathBuf>>,
    leeway: Option<DurationValue>,
    max_lifetime: Option<DurationValue>,
    audiences: Option<Vec<String>>,
    single_use: Option<bool>,
    deny_list: Option<PathBuf>,
    max_sessions_per_ticket: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTargets {
    allow: Option<Vec<String>>,
    ports: Option<Vec<String>>,
    vnc_ports: Option<Vec<String>>,
    spice_ports: Option<Vec<String>>,
    serial_ports: Option<Vec<String>>,
    connect_timeout: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOrigins {
    allow: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    dir: Option<PathBuf>,
    novnc_dir: Option<PathBuf>,
    spice_dir: Option<PathBuf>,
    xterm_dir: Option<PathBuf>,
    asciinema_dir: Option<PathBuf>,
    engine_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_sessions: Option<usize>,
    handshake_timeout: Option<DurationValue>,
    idle_timeout: Option<DurationValue>,
    max_duration: Option<DurationValue>,
    ping_interval: Option<DurationValue>,
    grace: Option<DurationValue>,
    max_message: Option<usize>,
    max_sessions_per_client: Option<usize>,
    handshakes_per_second_per_client: Option<f64>,
    handshake_burst_per_client: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    listen: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<String>,
    level: Option<String>,
    refusals_per_second: Option<u32>,
}

/// `consolegate serve` flags; each overrides the same option of the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML); see packaging/consolegate.toml for every option.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration (and load keys and certificate), then exit.
    #[arg(long)]
    pub check_config: bool,
    /// Address to listen on [listen; default 127.0.0.1:6100].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Allow plain ws:// without TLS [allow_plain].
    #[arg(long)]
    pub allow_plain: bool,
    /// TLS certificate chain, PEM [tls.cert].
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key, PEM [tls.key].
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Trusted public key file or directory of *.pub; repeat [tickets.trust].
    #[arg(long, value_name = "PATH")]
    pub trust: Vec<PathBuf>,
    /// Clock-skew leeway [tickets.leeway; default 30s].
    #[arg(long, value_name = "DUR")]
    pub leeway: Option<String>,
    /// Longest ticket lifetime accepted [tickets.max_lifetime; default 600s].
    #[arg(long, value_name = "DUR")]
    pub max_lifetime: Option<String>,
    /// This proxy's audience name; repeat [tickets.audiences].
    #[arg(long, value_name = "NAME")]
    pub aud: Vec<String>,
    /// Refuse a ticket id seen before [tickets.single_use].
    #[arg(long)]
    pub single_use: bool,
    /// Allowed target address range (CIDR); repeat [targets.allow; default 127.0.0.0/8, ::1/128].
    #[arg(long, value_name = "CIDR")]
    pub allow_target: Vec<String>,
    /// Allowed target port range for VNC and SPICE tickets; repeat [targets.ports; default 5900-6923].
    #[arg(long, value_name = "RANGE")]
    pub allow_port: Vec<String>,
    /// Port range for `vnc` tickets only; repeat [targets.vnc_ports; default: targets.ports].
    #[arg(long, value_name = "RANGE")]
    pub allow_vnc_port: Vec<String>,
    /// Port range for `spice` tickets only; repeat [targets.spice_ports; default: targets.ports].
    #[arg(long, value_name = "RANGE")]
    pub allow_spice_port: Vec<String>,
    /// Port range for `serial` tickets; repeat [targets.serial_ports; default: none].
    #[arg(long, value_name = "RANGE")]
    pub allow_serial_port: Vec<String>,
    /// Console server connect timeout [targets.connect_timeout; default 5s].
    #[arg(long, value_name = "DUR")]
    pub connect_timeout: Option<String>,
    /// Web origin allowed to open sessions; repeat [origins.allow; default: the proxy's own].
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Directory of the console page [web.dir; default web].
    #[arg(long, value_name = "DIR")]
    pub web_dir: Option<PathBuf>,
    /// noVNC copy served at /novnc/ [web.novnc_dir; default web/node_modules/@novnc/novnc].
    #[arg(long, value_name = "DIR")]
    pub novnc_dir: Option<PathBuf>,
    /// spice-html5 served at /spice/ [web.spice_dir; default web/node_modules/@spice-project/spice-html5/src].
    #[arg(long, value_name = "DIR")]
    pub spice_dir: Option<PathBuf>,
    /// xterm.js and its fit add-on (the @xterm directory) served at /xterm/ [web.xterm_dir; default web/node_modules/@xterm].
    #[arg(long, value_name = "DIR")]
    pub xterm_dir: Option<PathBuf>,
    /// asciinema-player's bundle, for the recording player's serial recordings, served
    /// at /asciinema/ [web.asciinema_dir; default web/node_modules/asciinema-player/dist/bundle].
    #[arg(long, value_name = "DIR")]
    pub asciinema_dir: Option<PathBuf>,
    /// Engine origin trusted to hand tickets to the console page; repeat [web.engine_origins].
    #[arg(long, value_name = "ORIGIN")]
    pub engine_origin: Vec<String>,
    /// Most concurrent sessions [limits.max_sessions; default 10000].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Time for TLS and the HTTP request [limits.handshake_timeout; default 10s].
    #[arg(long, value_name = "DUR")]
    pub handshake_timeout: Option<String>,
    /// End a session idle this long [limits.idle_timeout; default off].
    #[arg(long, value_name = "DUR")]
    pub idle_timeout: Option<String>,
    /// End any session after this long [limits.max_duration; default off].
    #[arg(long, value_name = "DUR")]
    pub max_duration: Option<String>,
    /// Heartbeat ping interval [limits.ping_interval; default 30s].
    #[arg(long, value_name = "DUR")]
    pub ping_interval: Option<String>,
    /// Drain time on SIGTERM before sessions are closed [limits.grace; default 30s].
    #[arg(long, value_name = "DUR")]
    pub grace: Option<String>,
    /// Largest WebSocket message from a browser, bytes [limits.max_message; default 16 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_message: Option<usize>,
    /// Concurrent sessions of one ticket; a newer one replaces the oldest; 0 = no limit
    /// [tickets.max_sessions_per_ticket; default 2].
    #[arg(long, value_name = "N")]
    pub max_sessions_per_ticket: Option<usize>,
    /// Concurrent sessions of one client address (IPv6: its /64); 0 = no limit
    /// [limits.max_sessions_per_client; default 100].
    #[arg(long, value_name = "N")]
    pub max_sessions_per_client: Option<usize>,
    /// WebSocket handshakes per second from one client address, then 429; 0 = no limit
    /// [limits.handshakes_per_second_per_client; default 20].
    #[arg(long, value_name = "N")]
    pub handshakes_per_second_per_client: Option<f64>,
    /// Handshakes one client may make at once [limits.handshake_burst_per_client; default 40].
    #[arg(long, value_name = "N")]
    pub handshake_burst_per_client: Option<f64>,
    /// Balancer address range believed about the client address (PROXY protocol,
    /// X-Forwarded-For) and scheme (X-Forwarded-Proto); repeat [clients.trusted_proxies].
    #[arg(long, value_name = "CIDR")]
    pub trusted_proxy: Vec<String>,
    /// Trusted balancers send a PROXY protocol (v1 or v2) header first [clients.proxy_protocol].
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Refusal log lines per second per refusal code, the rest summarised; 0 = all
    /// [log.refusals_per_second; default 10].
    #[arg(long, value_name = "N")]
    pub log_refusals_per_second: Option<u32>,
    /// Log format: text or json [log.format].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter, e.g. info, debug [log.level].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// CA bundle that signs console servers' certificates, PEM; needed for tickets
    /// with tls "tls" or "vencrypt" [backend_tls.ca].
    #[arg(long, value_name = "PEM")]
    pub backend_ca: Option<PathBuf>,
    /// Certificate chain the proxy presents to console servers, PEM [backend_tls.client_cert].
    #[arg(long, value_name = "PEM")]
    pub backend_client_cert: Option<PathBuf>,
    /// Private key of --backend-client-cert, PEM [backend_tls.client_key].
    #[arg(long, value_name = "PEM")]
    pub backend_client_key: Option<PathBuf>,
    /// Revoked ticket ids and users, re-read on SIGHUP [tickets.deny_list; default none].
    #[arg(long, value_name = "FILE")]
    pub deny_list: Option<PathBuf>,
    /// Admin HTTP listener (health, metrics, sessions), or "off" [admin.listen; default 127.0.0.1:6101].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Bearer token file that turns on session control at the admin listener [admin.token_file].
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// oVirt engine certificate (CERT_FOR_DATA_VERIFICATION); accepts the engine's
    /// console tickets [legacy.ovirt_certificate; default off].
    #[arg(long, value_name = "PEM")]
    pub ovirt_certificate: Option<PathBuf>,
    /// Also accept oVirt tickets signed only with SHA-1 (engines without v2_signature)
    /// [legacy.ovirt_allow_sha1; default off].
    #[arg(long)]
    pub ovirt_allow_sha1: bool,
    /// websockify token file or directory (`token: host:port` lines); tokens are not
    /// signed and do not expire [legacy.token_source; default off].
    #[arg(long, value_name = "PATH")]
    pub token_source: Option<PathBuf>,
    #[command(flatten)]
    pub recording: RecordingArgs,
}

/// Credentials of the proxies consolegate replaces; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyConfig {
    /// The engine certificate whose key verifies oVirt tickets; `Some` enables them.
    pub ovirt_certificate: Option<PathBuf>,
    /// Accept PKCS#1 v1.5 SHA-1 `signature` when `v2_signature` is absent.
    pub ovirt_allow_sha1: bool,
    /// websockify token file or directory; `Some` enables token files.
    pub token_source: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// TLS certificate chain and key files for the public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The admin listener: health, metrics and session control.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None` when switched off.
    pub listen: Option<SocketAddr>,
    /// The bearer token guarding `/sessions`; without it session control is off.
    pub token_file: Option<PathBuf>,
}

/// The validated configuration of one proxy.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub trust: Vec<PathBuf>,
    pub verify: VerifyOptions,
    pub single_use: bool,
    pub targets: TargetPolicy,
    pub connect_timeout: Duration,
    pub origins: OriginPolicy,
    pub web_dir: PathBuf,
    pub novnc_dir: PathBuf,
    pub spice_dir: PathBuf,
    pub xterm_dir: PathBuf,
    /// asciinema-player, for web/player.html, served at /asciinema/.
    pub asciinema_dir: PathBuf,
    pub engine_origins: Vec<Origin>,
    pub max_sessions: usize,
    pub handshake_timeout: Duration,
    pub relay: RelayConfig,
    pub grace: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// TLS to console servers; `ca` unset: only `tls: none` tickets are served.
    pub backend_tls: BackendTlsFiles,
    /// Revoked `jti`s and `sub`s; `None` when no deny list is configured.
    pub deny_list: Option<PathBuf>,
    pub admin: AdminConfig,
    /// Balancers trusted about the client address and scheme.
    pub clients: ClientsConfig,
    /// Per-client and per-ticket limits, and the refusal log rate.
    pub abuse: LimitsConfig,
    pub legacy: LegacyConfig,
    /// Session recording; `None`: off, and `rec` tickets are refused.
    pub recording: Option<crate::recording::RecordingConfig>,
}

impl Config {
    /// Reads the file named by `--config` (if any) and applies the flags over it.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::parse_file(&text, path)?
            }
            None => FileConfig::default(),
        };
        Self::merge(file, args)
    }

    /// Parses the text of a config file with no flags (for `--check-config` and fuzzing).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = Self::parse_file(text, Path::new("(config)"))?;
        Self::merge(file, &ServeArgs::default())
    }

    fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })
    }

    fn merge(f: FileConfig, a: &ServeArgs) -> Result<Config, ConfigError> {
        let pick = |option: &'static str,
                    flag: &Option<String>,
                    file: Option<DurationValue>,
                    default: &str|
         -> Result<Option<Duration>, ConfigError> {
            let v = flag
                .clone()
                .map(DurationValue::Text)
                .or(file)
                .unwrap_or_else(|| DurationValue::Text(default.to_string()));
            duration(option, &v)
        };
        let pick_required = |option: &'static str,
                             flag: &Option<String>,
                             file: Option<DurationValue>,
                             default: &str|
         -> Result<Duration, ConfigError> {
            pick(option, flag, file, default)?.ok_or(ConfigError::Zero { option })
        };

        let listen_text = a
            .listen
            .clone()
            .or(f.listen)
            .unwrap_or_else(|| "127.0.0.1:6100".to_string());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| ConfigError::Listen(listen_text.clone()))?;

        let cert = a.tls_cert.clone().or(f.tls.cert);
        let key = a.tls_key.clone().or(f.tls.key);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::HalfTls),
        };
        let allow_plain = a.allow_plain || f.allow_plain.unwrap_or(false);
        if tls.is_none() && !allow_plain {
            return Err(ConfigError::NoTls);
        }

        let legacy = LegacyConfig {
            ovirt_certificate: a.ovirt_certificate.clone().or(f.legacy.ovirt_certificate),
            ovirt_allow_sha1: a.ovirt_allow_sha1 || f.legacy.ovirt_allow_sha1.unwrap_or(false),
            token_source: a.token_source.clone().or(f.legacy.token_source),
        };
        if legacy.ovirt_allow_sha1 && legacy.ovirt_certificate.is_none() {
            return Err(ConfigError::Sha1WithoutOvirt);
        }
        let trust = if a.trust.is_empty() {
            f.tickets.trust.unwrap_or_default()
        } else {
            a.trust.clone()
        };
        // A proxy replacing ovirt-websocket-proxy or websockify may have no Ed25519
        // engine yet: a legacy source alone is enough to serve.
        let legacy_only = legacy.ovirt_certificate.is_some() || legacy.token_source.is_some();
        if trust.is_empty() && !legacy_only {
            return Err(ConfigError::NoTrust);
        }
        let leeway =
            pick("tickets.leeway", &a.leeway, f.tickets.leeway, "30s")?.unwrap_or_default();
        let max_lifetime = pick_required(
            "tickets.max_lifetime",
            &a.max_lifetime,
            f.tickets.max_lifetime,
            "600s",
        )?;
        let audiences = if a.aud.is_empty() {
            f.tickets.audiences.unwrap_or_default()
        } else {
            a.aud.clone()
        };
        let verify = VerifyOptions {
            leeway_secs: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
            max_lifetime_secs: i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX),
            audiences,
        };

        let mut targets = TargetPolicy::default();
        let allow = if a.allow_target.is_empty() {
            f.targets.allow
        } else {
            Some(a.allow_target.clone())
        };
        if let Some(list) = allow {
            targets.allow = list
                .iter()
                .map(|s| s.parse::<Cidr>())
                .collect::<Result<_, _>>()
                .map_err(|source| ConfigError::Policy {
                    option: "targets.allow",
                    source,
                })?;
        }
        // `ports` is the VNC and SPICE default (as before per-kind ports existed);
        // `vnc_ports` and `spice_ports` override it for their kind. Serial ports are
        // only ever the explicit `serial_ports`.
        let ranges = |option: &'static str,
                      flag: &[String],
                      file: Option<Vec<String>>|
         -> Result<Option<Vec<PortRange>>, ConfigError> {
            let list = if flag.is_empty() {
                file
            } else {
                Some(flag.to_vec())
            };
            list.map(|l| {
                l.iter()
                    .map(|s| s.parse::<PortRange>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| ConfigError::Policy { option, source })
            })
            .transpose()
        };
        if let Some(ports) = ranges("targets.ports", &a.allow_port, f.targets.ports)? {
            targets.vnc_ports = ports.clone();
            targets.spice_ports = ports;
        }
        if let Some(ports) = ranges("targets.vnc_ports", &a.allow_vnc_port, f.targets.vnc_ports)? {
            targets.vnc_ports = ports;
        }
        if let Some(ports) = ranges(
            "targets.spice_ports",
            &a.allow_spice_port,
            f.targets.spice_ports,
        )? {
            targets.spice_ports = ports;
        }
        if let Some(ports) = ranges(
            "targets.serial_ports",
            &a.allow_serial_port,
            f.targets.serial_ports,
        )? {
            targets.serial_ports = ports;
        }
        let connect_timeout = pick_required(
            "targets.connect_timeout",
            &a.connect_timeout,
            f.targets.connect_timeout,
            "5s",
        )?;

        let origins_list = if a.allow_origin.is_empty() {
            f.origins.allow.unwrap_or_default()
        } else {
            a.allow_origin.clone()
        };
        let origins = OriginPolicy {
            allow: parse_origins(&origins_list).map_err(|source| ConfigError::Policy {
                option: "origins.allow",
                source,
            })?,
        };
        let engine_list = if a.engine_origin.is_empty() {
            f.web.engine_origins.unwrap_or_default()
        } else {
            a.engine_origin.clone()
        };
        let engine_origins = parse_origins(&engine_list).map_err(|source| ConfigError::Policy {
            option: "web.engine_origins",
            source,
        })?;

        let web_dir = a
            .web_dir
            .clone()
            .or(f.web.dir)
            .unwrap_or_else(|| PathBuf::from("web"));
        let novnc_dir = a
            .novnc_dir
            .clone()
            .or(f.web.novnc_dir)
            .unwrap_or_else(|| web_dir.join("node_modules/@novnc/novnc"));
        let spice_dir = a
            .spice_dir
            .clone()
            .or(f.web.spice_dir)
            .unwrap_or_else(|| web_dir.join("node_modules/@spice-project/spice-html5/src"));
        let xterm_dir = a
            .xterm_dir
            .clone()
            .or(f.web.xterm_dir)
            .unwrap_or_else(|| web_dir.join("node_modules/@xterm"));
        let asciinema_dir = a
            .asciinema_dir
            .clone()
            .or(f.web.asciinema_dir)
            .unwrap_or_else(|| web_dir.join("node_modules/asciinema-player/dist/bundle"));

        let max_sessions = a.max_sessions.or(f.limits.max_sessions).unwrap_or(10_000);
        if max_sessions == 0 {
            return Err(ConfigError::Zero {
                option: "limits.max_sessions",
            });
        }
        let handshake_timeout = pick_required(
            "limits.handshake_timeout",
            &a.handshake_timeout,
            f.limits.handshake_timeout,
            "10s",
        )?;
        let relay = RelayConfig {
            ping_interval: pick(
                "limits.ping_interval",
                &a.ping_interval,
                f.limits.ping_interval,
                "30s",
            )?,
            idle_timeout: pick(
                "limits.idle_timeout",
                &a.idle_timeout,
                f.limits.idle_timeout,
                "off",
            )?,
            max_duration: pick(
                "limits.max_duration",
                &a.max_duration,
                f.limits.max_duration,
                "off",
            )?,
            max_message: a.max_message.or(f.limits.max_message).unwrap_or(16 << 20),
            ..RelayConfig::default()
        };
        let grace = pick("limits.grace", &a.grace, f.limits.grace, "30s")?.unwrap_or_default();

        let format_text = a
            .log_format
            .clone()
            .or(f.log.format)
            .unwrap_or_else(|| "text".into());
        let log_format = match format_text.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(ConfigError::LogFormat(other.to_string())),
        };
        let log_level = a
            .log_level
            .clone()
            .or(f.log.level)
            .unwrap_or_else(|| "info".into());

        let backend_tls = BackendTlsFiles {
            ca: a.backend_ca.clone().or(f.backend_tls.ca),
            client_cert: a.backend_client_cert.clone().or(f.backend_tls.client_cert),
            client_key: a.backend_client_key.clone().or(f.backend_tls.client_key),
        };
        if backend_tls.client_cert.is_some() != backend_tls.client_key.is_some() {
            return Err(ConfigError::HalfBackendClientCert);
        }
        if backend_tls.client_cert.is_some() && backend_tls.ca.is_none() {
            return Err(ConfigError::BackendClientCertWithoutCa);
        }

        let admin_text = a
            .admin_listen
            .clone()
            .or(f.admin.listen)
            .unwrap_or_else(|| "127.0.0.1:6101".to_string());
        let admin_listen = if admin_text.trim().eq_ignore_ascii_case("off") {
            None
        } else {
            let addr: SocketAddr = admin_text
                .trim()
                .parse()
                .map_err(|_| ConfigError::AdminListen(admin_text.clone()))?;
            // Port 0 (tests) picks a free port each, so only a fixed port can clash.
            if addr == listen && addr.port() != 0 {
                return Err(ConfigError::AdminSameAsListen(addr));
            }
            Some(addr)
        };
        let admin = AdminConfig {
            listen: admin_listen,
            token_file: a.admin_token_file.clone().or(f.admin.token_file),
        };

        let trusted_list = if a.trusted_proxy.is_empty() {
            f.clients.trusted_proxies.unwrap_or_default()
        } else {
            a.trusted_proxy.clone()
        };
        let clients = ClientsConfig {
            trusted_proxies: trusted_list
                .iter()
                .map(|s| s.parse::<Cidr>())
                .collect::<Result<_, _>>()
                .map_err(|source| ConfigError::Policy {
                    option: "clients.trusted_proxies",
                    source,
                })?,
            proxy_protocol: a.proxy_protocol || f.clients.proxy_protocol.unwrap_or(false),
        };
        if clients.proxy_protocol && clients.trusted_proxies.is_empty() {
            return Err(ConfigError::ProxyProtocolWithoutTrust);
        }
        let defaults = LimitsConfig::default();
        let rate = |option: &'static str, v: Option<f64>, default: f64| match v {
            None => Ok(default),
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
            Some(x) => Err(ConfigError::Rate { option, value: x }),
        };
        let abuse = LimitsConfig {
            max_sessions_per_client: a
                .max_sessions_per_client
                .or(f.limits.max_sessions_per_client)
                .unwrap_or(defaults.max_sessions_per_client),
            handshakes_per_second: rate(
                "limits.handshakes_per_second_per_client",
                a.handshakes_per_second_per_client
                    .or(f.limits.handshakes_per_second_per_client),
                defaults.handshakes_per_second,
            )?,
            handshake_burst: rate(
                "limits.handshake_burst_per_client",
                a.handshake_burst_per_client
                    .or(f.limits.handshake_burst_per_client),
                defaults.handshake_burst,
            )?,
            max_sessions_per_ticket: a
                .max_sessions_per_ticket
                .or(f.tickets.max_sessions_per_ticket)
                .unwrap_or(defaults.max_sessions_per_ticket),
            refusal_lines_per_second: a
                .log_refusals_per_second
                .or(f.log.refusals_per_second)
                .unwrap_or(defaults.refusal_lines_per_second),
        };

        let recording = recording::merge(f.recording, a)?;
        let single_use = a.single_use || f.tickets.single_use.unwrap_or(false);
        if single_use && legacy.token_source.is_some() {
            return Err(ConfigError::TokensSingleUse);
        }
        Ok(Config {
            clients,
            abuse,
            listen,
            tls,
            trust,
            verify,
            single_use,
            targets,
            connect_timeout,
            origins,
            web_dir,
            novnc_dir,
            spice_dir,
            xterm_dir,
            asciinema_dir,
            engine_origins,
            max_sessions,
            handshake_timeout,
            relay,
            grace,
            log_format,
            log_level,
            backend_tls,
            deny_list: a.deny_list.clone().or(f.tickets.deny_list),
            admin,
            legacy,
            recording,
        })
    }
}

fn parse_origins(list: &[String]) -> Result<Vec<Origin>, PolicySyntaxError> {
    list.iter().map(|s| s.parse()).collect()
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

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../packaging/consolegate.toml");
        let c = Config::from_toml(text).expect("example config parses");
        assert_eq!(c.listen.port(), 6100);
        assert!(c.tls.is_some());
        assert_eq!(c.admin.listen, Some("127.0.0.1:6101".parse().unwrap()));
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = Config::from_toml("allow_plain = true\n[tickets]\ntrust = [\"keys\"]\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:6100".parse().unwrap());
        assert_eq!(c.verify.leeway_secs, 30);
        assert_eq!(c.verify.max_lifetime_secs, 600);
        assert_eq!(c.targets, TargetPolicy::default());
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.max_sessions, 10_000);
        assert_eq!(c.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.relay.ping_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.relay.idle_timeout, None);
        assert_eq!(c.grace, Duration::from_secs(30));
        assert_eq!(c.admin.listen, Some("127.0.0.1:6101".parse().unwrap()));
        assert_eq!(c.admin.token_file, None);
        assert_eq!(c.deny_list, None);
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
        assert_eq!(c.deny_list, Some(PathBuf::from("deny.list")));
    }

    #[test]
    fn hardening_options_have_documented_defaults_and_flags_override_them() {
        let c = Config::from_toml("allow_plain = true\n[tickets]\ntrust = [\"keys\"]\n").unwrap();
        assert_eq!(c.abuse, LimitsConfig::default());
        assert_eq!(c.abuse.max_sessions_per_ticket, 2);
        assert_eq!(c.abuse.max_sessions_per_client, 100);
        assert_eq!(c.clients, ClientsConfig::default());
        let file: FileConfig = toml::from_str(
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
        assert_eq!(c.abuse.max_sessions_per_ticket, 3);
        assert_eq!(c.abuse.handshakes_per_second, 5.0);
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
        let file: FileConfig = toml::from_str(
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
        assert!(c.trust.is_empty(), "a legacy source alone is enough");
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
        assert_eq!(c.trust, vec![PathBuf::from("other")]);
        let p5901 = vec![PortRange {
            first: 5901,
            last: 5901,
        }];
        assert_eq!(c.targets.vnc_ports, p5901);
        assert_eq!(c.targets.spice_ports, p5901);
        assert!(c.targets.serial_ports.is_empty());
    }

    #[test]
    fn ports_is_the_vnc_and_spice_default_and_serial_ports_are_explicit() {
        let base = "allow_plain = true\n[tickets]\ntrust = [\"k\"]\n[targets]\n";
        let c = Config::from_toml(&format!("{base}ports = [\"5901\"]\n")).unwrap();
        assert_eq!(c.targets.vnc_ports, c.targets.spice_ports);
        assert!(c.targets.serial_ports.is_empty());
        let c = Config::from_toml(&format!(
            "{base}ports = [\"5901\"]\nspice_ports = [\"6100-6199\"]\nserial_ports = [\"7000\", \"7100-7101\"]\n"
        ))
        .unwrap();
        assert_eq!(c.targets.vnc_ports, vec!["5901".parse().unwrap()]);
        assert_eq!(c.targets.spice_ports, vec!["6100-6199".parse().unwrap()]);
        assert_eq!(c.targets.serial_ports.len(), 2);
        let err = Config::from_toml(&format!("{base}serial_ports = [\"0\"]\n")).unwrap_err();
        assert!(err.to_string().contains("targets.serial_ports"), "{err}");
        let args = ServeArgs {
            allow_plain: true,
            trust: vec![PathBuf::from("k")],
            allow_serial_port: vec!["7000".into()],
            ..ServeArgs::default()
        };
        let c = Config::merge(FileConfig::default(), &args).unwrap();
        assert_eq!(c.targets.serial_ports, vec!["7000".parse().unwrap()]);
        assert_eq!(
            c.targets,
            TargetPolicy {
                serial_ports: vec!["7000".parse().unwrap()],
                ..TargetPolicy::default()
            }
        );
        assert_eq!(
            c.spice_dir,
            PathBuf::from("web/node_modules/@spice-project/spice-html5/src")
        );
        assert_eq!(c.xterm_dir, PathBuf::from("web/node_modules/@xterm"));
    }
}

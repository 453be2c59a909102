//! The command-line layer: `consolegate serve` flags, one per file option and of the
//! same meaning, each overriding the file.
//!
//! The flags stay one flat list in the order `--help` has always shown them (tests
//! and scripts set them by name); the help line of each names its file key and
//! default in brackets, and a test checks that every file key is named here. The
//! merge of a flag with its file key happens in the section's own file
//! (`tickets.rs`, `targets.rs`, …), so adding an option means one field here and
//! one in its section.

use std::path::PathBuf;

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
    /// Time from a connection's accept for its PROXY header, TLS and every HTTP
    /// request with its body, until it becomes a session [limits.handshake_timeout; default 10s].
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
    /// Connections that have not become sessions yet (TLS, request, body, keep-alive),
    /// in all; more get a fast 503; 0 = no limit [limits.max_pending; default: a
    /// quarter of the open-file limit after a reserve, at most 4096].
    #[arg(long, value_name = "N")]
    pub max_pending: Option<usize>,
    /// Unfinished connections of one client address (IPv6: its /64; behind a trusted
    /// balancer, the client it names); more get a fast 429; 0 = no limit
    /// [limits.max_pending_per_client; default: a quarter of limits.max_pending, at most 256].
    #[arg(long, value_name = "N")]
    pub max_pending_per_client: Option<usize>,
    /// Balancer address range believed about the client address (PROXY protocol,
    /// X-Forwarded-For) and scheme (X-Forwarded-Proto); repeat [clients.trusted_proxies].
    #[arg(long, value_name = "CIDR")]
    pub trusted_proxy: Vec<String>,
    /// Trusted balancers send a PROXY protocol (v1 or v2) header first [clients.proxy_protocol].
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Sessions only through a trusted balancer: a WebSocket from any other peer is
    /// refused, so a pool member reached directly cannot be shown a replayed ticket
    /// [clients.balancer_only].
    #[arg(long)]
    pub balancer_only: bool,
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
    /// Host name the admin listener answers to besides its IP address and localhost
    /// (a scraper that reaches it by name); repeat. Other names get 421, so a
    /// DNS-rebinding page cannot read it [admin.hosts; default none].
    #[arg(long, value_name = "NAME")]
    pub admin_host: Vec<String>,
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
    /// Directory for session recordings, created 0750; turns recording on
    /// [recording.dir; default off: `rec` tickets are refused].
    #[arg(long, value_name = "DIR")]
    pub recording_dir: Option<PathBuf>,
    /// Which sessions are recorded: "ticket" (those whose ticket says rec) or "all"
    /// [recording.policy; default ticket].
    #[arg(long, value_name = "POLICY")]
    pub recording_policy: Option<String>,
    /// Keep the browser's input (keys, pointer, serial input) out of recordings, as
    /// recording.input = false does [recording.input; default true: recorded].
    #[arg(long)]
    pub recording_no_input: bool,
    /// Remove recordings older than this, e.g. 90d [recording.max_age; default off].
    #[arg(long, value_name = "DUR")]
    pub recording_max_age: Option<String>,
    /// Remove the oldest recordings while all take more than this, e.g. 200G
    /// [recording.max_size; default off].
    #[arg(long, value_name = "SIZE")]
    pub recording_max_size: Option<String>,
    /// Refuse new recorded sessions while less than this is free, e.g. 5G
    /// [recording.min_free; default 1G].
    #[arg(long, value_name = "SIZE")]
    pub recording_min_free: Option<String>,
    /// Most bytes one session may have queued for its recording's writer; a session
    /// over it is ended rather than lose bytes [recording.queue_size; default 16M].
    #[arg(long, value_name = "SIZE")]
    pub recording_queue_size: Option<String>,
}

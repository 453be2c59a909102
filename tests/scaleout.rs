//! Scale-out: two `consolegate serve` processes behind HAProxy and behind nginx, run
//! from the example configurations in `packaging/` (with loopback addresses, ports
//! and paths swapped in), as an operator would deploy them.
//!
//! Each test checks what "stateless, scales behind an ordinary balancer" promises:
//! - 100 sessions through the balancer (TLS to the balancer, a fresh ticket each, in
//!   the `ticket.<ticket>` subprotocol as the console page sends it): banner and echo
//!   work, and both proxies served some;
//! - one ticket works at either proxy directly (no shared state: the proxies run with
//!   `--single-use`, and each keeps its own record);
//! - single use across the pool: a used ticket replayed through the balancer, in any
//!   of the three forms (subprotocol, path, query), reaches the proxy that saw it and
//!   is refused `replayed`, because the shipped HTTP-mode configurations route by a
//!   hash of the ticket (TLS passthrough cannot see the ticket: not promised there);
//!   and, once that proxy has stopped, what a replay then does (the other proxy, which
//!   never saw the ticket, admits it once: the record is gone with its proxy);
//! - the proxies log the browser's address (127.0.0.7, which the clients bind to),
//!   not the balancer's (127.0.0.1) nor the one the browser forged in its own
//!   `X-Forwarded-For`: PROXY protocol v2 from HAProxy, `X-Forwarded-For` from nginx;
//! - no balancer log line (access log at the shipped format, error log, stderr) holds
//!   a ticket sent in the subprotocol; how the path and query forms fare is measured
//!   and printed (nginx also writes a `combined`-format log here, the stock format,
//!   to show that one keeps path and query tickets);
//! - SIGTERM to one proxy: its live sessions keep working through the grace period
//!   and then close with 1001, new sessions opened meanwhile all succeed on the other
//!   proxy, and the stopped proxy exits 0 (behind the HTTP-mode balancers; see
//!   [`Balancer::retries_connections_a_proxy_dropped`] for TCP mode).
//!
//! Needs `haproxy`, `nginx` and `openssl` on the PATH (tests/setup.sh installs them);
//! without them a test prints a `SKIPPED:` line, or fails under `CI=true`.
//!
//! No port is picked in advance: the proxies listen on port 0 and log where, and each
//! balancer gets a listening socket the test bound (as fd 3: HAProxy's `bind fd@3`,
//! nginx's inherited-socket `NGINX` variable, the one its binary upgrade uses).

mod common;

use common::pki::{self, Key, Pki};
use common::process::{Log, Process};
use common::*;
use consolegate::front::unix_now;
use consolegate::keys;
use consolegate::ticket::{Claims, Signer};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio::time::{sleep, timeout};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// What the console-server stand-in sends first, as a VNC server does.
const BANNER: &[u8] = b"RFB 003.008\n";
/// The address the test's browsers connect from; the balancers connect to the
/// proxies from 127.0.0.1, so seeing this one in a proxy's log proves it was told.
const CLIENT_IP: &str = "127.0.0.7";
/// What every test browser claims to be in its own `X-Forwarded-For` header.
const FORGED_CLIENT: &str = "203.0.113.9";
/// Sessions opened through each balancer in the spreading check.
const SESSIONS: usize = 100;
/// How many of them are in flight at once.
const CONCURRENCY: usize = 8;
/// The stopped proxy's drain grace (`--grace`).
const GRACE: Duration = Duration::from_secs(5);
/// Generous bound for any single step: the machine is small and shared.
const STEP: Duration = Duration::from_secs(60);
/// Tickets used and then replayed per form in the single-use check.
const REPLAYS: usize = 6;

/// How a test browser hands the proxy its ticket (the contract's "Where the ticket
/// travels").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Form {
    /// `ticket.<ticket>` next to `binary` in `Sec-WebSocket-Protocol`, to `/console`:
    /// the console page's form.
    Subprotocol,
    /// `/<ticket>`.
    Path,
    /// `/websockify?token=<ticket>`.
    Query,
}

impl Form {
    const ALL: [Form; 3] = [Form::Subprotocol, Form::Path, Form::Query];

    /// The request's path and its `Sec-WebSocket-Protocol` value.
    fn request(self, ticket: &str) -> (String, Option<String>) {
        match self {
            Form::Subprotocol => ("/console".into(), Some(format!("binary, ticket.{ticket}"))),
            Form::Path => (format!("/{ticket}"), None),
            Form::Query => (format!("/websockify?token={ticket}"), None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_behind_haproxy_share_sessions_see_the_client_and_drain_without_failures() {
    scale_out(Balancer::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_proxies_behind_haproxy_passthrough_learn_the_client_from_the_proxy_protocol() {
    scale_out(Balancer::HaproxyTlsPassthrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_behind_nginx_share_sessions_see_the_client_and_drain_without_failures() {
    scale_out(Balancer::Nginx).await;
}

/// The whole scenario against one balancer.
async fn scale_out(kind: Balancer) {
    if !tools::have(kind.programs()) {
        return;
    }
    let cluster = Arc::new(Cluster::start(kind).await);

    // 1. Sessions spread over both proxies, each seeing the real client.
    let opened = cluster.open_many(SESSIONS).await;
    let owners = cluster.owners(opened.iter().map(|(j, _)| j.as_str())).await;
    let mut per_proxy = [0usize; 2];
    let mut clients_seen = BTreeSet::new();
    for (jti, local) in &opened {
        let (proxy, client) = &owners[jti];
        per_proxy[*proxy] += 1;
        cluster.check_client(client, *local);
        clients_seen.insert(client.ip());
    }
    assert!(
        per_proxy.iter().all(|&n| n > 0),
        "{kind:?}: one proxy served every session: {per_proxy:?}"
    );

    // 2. No shared state: one ticket, served by either proxy (each its own record).
    cluster.one_ticket_works_at_either_proxy().await;

    // 3. Single use across the pool: a replay reaches the proxy that saw the ticket.
    let replays = if kind.sees_the_ticket() {
        Some(cluster.replays_reach_the_proxy_that_saw_the_ticket().await)
    } else {
        None
    };

    // 4. Drain one proxy while browsers keep coming.
    let drain = if kind.retries_connections_a_proxy_dropped() {
        cluster.drain_first_proxy().await.to_string()
    } else {
        "not checked: see Balancer::retries_connections_a_proxy_dropped".into()
    };

    // 5. A used ticket of the stopped proxy's, replayed now.
    let after_stop = match &replays {
        Some(r) if kind.retries_connections_a_proxy_dropped() => {
            cluster.replay_after_its_proxy_stopped(r).await
        }
        _ => "not checked".into(),
    };

    // 6. The balancer's logs never hold a ticket sent in the subprotocol.
    let logs = cluster.ticket_leaks();
    assert!(
        logs.access_lines >= SESSIONS,
        "{kind:?}: only {} access log lines",
        logs.access_lines
    );
    let leaked: Vec<&String> = logs
        .lines
        .iter()
        .filter(|(form, _, _)| *form == Form::Subprotocol)
        .map(|(_, _, line)| line)
        .collect();
    assert!(
        leaked.is_empty(),
        "{kind:?}: a subprotocol ticket in the balancer's logs: {leaked:#?}"
    );
    let shipped_format: Vec<&String> = logs
        .lines
        .iter()
        .filter(|(_, log, _)| *log == "access")
        .map(|(_, _, line)| line)
        .collect();
    assert!(
        shipped_format.is_empty(),
        "{kind:?}: tickets in the access log at the shipped format: {shipped_format:#?}"
    );

    println!(
        "{kind:?}: {SESSIONS} sessions through the balancer: proxy A served {}, proxy B {}; \
         client address in the proxies' logs: {clients_seen:?}; single use: {}; drain: \
         {drain}; a used ticket replayed after its proxy stopped: {after_stop}; \
         log lines holding a ticket: {}",
        per_proxy[0],
        per_proxy[1],
        replays.as_ref().map_or_else(
            || "not enforced across the pool (the balancer cannot see the ticket)".to_string(),
            ToString::to_string
        ),
        logs.summary(),
    );
}

/// The balancer under test and how it tells the proxies who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Balancer {
    /// `packaging/haproxy.cfg`: HTTP mode, TLS terminated, `X-Forwarded-For` and
    /// `X-Forwarded-Proto` to plain-ws proxies.
    Haproxy,
    /// `packaging/haproxy-tls-passthrough.cfg`: TCP mode, TLS passed through to the
    /// proxies, PROXY protocol v2 before it.
    HaproxyTlsPassthrough,
    /// `packaging/nginx.conf`: TLS terminated, `X-Forwarded-For` and
    /// `X-Forwarded-Proto` to plain-ws proxies.
    Nginx,
}

impl Balancer {
    /// The programs the scenario runs besides the proxies.
    fn programs(self) -> &'static [&'static str] {
        match self {
            Balancer::Haproxy | Balancer::HaproxyTlsPassthrough => &["haproxy", "openssl"],
            Balancer::Nginx => &["nginx", "openssl"],
        }
    }

    /// `consolegate serve` flags this balancer needs besides the common ones.
    fn proxy_flags(self, tls: &TlsFiles) -> Vec<OsString> {
        match self {
            Balancer::Haproxy | Balancer::Nginx => vec!["--allow-plain".into()],
            Balancer::HaproxyTlsPassthrough => vec![
                "--proxy-protocol".into(),
                "--tls-cert".into(),
                tls.cert().into(),
                "--tls-key".into(),
                tls.key().into(),
            ],
        }
    }

    /// Whether a connection the draining proxy dropped unanswered (it was still in the
    /// accept queue when SIGTERM closed the listener) is retried on the other proxy.
    /// In HTTP mode HAProxy (`retry-on empty-response`) and nginx
    /// (`proxy_next_upstream error`) resend the request. In TCP mode HAProxy has
    /// nothing to resend once the connection is up: such a browser sees a failed
    /// connection and must reconnect, so this test does not promise a drain without
    /// failures there.
    fn retries_connections_a_proxy_dropped(self) -> bool {
        self != Balancer::HaproxyTlsPassthrough
    }

    /// Whether the proxies speak TLS themselves.
    fn proxies_use_tls(self) -> bool {
        self == Balancer::HaproxyTlsPassthrough
    }

    /// Whether the balancer sees the ticket (HTTP mode) and routes by it.
    fn sees_the_ticket(self) -> bool {
        self != Balancer::HaproxyTlsPassthrough
    }

    /// The PROXY header carries the client's port too; `X-Forwarded-For` only the address.
    fn reports_client_port(self) -> bool {
        self == Balancer::HaproxyTlsPassthrough
    }

    /// Writes the shipped config with loopback values swapped in and starts the
    /// balancer on `listener` (which it inherits as fd 3).
    fn start(
        self,
        dir: &Path,
        listener: std::net::TcpListener,
        proxies: [u16; 2],
        tls: &TlsFiles,
    ) -> Process {
        let d = dir.display();
        let port = listener.local_addr().unwrap().port();
        let servers = [
            (
                "\n    server proxy1 10.0.0.11:6100",
                format!("\n    server proxy1 127.0.0.1:{}", proxies[0]),
            ),
            (
                "\n    server proxy2 10.0.0.12:6100",
                format!("\n    server proxy2 127.0.0.1:{}", proxies[1]),
            ),
        ];
        // Foreground, unprivileged, no chroot, logging to stderr: a child of the test.
        let haproxy_global = [
            (
                "    log /dev/log local0\n",
                "    log stderr format raw local0\n".into(),
            ),
            ("    chroot /var/lib/haproxy\n", String::new()),
            (
                "    stats socket /run/haproxy/admin.sock mode 660 level admin\n",
                String::new(),
            ),
            ("    user haproxy\n", String::new()),
            ("    group haproxy\n", String::new()),
            ("    daemon\n", String::new()),
        ];
        // HAProxy takes the inherited socket by number; nginx matches it by address.
        let (file, bind) = match self {
            Balancer::Haproxy => (
                "haproxy.cfg",
                (
                    "    bind :443 ssl crt /etc/haproxy/certs/consoles.example.com.pem",
                    format!("    bind fd@3 ssl crt {}", tls.bundle.display()),
                ),
            ),
            Balancer::HaproxyTlsPassthrough => (
                "haproxy-tls-passthrough.cfg",
                ("    bind :443\n", "    bind fd@3\n".to_string()),
            ),
            Balancer::Nginx => (
                "nginx.conf",
                (
                    "    listen 443 ssl;",
                    format!("    listen 127.0.0.1:{port} ssl;"),
                ),
            ),
        };
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging")
            .join(file);
        let text = std::fs::read_to_string(&shipped)
            .unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        let mut pairs: Vec<(&str, String)> = vec![bind];
        pairs.extend(servers);
        let path = dir.join(file);
        match self {
            Balancer::Haproxy | Balancer::HaproxyTlsPassthrough => {
                pairs.extend(haproxy_global);
                std::fs::write(&path, swap(file, &text, &pairs)).unwrap();
                let mut cmd = with_fd_3("haproxy");
                cmd.arg("-f").arg(&path).arg("-db");
                Process::spawn_with_stdin("haproxy", &mut cmd, socket_as_stdin(listener))
            }
            Balancer::Nginx => {
                pairs.extend([
                    ("user www-data;\n", String::new()),
                    ("worker_processes auto;", "worker_processes 1;".into()),
                    ("pid /run/nginx.pid;", format!("pid {d}/nginx.pid;")),
                    (
                        "error_log /var/log/nginx/error.log;",
                        format!("error_log {d}/nginx-error.log info;"),
                    ),
                    (
                        "access_log /var/log/nginx/access.log consolegate;",
                        // The packaged binary's temporary paths are under /var/lib/nginx.
                        format!(
                            "access_log {d}/nginx-access.log consolegate;\n    \
                             access_log {d}/nginx-combined.log combined;\n    \
                             client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
                             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
                             scgi_temp_path {d}/scgi;"
                        ),
                    ),
                    (
                        "ssl_certificate /etc/nginx/tls/consoles.example.com.pem;",
                        format!("ssl_certificate {};", tls.cert().display()),
                    ),
                    (
                        "ssl_certificate_key /etc/nginx/tls/consoles.example.com.key;",
                        format!("ssl_certificate_key {};", tls.key().display()),
                    ),
                ]);
                // nginx's upstream lines have no name: swap them by address.
                pairs.retain(|(from, _)| !from.contains("server proxy"));
                pairs.extend([
                    (
                        "server 10.0.0.11:6100",
                        format!("server 127.0.0.1:{}", proxies[0]),
                    ),
                    (
                        "server 10.0.0.12:6100",
                        format!("server 127.0.0.1:{}", proxies[1]),
                    ),
                ]);
                std::fs::write(&path, swap(file, &text, &pairs)).unwrap();
                let mut cmd = with_fd_3("nginx");
                cmd.env("NGINX", "3;")
                    .arg("-p")
                    .arg(format!("{d}/"))
                    .arg("-e")
                    .arg(dir.join("nginx-error.log"))
                    .arg("-c")
                    .arg(&path)
                    .args(["-g", "daemon off;"]);
                Process::spawn_with_stdin("nginx", &mut cmd, socket_as_stdin(listener))
            }
        }
    }

    /// Where the balancer's own log goes when it is not its stderr.
    fn log_file(self, dir: &Path) -> Option<PathBuf> {
        match self {
            Balancer::Haproxy | Balancer::HaproxyTlsPassthrough => None,
            Balancer::Nginx => Some(dir.join("nginx-error.log")),
        }
    }

    /// The balancer's access log: HAProxy's goes to stderr here (`log stderr`).
    fn access_log_file(self, dir: &Path) -> Option<PathBuf> {
        match self {
            Balancer::Haproxy | Balancer::HaproxyTlsPassthrough => None,
            Balancer::Nginx => Some(dir.join("nginx-access.log")),
        }
    }

    /// Other log files the balancer writes here, by name: nginx's error log and the
    /// stock `combined` access log the test adds.
    fn other_log_files(self, dir: &Path) -> Vec<(&'static str, PathBuf)> {
        match self {
            Balancer::Haproxy | Balancer::HaproxyTlsPassthrough => Vec::new(),
            Balancer::Nginx => vec![
                ("error", dir.join("nginx-error.log")),
                ("combined", dir.join("nginx-combined.log")),
            ],
        }
    }
}

/// `program` run through bash, which moves its stdin (the listening socket) to fd 3
/// and gives it /dev/null as stdin instead.
fn with_fd_3(program: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "exec 3<&0 </dev/null; exec \"$0\" \"$@\"", program]);
    cmd
}

fn socket_as_stdin(listener: std::net::TcpListener) -> Stdio {
    Stdio::from(OwnedFd::from(listener))
}

/// Replaces each `from` (which must occur exactly once, so the test notices when the
/// shipped file changes under it) with its `to`.
fn swap(name: &str, text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        let n = out.matches(from).count();
        assert_eq!(
            n, 1,
            "{name}: expected {from:?} exactly once, found {n} times"
        );
        out = out.replace(from, to);
    }
    out
}

/// Two proxies, a console-server stand-in, a balancer, and what clients need.
struct Cluster {
    kind: Balancer,
    /// Declared first so it is dropped (killed) before the proxies it talks to.
    balancer: Process,
    /// Proxy A (index 0) and proxy B (index 1).
    proxies: Vec<ServeProcess>,
    proxy_ports: [u16; 2],
    balancer_port: u16,
    console: SocketAddr,
    signer: Signer,
    tls_client: Arc<rustls::ClientConfig>,
    /// Every ticket sent through the balancer, with its form, to look for in its logs.
    sent: std::sync::Mutex<Vec<(Form, String)>>,
    /// Keys, certificates and configs; removed after the processes are gone.
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(kind: Balancer) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = dir.path().join("keys");
        std::fs::create_dir(&key_dir).unwrap();
        keys::generate(&key_dir, "engine").unwrap();
        let signer = Signer::new(keys::load_signing_key(&key_dir.join("engine.key")).unwrap());
        let tls = TlsFiles::make();
        let console = echo_target_with_banner(BANNER).await;

        let mut args = kind.proxy_flags(&tls);
        args.extend(["--trust".into(), key_dir.clone().into_os_string()]);
        args.extend(
            [
                "--allow-port",
                &console.port().to_string(),
                "--trusted-proxy",
                "127.0.0.1/32",
                // Every test browser shares one address; per-client limits are not
                // this test's subject (tests/hardening.rs has them).
                "--handshakes-per-second-per-client",
                "0",
                "--grace",
                &format!("{}s", GRACE.as_secs()),
                // Rule 7 per proxy: the balancer routes each ticket to one of them.
                "--single-use",
            ]
            .map(OsString::from),
        );
        let proxies = vec![
            ServeProcess::start("proxy A", &args, None).await,
            ServeProcess::start("proxy B", &args, None).await,
        ];
        let proxy_ports = [proxies[0].addr.port(), proxies[1].addr.port()];

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let balancer_port = listener.local_addr().unwrap().port();
        let mut balancer = kind.start(dir.path(), listener, proxy_ports, &tls);
        balancer.log_file = kind.log_file(dir.path());
        let cluster = Cluster {
            kind,
            balancer,
            proxies,
            proxy_ports,
            balancer_port,
            console,
            signer,
            tls_client: tls.client_config(),
            sent: std::sync::Mutex::new(Vec::new()),
            dir,
        };
        // The socket accepts from the start (the kernel queues connections); the
        // balancer is ready when a TLS handshake through it completes.
        wait_for(&format!("{kind:?} to answer TLS"), STEP, || {
            cluster.balancer.assert_running();
            let cluster = &cluster;
            async move {
                let connected = cluster.connect_as_browser(cluster.balancer_port, true);
                connected.await.ok()
            }
        })
        .await;
        cluster
    }

    /// The balancer's access log lines so far.
    fn balancer_access_log(&self) -> Vec<String> {
        match self.kind.access_log_file(self.dir.path()) {
            Some(f) => std::fs::read_to_string(&f)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
                .lines()
                .map(String::from)
                .collect(),
            None => self.balancer.log.lines(),
        }
    }

    /// A fresh ticket for the console server, with `jti` to find it in the logs.
    fn ticket(&self, jti: &str) -> String {
        let claims = Claims {
            sub: Some("alice".into()),
            jti: Some(jti.into()),
            iat: Some(unix_now()),
            ..Claims::new(
                self.console.ip().to_string(),
                self.console.port(),
                unix_now() + 120,
            )
        };
        self.signer.sign(&claims)
    }

    /// A session through the balancer (TLS, from the client address, the ticket in the
    /// subprotocol): banner and echo checked. Returns the session, its ticket's jti and
    /// the client's own address.
    async fn open_through_balancer(&self) -> Result<Opened<ClientStream>, String> {
        let jti = keys::random_jti();
        let ticket = self.ticket(&jti);
        self.open_through_balancer_as(Form::Subprotocol, &ticket, &jti)
            .await
    }

    /// The same with `ticket` (whose jti is `jti`) in `form`.
    async fn open_through_balancer_as(
        &self,
        form: Form,
        ticket: &str,
        jti: &str,
    ) -> Result<Opened<ClientStream>, String> {
        let attempt = async {
            let (mut ws, local) = self
                .handshake_through_balancer(form, ticket)
                .await
                .map_err(|(status, body)| format!("HTTP {status}: {body}"))?;
            expect_banner_and_echo(&mut ws, jti).await?;
            Ok(Opened {
                ws,
                jti: jti.to_string(),
                local,
            })
        };
        timeout(STEP, attempt)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
            .map_err(|e: String| format!("session {jti} ({form:?}): {e}"))
    }

    /// The WebSocket handshake through the balancer as a browser makes it; a refusal
    /// is its status and body (status 0: no HTTP answer).
    async fn handshake_through_balancer(
        &self,
        form: Form,
        ticket: &str,
    ) -> Result<(WebSocketStream<ClientStream>, SocketAddr), (u16, String)> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((form, ticket.to_string()));
        let (tls, local) = self
            .connect_as_browser(self.balancer_port, true)
            .await
            .map_err(|e| (0, e))?;
        let (path, protocols) = form.request(ticket);
        let mut request = format!("wss://localhost:{}{path}", self.balancer_port)
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        // The console page came from the balancer's name, over https: the proxy
        // must see that through the balancer to pass its Origin check.
        let origin = format!("https://localhost:{}", self.balancer_port);
        headers.insert("Origin", origin.parse().unwrap());
        // A browser claiming another address: the proxies must not believe it.
        headers.insert("X-Forwarded-For", FORGED_CLIENT.parse().unwrap());
        if let Some(p) = protocols {
            headers.insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        match tokio_tungstenite::client_async(request, tls).await {
            Ok((ws, _)) => Ok((ws, local)),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .unwrap_or_default();
                Err((resp.status().as_u16(), body))
            }
            Err(e) => Err((0, format!("WebSocket handshake: {e}"))),
        }
    }

    /// For each form, `REPLAYS` single-use tickets: each opens a session through the
    /// balancer, then is replayed through it in every form and refused `replayed` by
    /// the proxy that saw it. Without routing by the ticket about half the replays
    /// would reach the other proxy and open a second session.
    async fn replays_reach_the_proxy_that_saw_the_ticket(&self) -> Replays {
        let mut used = Vec::new();
        for form in Form::ALL {
            for _ in 0..REPLAYS {
                let jti = keys::random_jti();
                let ticket = self.ticket(&jti);
                let mut s = self
                    .open_through_balancer_as(form, &ticket, &jti)
                    .await
                    .unwrap_or_else(|e| panic!("{:?}: first use: {e}", self.kind));
                close_politely(&mut s.ws).await;
                for replay in Form::ALL {
                    let outcome = timeout(STEP, self.handshake_through_balancer(replay, &ticket))
                        .await
                        .expect("the replay answered in time");
                    match outcome {
                        Ok(_) => panic!(
                            "{:?}: a single-use ticket used as {form:?} and replayed as \
                             {replay:?} opened a second session",
                            self.kind
                        ),
                        Err((status, body)) => assert!(
                            status == 403 && body.contains("already used"),
                            "{:?}: a ticket used as {form:?}, replayed as {replay:?}: \
                             HTTP {status} {body}",
                            self.kind
                        ),
                    }
                }
                used.push((jti, ticket));
            }
        }
        let owners = self.owners(used.iter().map(|(j, _)| j.as_str())).await;
        let mut per_proxy = [0usize; 2];
        for (jti, _) in &used {
            per_proxy[owners[jti].0] += 1;
        }
        Replays {
            refused: used.len() * Form::ALL.len(),
            per_proxy,
            tickets: used
                .into_iter()
                .map(|(jti, ticket)| (owners[&jti].0, jti, ticket))
                .collect(),
        }
    }

    /// Proxy A has stopped (the drain): one of the tickets it used, replayed through
    /// the balancer, reaches B, which never saw it. What happens is the outcome.
    async fn replay_after_its_proxy_stopped(&self, replays: &Replays) -> String {
        let Some((_, jti, ticket)) = replays.tickets.iter().find(|(p, _, _)| *p == 0) else {
            return "no ticket of proxy A's to replay".into();
        };
        let outcome = self
            .open_through_balancer_as(Form::Subprotocol, ticket, jti)
            .await;
        match outcome {
            Ok(mut s) => {
                close_politely(&mut s.ws).await;
                wait_until("the replay's session in proxy B's log", STEP, || {
                    opened_sessions(&self.proxies[1].process.log)
                        .iter()
                        .any(|(j, _)| j == jti)
                })
                .await;
                "admitted once by proxy B, which never saw it (the record went with A)".into()
            }
            Err(e) => format!("refused: {e}"),
        }
    }

    /// Which sent tickets appear in which of the balancer's logs.
    fn ticket_leaks(&self) -> Leaks {
        let mut logs: Vec<(&'static str, Vec<String>)> =
            vec![("access", self.balancer_access_log())];
        if self.kind.access_log_file(self.dir.path()).is_some() {
            logs.push(("stderr", self.balancer.log.lines()));
        }
        for (name, file) in self.kind.other_log_files(self.dir.path()) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            logs.push((name, text.lines().map(String::from).collect()));
        }
        // Each ticket under the URL form it was sent in, if any (replays send a ticket
        // first used in the subprotocol in a URL too): Subprotocol means "only ever
        // in the subprotocol".
        let mut forms: HashMap<String, Form> = HashMap::new();
        for (form, ticket) in self.sent.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let f = forms.entry(ticket.clone()).or_insert(*form);
            *f = (*f).max(*form);
        }
        let mut lines = Vec::new();
        for (ticket, form) in &forms {
            // The claims segment is unique to each ticket (its jti).
            let Some(claims) = ticket.split('.').nth(1) else {
                continue;
            };
            for (name, text) in &logs {
                for line in text.iter().filter(|l| l.contains(claims)) {
                    lines.push((*form, *name, line.clone()));
                }
            }
        }
        Leaks {
            access_lines: logs[0].1.len(),
            sent: forms.into_values().collect(),
            lines,
        }
    }

    /// A connection from [`CLIENT_IP`], as a browser elsewhere would make, with TLS
    /// (trusting the test's CA) when `tls`. Also returns the browser's own address.
    async fn connect_as_browser(
        &self,
        port: u16,
        tls: bool,
    ) -> Result<(ClientStream, SocketAddr), String> {
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(format!("{CLIENT_IP}:0").parse().unwrap())
            .map_err(|e| format!("bind {CLIENT_IP}: {e}"))?;
        let tcp = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .map_err(|e| format!("connect to port {port}: {e}"))?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        if !tls {
            return Ok((Box::new(tcp), local));
        }
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(self.tls_client.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to port {port}: {e}"))?;
        Ok((Box::new(stream), local))
    }

    /// `n` sessions through the balancer, `CONCURRENCY` at a time, each closed after
    /// its echo. Every one must succeed; returns their jti and client address.
    async fn open_many(&self, n: usize) -> Vec<(String, SocketAddr)> {
        let results: Vec<Result<(String, SocketAddr), String>> = futures_util::stream::iter(0..n)
            .map(|_| async {
                let mut s = self.open_through_balancer().await?;
                close_politely(&mut s.ws).await;
                Ok((s.jti, s.local))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "{:?}: {} of {n} sessions failed: {failed:#?}",
            self.kind,
            failed.len()
        );
        results.into_iter().map(Result::unwrap).collect()
    }

    /// Which proxy (0 = A, 1 = B) opened each session, and the client it logged;
    /// waits for the log lines (read from the proxies' stderr as they come).
    async fn owners<'a>(
        &self,
        jtis: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, (usize, SocketAddr)> {
        let wanted: BTreeSet<&str> = jtis.into_iter().collect();
        let what = format!(
            "{:?}: {} sessions in the proxies' logs",
            self.kind,
            wanted.len()
        );
        wait_for(&what, STEP, || {
            let mut found = HashMap::new();
            for (i, p) in self.proxies.iter().enumerate() {
                for (jti, client) in opened_sessions(&p.process.log) {
                    if wanted.contains(jti.as_str()) {
                        let earlier = found.insert(jti.clone(), (i, client));
                        assert!(earlier.is_none(), "session {jti} opened twice");
                    }
                }
            }
            std::future::ready((found.len() == wanted.len()).then_some(found))
        })
        .await
    }

    /// The proxy logged the browser's address, not the balancer's, nor the one the
    /// browser claimed.
    fn check_client(&self, logged: &SocketAddr, local: SocketAddr) {
        let client_ip: IpAddr = CLIENT_IP.parse().unwrap();
        assert_eq!(
            logged.ip(),
            client_ip,
            "{:?}: the proxy logged {logged}, not the browser's address",
            self.kind
        );
        if self.kind.reports_client_port() {
            assert_eq!(
                *logged, local,
                "{:?}: the client's port was lost",
                self.kind
            );
        }
    }

    /// The same ticket opens a session at proxy A and at proxy B, directly (from the
    /// client address, which the proxies do not trust: no PROXY header expected).
    async fn one_ticket_works_at_either_proxy(&self) {
        let jti = keys::random_jti();
        let ticket = self.ticket(&jti);
        for (port, name) in self.proxy_ports.iter().zip(["A", "B"]) {
            let attempt = async {
                let tls = self.kind.proxies_use_tls();
                let (stream, _) = self.connect_as_browser(*port, tls).await?;
                let scheme = if tls { "wss" } else { "ws" };
                let url = format!("{scheme}://localhost:{port}/{ticket}");
                let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
                    .await
                    .map_err(|e| format!("WebSocket handshake: {e}"))?;
                expect_banner_and_echo(&mut ws, &jti).await?;
                close_politely(&mut ws).await;
                Ok::<_, String>(())
            };
            let outcome = timeout(STEP, attempt)
                .await
                .unwrap_or(Err("timed out".into()));
            if let Err(e) = outcome {
                panic!("the ticket used at proxy {name} directly: {e}");
            }
        }
        wait_until("the shared ticket's sessions in both logs", STEP, || {
            self.proxies.iter().all(|p| {
                opened_sessions(&p.process.log)
                    .iter()
                    .any(|(j, _)| *j == jti)
            })
        })
        .await;
    }

    /// SIGTERM to proxy A with sessions live on both, while new sessions keep coming.
    async fn drain_first_proxy(self: &Arc<Self>) -> DrainOutcome {
        // Long-lived sessions until each proxy holds some (leastconn alternates).
        let mut held: Vec<(Opened<ClientStream>, usize)> = Vec::new();
        for _ in 0..40 {
            let on = |p: usize| held.iter().filter(|(_, o)| *o == p).count();
            if on(0) >= 3 && on(1) >= 2 {
                break;
            }
            let s = self.open_through_balancer().await.unwrap();
            let owner = self.owners([s.jti.as_str()]).await[&s.jti].0;
            held.push((s, owner));
        }
        let (on_a, on_b): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, o)| *o == 0);
        assert!(
            on_a.len() >= 3 && on_b.len() >= 2,
            "{:?}: sessions did not spread: {} on A, {} on B",
            self.kind,
            on_a.len(),
            on_b.len()
        );

        let sigterm = Instant::now();
        // SIGTERM, as systemd stops the service.
        self.proxies[0].signal("TERM");
        self.proxies[0]
            .process
            .wait_for_event("the drain to begin", |v| {
                v["message"] == "shutting down: draining sessions"
            })
            .await;

        // A's live sessions: still relaying during the grace, then closed 1001.
        let closes: Vec<_> = on_a
            .into_iter()
            .map(|(mut s, _)| {
                tokio::spawn(async move {
                    echo_once(&mut s.ws, b"still here during the drain").await?;
                    let (code, _) = try_close_of(&mut s.ws).await?;
                    Ok::<_, String>((code, sigterm.elapsed()))
                })
            })
            .collect();

        // Meanwhile browsers keep opening sessions, two at a time, until past the grace.
        let cluster = self;
        let until = sigterm + GRACE + Duration::from_secs(1);
        let openers: Vec<_> = (0..2)
            .map(|_| {
                let c = cluster.clone();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    while Instant::now() < until {
                        let r = c.open_through_balancer().await;
                        out.push(match r {
                            Ok(mut s) => {
                                close_politely(&mut s.ws).await;
                                Ok((s.jti, s.local))
                            }
                            Err(e) => Err(e),
                        });
                        // Paced: browsers arriving, not a flood.
                        sleep(Duration::from_millis(100)).await;
                    }
                    out
                })
            })
            .collect();
        let mut new = Vec::new();
        for o in openers {
            new.extend(o.await.unwrap());
        }
        let failed: Vec<&String> = new.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "{:?}: {} of {} sessions opened during the drain failed: {failed:#?}",
            cluster.kind,
            failed.len(),
            new.len()
        );
        let new: Vec<(String, SocketAddr)> = new.into_iter().map(Result::unwrap).collect();
        assert!(
            new.len() >= 4,
            "too few sessions tried during the drain: {}",
            new.len()
        );
        let owners = cluster.owners(new.iter().map(|(j, _)| j.as_str())).await;
        for (jti, local) in &new {
            let (proxy, client) = &owners[jti];
            assert_eq!(*proxy, 1, "session {jti} went to the draining proxy");
            cluster.check_client(client, *local);
        }

        let mut close_after = Duration::ZERO;
        let closed_on_a = closes.len();
        for c in closes {
            let (code, after) = timeout(STEP, c)
                .await
                .expect("A's session closed in time")
                .unwrap()
                .unwrap_or_else(|e| panic!("a session on the draining proxy: {e}"));
            assert_eq!(code, 1001, "closed after {after:?}");
            assert!(
                after >= GRACE - Duration::from_millis(500),
                "a session on A was closed {after:?} after SIGTERM, before the {GRACE:?} grace"
            );
            close_after = close_after.max(after);
        }
        let exit_status = cluster.proxies[0].wait_exit(STEP).await;
        cluster.balancer.assert_running();
        assert!(
            exit_status.success(),
            "proxy A after SIGTERM: {exit_status}"
        );

        // B's sessions never noticed.
        for (mut s, _) in on_b {
            echo_once(&mut s.ws, b"B is unaffected")
                .await
                .unwrap_or_else(|e| panic!("a session on proxy B after A stopped: {e}"));
            close_politely(&mut s.ws).await;
        }
        DrainOutcome {
            new_sessions: new.len(),
            closed_on_a,
            close_after,
            exit_status,
        }
    }
}

/// What the drain showed, for the summary line.
struct DrainOutcome {
    new_sessions: usize,
    closed_on_a: usize,
    close_after: Duration,
    exit_status: ExitStatus,
}

impl std::fmt::Display for DrainOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} new sessions during A's {} s grace, all served by B, none failed; \
             A's {} live sessions closed 1001 after {:.1} s; A exited with {}",
            self.new_sessions,
            GRACE.as_secs(),
            self.closed_on_a,
            self.close_after.as_secs_f64(),
            self.exit_status,
        )
    }
}

/// The single-use check's result.
struct Replays {
    /// Replays refused.
    refused: usize,
    /// Tickets first used at proxy A and at proxy B.
    per_proxy: [usize; 2],
    /// (proxy that used it, jti, ticket) of every ticket used.
    tickets: Vec<(usize, String, String)>,
}

impl std::fmt::Display for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tickets used ({} at A, {} at B), {} replays in every form all refused \
             `replayed` by the proxy that saw them",
            self.tickets.len(),
            self.per_proxy[0],
            self.per_proxy[1],
            self.refused
        )
    }
}

/// Balancer log lines holding a ticket: (the form it was sent in, the log, the line).
/// A ticket sent in a URL form at least once counts under that form (`Query` over
/// `Path` when both).
struct Leaks {
    access_lines: usize,
    /// The form of every ticket sent.
    sent: Vec<Form>,
    lines: Vec<(Form, &'static str, String)>,
}

impl Leaks {
    /// Tickets sent only in the subprotocol, and tickets sent in a URL too: how many,
    /// and the lines holding one in each log.
    fn summary(&self) -> String {
        let part = |label: &str, url: bool| {
            let sent = self
                .sent
                .iter()
                .filter(|f| (**f != Form::Subprotocol) == url)
                .count();
            let mut per_log: std::collections::BTreeMap<&str, usize> = Default::default();
            for (_, log, _) in self
                .lines
                .iter()
                .filter(|(f, _, _)| (*f != Form::Subprotocol) == url)
            {
                *per_log.entry(log).or_default() += 1;
            }
            format!("{label} ({sent} tickets): {per_log:?}")
        };
        format!(
            "{}; {}",
            part("only in the subprotocol", false),
            part("in a URL too", true)
        )
    }
}

/// A browser's connection: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type ClientStream = Box<dyn Io>;

/// A session whose banner and first echo came back.
struct Opened<S> {
    ws: WebSocketStream<S>,
    jti: String,
    /// The browser's own address (what the proxy should log).
    local: SocketAddr,
}

/// The console server's banner arrives, then an echo of `payload` comes back.
async fn expect_banner_and_echo<S>(ws: &mut WebSocketStream<S>, payload: &str) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let banner = read_binary(ws, BANNER.len()).await?;
    if banner != BANNER {
        return Err(format!("banner {:?}", String::from_utf8_lossy(&banner)));
    }
    echo_once(ws, payload.as_bytes()).await
}

/// A throwaway CA and a certificate for `localhost` / 127.0.0.1 signed by it, made
/// with openssl: what the balancer presents to browsers.
struct TlsFiles {
    pki: Pki,
    /// Certificate then key in one file, as HAProxy's `crt` wants.
    bundle: PathBuf,
}

impl TlsFiles {
    fn make() -> TlsFiles {
        let pki = Pki::new();
        pki.self_signed("ca", "consolegate scale-out test CA", Key::Ec, pki::CA);
        let names = pki::server_extensions("DNS:localhost,IP:127.0.0.1");
        pki.issue("balancer", "ca", "localhost", Key::Ec, &names);
        let bundle = pki.path("balancer-bundle.pem");
        let text = [
            std::fs::read(pki.cert("balancer")).unwrap(),
            std::fs::read(pki.key("balancer")).unwrap(),
        ]
        .concat();
        std::fs::write(&bundle, text).unwrap();
        TlsFiles { pki, bundle }
    }

    fn cert(&self) -> PathBuf {
        self.pki.cert("balancer")
    }

    fn key(&self) -> PathBuf {
        self.pki.key("balancer")
    }

    /// A client that trusts only the throwaway CA.
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.pki.cert("ca")).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(cfg)
    }
}

/// jti and logged client of every "session opened" line in a proxy's log.
fn opened_sessions(log: &Log) -> Vec<(String, SocketAddr)> {
    log.lock()
        .events
        .iter()
        .filter(|v| v["message"] == "session opened")
        .filter_map(|v| {
            let jti = v["jti"].as_str()?.to_string();
            let client = v["client"].as_str()?.parse().ok()?;
            Some((jti, client))
        })
        .collect()
}

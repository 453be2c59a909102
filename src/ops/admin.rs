//! The admin listener: health, metrics and session control over plain HTTP on a
//! separate address (loopback by default), apart from the browsers' listener so a
//! firewall rule or a balancer never exposes it by accident.
//!
//! | endpoint | auth | answer |
//! | --- | --- | --- |
//! | `GET /healthz` | none | 200 `ok` while the process serves requests (liveness) |
//! | `GET /readyz` | none | 200 `ready`; 503 with the reason while draining or without keys |
//! | `GET /metrics` | none | OpenMetrics text ([`super::metrics`]) |
//! | `GET /sessions` | bearer | JSON array of live sessions with their byte counts so far |
//! | `POST /sessions/kill` | bearer | `{"id":N}`, `{"jti":"…"}` or `{"sub":"…"}`, optional `"reason"` → `{"killed":n}` |
//! | `GET /recordings` | bearer | JSON array of session recordings ([`super::recordings`]) |
//! | `GET /recordings/<name>` | bearer | one recording file, streamed |
//!
//! Auth model: health and metrics reveal nothing secret and stay open to whoever can
//! reach the listener (loopback by default). Listing and killing sessions needs
//! `Authorization: Bearer <token>`, the token read from `[admin] token_file` (compared
//! in constant time, as SHA-256 digests so the length does not leak either). Without a
//! token file, session control is off (403), so a default install exposes no
//! session data, not even to local users. The token file is re-read on SIGHUP.
//!
//! [`super::client`] is the small HTTP/1.1 client the `sessions` and `kill`
//! subcommands use.
//!
//! What any local user (or a web page in a browser on the host) can do to it is
//! bounded:
//! - **DNS rebinding.** A page whose own name an attacker re-points at 127.0.0.1 makes
//!   the browser send `Host: its.name:6101`. The listener answers only requests whose
//!   `Host` is an IP address, `localhost` (or `*.localhost`), or a name in `[admin]
//!   hosts`; others get 421. An IP address in `Host` cannot come from a rebinding
//!   page (the trick needs the attacker's name), and the port is not checked, so a
//!   forwarded port still works.
//! - **Squatting the slots.** At most [`MAX_CONNECTIONS`] connections are served at
//!   once. When a new one finds them all taken, the connection that has waited
//!   longest without sending a complete request head is closed to make room; only
//!   when every slot is serving a request is the new one answered 503 at once. A
//!   request head must arrive within [`HEADER_TIMEOUT`] of the accept. So idle or
//!   trickling connections can never keep `/healthz` from answering.
//! - **Oversized heads** get hyper's 431 above [`MAX_HEAD`]; refusals are logged at
//!   most [`LOG_PER_SECOND`] times a second per kind.
//!
//! The listener knows a running proxy only through [`Watched`], so this room depends
//! on the session registry, the metrics and the recorder, never on the front that
//! implements it.

use super::metrics::Metrics;
use super::recordings;
use crate::limits::RefusalLog;
use crate::recording::Recorder;
use crate::relay::Stop;
use crate::session::{SessionInfo, Sessions};
use crate::util::accept::{Acceptor, TurnAway};
use crate::util::http::{json, raw_text, text};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

/// Largest admin request body (a kill request is a few dozen bytes).
const MAX_BODY: usize = 4 << 10;
/// Concurrent admin connections: a scraper, an operator or two; more is a runaway
/// script that must not starve the proxy.
const MAX_CONNECTIONS: usize = 32;
/// Time from the accept for an admin request's head; local tools send it at once.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest admin request head (hyper answers 431 above it): a few short headers.
const MAX_HEAD: usize = 16 << 10;
/// How long a new connection waits for the slot of the connection closed for it.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// Admin refusal log lines (421, 401) per second and kind; the rest are counted.
const LOG_PER_SECOND: u32 = 10;
/// The answer when every slot is serving a request.
const BUSY: &str = "the admin listener is busy with other requests; try again";
/// Time for a whole admin exchange (headers, body, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for a recording download, which can be gigabytes.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);
/// Shortest token accepted: a guessable token would make the kill switch anyone's.
const MIN_TOKEN: usize = 16;

/// Why the admin token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read admin token file {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "admin token file {} is readable by others (mode {mode:04o}); run `chmod 640 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("admin token file {} must hold one token of at least {MIN_TOKEN} characters (e.g. `openssl rand -hex 32`)", path.display())]
    TooShort { path: PathBuf },
}

/// Reads a token file: the first line, trimmed. Used by the server and the client.
pub fn read_token(path: &Path) -> Result<String, TokenError> {
    let read_err = |cause| TokenError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < MIN_TOKEN {
        return Err(TokenError::TooShort {
            path: path.to_path_buf(),
        });
    }
    Ok(token)
}

/// Reads the server's token file, refusing one that others can read: the token ends
/// sessions on every console of the host. Group access is allowed, for an operators'
/// group using `consolegate sessions`.
fn load_token(path: &Path) -> Result<[u8; 32], TokenError> {
    let meta = std::fs::metadata(path).map_err(|cause| TokenError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(TokenError::Permissions {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(Sha256::digest(read_token(path)?.as_bytes()).into())
}

/// One session as `GET /sessions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionView {
    pub id: u64,
    pub client: SocketAddr,
    pub target: SocketAddr,
    pub sub: Option<String>,
    pub jti: Option<String>,
    pub kid: String,
    /// Start time, RFC 3339 UTC.
    pub started: String,
    /// Start time, Unix seconds.
    pub started_unix: i64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl From<&SessionInfo> for SessionView {
    fn from(i: &SessionInfo) -> Self {
        let started_unix = i
            .started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let started = time::OffsetDateTime::from_unix_timestamp(started_unix)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        SessionView {
            id: i.id,
            client: i.client,
            target: i.target,
            sub: i.sub.clone(),
            jti: i.jti.clone(),
            kid: i.kid.clone(),
            started,
            started_unix,
            bytes_up: i.stats.up(),
            bytes_down: i.stats.down(),
        }
    }
}

/// The body of `POST /sessions/kill`: exactly one of `id`, `jti`, `sub`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Sent to the browser as the close reason (cut to 123 bytes); empty: "session
    /// ended by an operator".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the admin listener reads and steers of a running proxy.
pub trait Watched: Send + Sync + 'static {
    /// The live sessions, to list and to stop.
    fn sessions(&self) -> &Sessions;
    /// The proxy's metrics, rendered at `/metrics`.
    fn metrics(&self) -> &Metrics;
    /// True once shutdown began: `/readyz` says "draining".
    fn is_draining(&self) -> bool;
    /// True while at least one trusted key is loaded: `/readyz` says ready.
    fn has_keys(&self) -> bool;
    /// The bearer token file from `[admin] token_file`; `None`: session control off.
    fn admin_token_file(&self) -> Option<&Path>;
    /// Session recording: `/recordings` lists and serves its files.
    fn recorder(&self) -> &Arc<Recorder>;
    /// Host names the listener answers to besides IP addresses and `localhost`
    /// (`[admin] hosts`, lower case).
    fn admin_hosts(&self) -> &[String] {
        &[]
    }
    /// The admin listener is bound to `addr`: the proxy must refuse tickets naming it.
    fn listening(&self, _addr: SocketAddr) {}
}

/// The admin listener's state.
pub struct Admin {
    proxy: Arc<dyn Watched>,
    token_file: Option<PathBuf>,
    /// SHA-256 of the token; `None`: session control is off.
    token: RwLock<Option<[u8; 32]>>,
    /// What a request's `Host` may name besides an IP address and `localhost`.
    hosts: Vec<String>,
    /// One permit per connection served.
    connections: Arc<Semaphore>,
    /// Connections that have not sent a request yet, oldest first, each with the
    /// sender that closes it: the first to go when the slots are all taken.
    waiting: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
    /// Answers connections that find every slot serving a request.
    turn_away: TurnAway,
    /// Caps the refusal log lines (421, 401) a script or a page can cause.
    refusal_log: RefusalLog,
}

impl Admin {
    /// Reads the token file named in the proxy's configuration, if any.
    pub fn new(proxy: Arc<dyn Watched>) -> Result<Arc<Admin>, TokenError> {
        let token_file = proxy.admin_token_file().map(Path::to_path_buf);
        let token = token_file.as_deref().map(load_token).transpose()?;
        Ok(Arc::new(Admin {
            hosts: proxy.admin_hosts().to_vec(),
            proxy,
            token_file,
            token: RwLock::new(token),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            waiting: Mutex::new(VecDeque::new()),
            turn_away: TurnAway::default(),
            refusal_log: RefusalLog::new(LOG_PER_SECOND),
        }))
    }

    /// SIGHUP: re-reads the token file (rotation).
    ///
    /// A token file that cannot be read (removed, emptied, readable by others) turns
    /// session control off until it loads: a rotated-out token never keeps working
    /// because its replacement is broken. `None` when no token file is configured.
    pub fn reload(&self) -> Option<Result<(), TokenError>> {
        let path = self.token_file.as_ref()?;
        let loaded = load_token(path);
        let mut token = self.token.write().unwrap_or_else(|p| p.into_inner());
        *token = loaded.as_ref().ok().copied();
        Some(loaded.map(|_| ()))
    }

    /// Serves admin requests until the task is dropped (it outlives the drain, so
    /// `/readyz` can say "draining" while sessions finish).
    /// The proxy learns the listener's address at once, before the first poll.
    pub fn serve(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> impl std::future::Future<Output = ()> + Send {
        if let Ok(addr) = listener.local_addr() {
            self.proxy.listening(addr);
        }
        async move {
            let mut listener = Acceptor::new(listener, "admin");
            let mut next_id = 0u64;
            loop {
                let (stream, peer) = listener.accept().await;
                let Some(permit) = self.slot().await else {
                    let busy = raw_text(StatusCode::SERVICE_UNAVAILABLE, Some(1), BUSY);
                    self.turn_away.send(stream, Some(busy));
                    continue;
                };
                next_id += 1;
                let id = next_id;
                let (evict, evicted) = oneshot::channel();
                self.lock_waiting().push_back((id, evict));
                let admin = self.clone();
                tokio::spawn(async move {
                    admin.connection(stream, peer, id, evicted).await;
                    drop(permit);
                });
            }
        }
    }

    fn lock_waiting(&self) -> MutexGuard<'_, VecDeque<(u64, oneshot::Sender<()>)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connection `id` sent a request or ended: it is no longer one to close.
    fn not_waiting(&self, id: u64) {
        self.lock_waiting().retain(|(i, _)| *i != id);
    }

    /// A slot for a new connection: a free one, or the one of the connection that has
    /// waited longest without sending a request, closed for it. `None` when every
    /// slot is serving a request.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            return Some(permit);
        }
        let (id, evict) = self.lock_waiting().pop_front()?;
        debug!(
            connection = id,
            "admin connection without a request closed to make room"
        );
        let _ = evict.send(());
        tokio::time::timeout(EVICTION_WAIT, self.connections.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// One admin connection, `id` in the waiting list until its request arrives;
    /// `evicted` fires when a new connection needs its slot before then.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        id: u64,
        mut evicted: oneshot::Receiver<()>,
    ) {
        let admin = self.clone();
        // Set when the answer is a recording download, which gets longer to stream.
        let downloading = Arc::new(AtomicBool::new(false));
        // Set when the request arrived: the connection may no longer be closed for
        // another.
        let requested = Arc::new(AtomicBool::new(false));
        let flag = downloading.clone();
        let started = requested.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let admin = admin.clone();
            let flag = flag.clone();
            started.store(true, Ordering::SeqCst);
            admin.not_waiting(id);
            async move {
                if let Err(resp) = admin.check_host(&req, peer) {
                    return Ok::<_, Infallible>(resp.map(Either::Left));
                }
                if recordings::handles(req.uri().path()) {
                    if req.method() != Method::GET {
                        let resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                        return Ok(resp.map(Either::Left));
                    }
                    if let Err(resp) = admin.authorize(&req, peer) {
                        return Ok(resp.map(Either::Left));
                    }
                    let recorder = admin.proxy.recorder().clone();
                    let (resp, download) =
                        recordings::handle(recorder, req.uri().path(), peer).await;
                    flag.store(download, Ordering::Relaxed);
                    return Ok(resp);
                }
                Ok(admin.handle(req, peer).await.map(Either::Left))
            }
        });
        // One request per connection, and a bound on the whole exchange: an idle
        // keep-alive or a trickled body must not hold one of the few admin slots.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let exchange = async {
            match tokio::time::timeout(REQUEST_TIMEOUT, &mut conn).await {
                Err(_) if downloading.load(Ordering::Relaxed) => {
                    tokio::time::timeout(DOWNLOAD_TIMEOUT - REQUEST_TIMEOUT, &mut conn).await
                }
                other => other,
            }
        };
        tokio::pin!(exchange);
        let result = tokio::select! {
            result = &mut exchange => Some(result),
            Ok(()) = &mut evicted => None,
        };
        let result = match result {
            Some(result) => result,
            // Closed to make room, unless its request came in meanwhile.
            None if !requested.load(Ordering::SeqCst) => {
                self.not_waiting(id);
                return;
            }
            None => exchange.await,
        };
        self.not_waiting(id);
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(client = %peer, cause = %e, "admin connection ended with an error")
            }
            Err(_) => debug!(client = %peer, "admin request timed out"),
        }
    }

    /// The DNS-rebinding guard: the request must name this listener by an IP
    /// address, `localhost` or a configured name; the error is the 421 to send.
    #[allow(clippy::result_large_err)]
    fn check_host(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(), Response<Full<Bytes>>> {
        let named = req.uri().authority().map(|a| a.as_str()).or_else(|| {
            req.headers()
                .get(header::HOST)
                .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        });
        if host_allowed(named, &self.hosts) {
            return Ok(());
        }
        if self.refusal_log.note("admin_host", Instant::now()).log {
            warn!(client = %peer, host = named.unwrap_or(""), "admin request naming another host refused (a DNS-rebinding page?); add the name to [admin] hosts if it is this listener's");
        }
        Err(text(
            StatusCode::MISDIRECTED_REQUEST,
            "this admin listener answers only to its IP address, localhost and [admin] hosts",
        ))
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
            (&Method::GET, "/readyz") => self.readyz(),
            (&Method::GET, "/metrics") => {
                let mut resp = Response::new(Full::new(Bytes::from(self.proxy.metrics().render())));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(super::metrics::CONTENT_TYPE),
                );
                resp
            }
            (&Method::GET, "/sessions") => match self.authorize(&req, peer) {
                Err(resp) => resp,
                Ok(()) => {
                    let list: Vec<SessionView> = self
                        .proxy
                        .sessions()
                        .list()
                        .iter()
                        .map(SessionView::from)
                        .collect();
                    json(StatusCode::OK, &list)
                }
            },
            (&Method::POST, "/sessions/kill") => match self.authorize(&req, peer) {
                Err(resp) => resp,
                Ok(()) => self.kill(req, peer).await,
            },
            (_, "/healthz" | "/readyz" | "/metrics" | "/sessions" | "/sessions/kill") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn readyz(&self) -> Response<Full<Bytes>> {
        if self.proxy.is_draining() {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining: the proxy is shutting down",
            )
        } else if !self.proxy.has_keys() {
            text(StatusCode::SERVICE_UNAVAILABLE, "no trusted keys loaded")
        } else {
            text(StatusCode::OK, "ready")
        }
    }

    /// Checks the bearer token; the error is the answer to send.
    #[allow(clippy::result_large_err)]
    fn authorize(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(), Response<Full<Bytes>>> {
        let Some(expected) = *self.token.read().unwrap_or_else(|p| p.into_inner()) else {
            let why = if self.token_file.is_some() {
                "session control is off: the admin token file did not load at the last reload"
            } else {
                "session control is off: set [admin] token_file (--admin-token-file)"
            };
            return Err(text(StatusCode::FORBIDDEN, why));
        };
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let ok = presented.is_some_and(|t| {
            let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            bool::from(digest.ct_eq(&expected))
        });
        if ok {
            return Ok(());
        }
        let verdict = self.refusal_log.note("admin_unauthorized", Instant::now());
        if verdict.log {
            warn!(client = %peer, path = req.uri().path(), token_given = presented.is_some(), suppressed_before = verdict.suppressed_before, "admin request without a valid token");
        }
        let mut resp = text(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"consolegate admin\""),
        );
        Err(resp)
    }

    async fn kill(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        };
        let k: KillRequest = match serde_json::from_slice(&body) {
            Ok(k) => k,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("bad kill request: {e}")),
        };
        let reason = k.reason.clone().unwrap_or_default();
        let stop = Stop::Kill(reason.clone());
        let sessions = self.proxy.sessions();
        let (killed, selector) = match (&k.id, &k.jti, &k.sub) {
            (Some(id), None, None) => (
                sessions.stop_where(stop, |i| i.id == *id),
                format!("id {id}"),
            ),
            (None, Some(jti), None) => (
                sessions.stop_where(stop, |i| i.jti.as_deref() == Some(jti.as_str())),
                format!("jti {jti}"),
            ),
            (None, None, Some(sub)) => (
                sessions.stop_where(stop, |i| i.sub.as_deref() == Some(sub.as_str())),
                format!("sub {sub}"),
            ),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "bad kill request: give exactly one of id, jti or sub",
                )
            }
        };
        info!(client = %peer, selector = %selector, killed, reason = %reason, "sessions killed by an operator");
        json(StatusCode::OK, &serde_json::json!({ "killed": killed }))
    }
}

/// Whether a request naming `host` (its `Host`, `None` without one) is for this
/// listener: an IP address, `localhost` or `*.localhost`, or one of `names`, with any
/// port. A request without `Host` is HTTP/1.0 from a tool; browsers always send one.
fn host_allowed(host: Option<&str>, names: &[String]) -> bool {
    let Some(host) = host.map(str::trim) else {
        return true;
    };
    let is_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok && v6.parse::<Ipv6Addr>().is_ok();
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return false,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || names.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_addresses_loopback_names_and_configured_names_are_this_listener() {
        let names = vec!["hv1.example".to_string()];
        for ok in [
            None,
            Some("127.0.0.1:6101"),
            Some("127.0.0.1"),
            Some("10.1.2.3:6101"),
            Some("[::1]:6101"),
            Some("[::1]"),
            Some("localhost:6101"),
            Some("LOCALHOST"),
            Some("localhost."),
            Some("metrics.localhost:6101"),
            Some("hv1.example:6101"),
            Some("HV1.example."),
        ] {
            assert!(host_allowed(ok, &names), "{ok:?}");
        }
        for bad in [
            "rebind.attacker.example:6101",
            "attacker.example",
            "127.0.0.1.attacker.example",
            "localhost.attacker.example:6101",
            "hv1.example.attacker.example",
            "0x7f.1",
            "127.1",
            "[::1",
            "[::1]x",
            "[evil]:6101",
            "127.0.0.1:66666666",
            "127.0.0.1:x",
            "",
            "\u{fffd}",
        ] {
            assert!(!host_allowed(Some(bad), &names), "{bad:?}");
        }
    }

    #[test]
    fn a_token_file_others_can_read_or_too_short_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_token(&p),
            Err(TokenError::Permissions { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            load_token(&p).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"0123456789abcdef0123"))
        );
        std::fs::write(&p, "short\n").unwrap();
        assert!(matches!(load_token(&p), Err(TokenError::TooShort { .. })));
    }
}

//! The HTTP front: listener, TLS, and per request either a WebSocket session (ticket,
//! policy, console server connection, upgrade, relay) or a static file.
//!
//! A request's life reads top to bottom in [`Proxy::open_session`]: extract the
//! ticket → origin → ticket rules 1–6 → rule 7 (single use) → rule 8 (target policy,
//! every resolved address) → reserve a session slot → connect → answer 101 → relay →
//! log the end. Every refusal before the upgrade is an HTTP status with a one-line
//! plain-text reason and one log line; the ticket itself is never logged.

use crate::backend::{Backend, BackendError};
use crate::clientaddr;
use crate::config::Config;
use crate::denylist::{DenyList, DenyListError};
use crate::keys::{self, KeyError, KeySet};
use crate::legacy::{self, Legacy, LegacyError};
use crate::limits::{ClientLimits, RefusalLog, TicketSessions};
use crate::metrics::Metrics;
use crate::policy::{PolicyError, ReplayCache, Uses};
use crate::relay::{self, CloseReason};
use crate::session::{SessionInfo, SessionStats, Sessions};
use crate::ticket::{self, TicketError, Verified};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Largest request body accepted (the pre-flight check's ticket).
const MAX_BODY: usize = 16 << 10;
/// Largest request head (request line and headers) accepted: 431 above. hyper's own
/// buffer ([`HYPER_BUF`]) is larger so that the 431 comes from here, with a reason;
/// heads beyond that get hyper's bare 431.
const MAX_HEAD: usize = 16 << 10;
const HYPER_BUF: usize = 24 << 10;
/// Longest wait between accept retries when accepting fails (file descriptors
/// exhausted): the loop backs off from 10 ms to this instead of spinning.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the proxy could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Backend(#[from] crate::backend::LoadError),
    #[error(transparent)]
    Legacy(#[from] legacy::LoadError),
    #[error("TLS certificate {path}: {reason}")]
    Tls { path: PathBuf, reason: String },
    #[error(transparent)]
    DenyList(#[from] DenyListError),
}

/// A request refused before the upgrade.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    /// Stable snake_case identifier for logs, metrics and the console page.
    pub code: &'static str,
    /// One line a person understands.
    pub reason: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, reason: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            reason: reason.into(),
        }
    }
}

impl From<TicketError> for Refusal {
    fn from(e: TicketError) -> Self {
        Refusal::new(e.status(), e.code(), e.to_string())
    }
}

impl From<BackendError> for Refusal {
    fn from(e: BackendError) -> Self {
        Refusal::new(e.status(), e.code(), e.to_string())
    }
}

impl From<LegacyError> for Refusal {
    fn from(e: LegacyError) -> Self {
        Refusal::new(e.status(), e.code(), e.to_string())
    }
}

impl From<PolicyError> for Refusal {
    fn from(e: PolicyError) -> Self {
        Refusal::new(403, e.code(), e.to_string())
    }
}

/// A refusal from the ticket rules or the policy, with the verified ticket when the
/// refusal came after the signature check (so the log line can name jti and sub).
struct Rejected {
    refusal: Refusal,
    verified: Option<Box<Verified>>,
}

/// A ticket that passed every rule, with the addresses its target resolved to.
struct Admitted {
    verified: Verified,
    addrs: Vec<SocketAddr>,
}

/// Called by the demo's signing endpoint; returns the JSON answer.
pub type DemoTicketFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// One proxy: its configuration and everything it shares between connections.
pub struct Proxy {
    config: Config,
    /// Trusted keys; replaced whole on reload so a verification never sees half a set.
    keys: RwLock<Arc<KeySet>>,
    /// `None` when plain ws:// is configured.
    tls: RwLock<Option<TlsAcceptor>>,
    sessions: Sessions,
    replay: ReplayCache,
    /// Reaches console servers: TCP, and TLS with the console CA (re-read on SIGHUP).
    backend: Backend,
    /// Set on SIGTERM: new sessions get 503 while live ones finish.
    draining: AtomicBool,
    /// The demo's ticket endpoint; absent outside `consolegate demo`.
    demo: Option<DemoTicketFn>,
    /// Per-client-address session counts and handshake rate.
    client_limits: Arc<ClientLimits>,
    /// Live sessions per ticket (`max_sessions_per_ticket`).
    ticket_sessions: Arc<TicketSessions>,
    /// Caps refusal log lines so a storm cannot fill the disk.
    refusal_log: RefusalLog,
    /// oVirt engine tickets and websockify token files, when configured.
    legacy: Legacy,
    /// Revoked ticket ids and users (see [`crate::denylist`]); re-read on SIGHUP.
    deny: Arc<DenyList>,
    /// Counters and histograms served by the admin listener ([`crate::admin`]).
    metrics: Metrics,
}

impl Proxy {
    /// Loads keys and the TLS certificate named by `config`.
    pub fn new(config: Config) -> Result<Proxy, FrontError> {
        let keys = load_keys(&config.trust)?;
        let tls = match &config.tls {
            Some(files) => Some(load_tls(&files.cert, &files.key)?),
            None => None,
        };
        let backend = Backend::new(
            config.backend_tls.clone(),
            config.connect_timeout,
            config.handshake_timeout,
        )?;
        let client_limits = Arc::new(ClientLimits::new(config.abuse.clone()));
        let ticket_sessions = Arc::new(TicketSessions::new(config.abuse.max_sessions_per_ticket));
        let refusal_log = RefusalLog::new(config.abuse.refusal_lines_per_second);
        let legacy = Legacy::load(&config.legacy)?;
        let sessions = Sessions::new(config.max_sessions);
        let deny = Arc::new(DenyList::load(config.deny_list.as_deref())?);
        let metrics = Metrics::new(sessions.clone(), deny.clone());
        metrics.keys_loaded(&keys);
        Ok(Proxy {
            backend,
            legacy,
            sessions,
            deny,
            metrics,
            config,
            keys: RwLock::new(Arc::new(keys)),
            tls: RwLock::new(tls),
            replay: ReplayCache::default(),
            draining: AtomicBool::new(false),
            demo: None,
            client_limits,
            ticket_sessions,
            refusal_log,
        })
    }

    /// Adds the demo's `POST /demo/ticket` endpoint.
    pub fn with_demo(mut self, f: DemoTicketFn) -> Self {
        self.demo = Some(f);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// How console servers are reached (the console CA and client certificate).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn deny_list(&self) -> &DenyList {
        &self.deny
    }

    /// True once shutdown began (new sessions get 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Per-client counts (tests check that nothing leaks).
    pub fn client_limits(&self) -> &ClientLimits {
        &self.client_limits
    }

    /// Live sessions per ticket (tests check that nothing leaks).
    pub fn ticket_sessions(&self) -> &TicketSessions {
        &self.ticket_sessions
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.current_keys()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect()
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGHUP: re-reads keys and certificate. On any error the old ones stay in force
    /// and live sessions are untouched. The deny list is re-read first and on its own
    /// (its errors are logged, not returned): a broken key file must not delay a
    /// revocation.
    pub fn reload(&self) -> Result<(), FrontError> {
        self.deny.reload_and_enforce(&self.sessions);
        let keys = load_keys(&self.config.trust)?;
        let tls = match &self.config.tls {
            Some(files) => Some(load_tls(&files.cert, &files.key)?),
            None => None,
        };
        self.backend.reload()?;
        self.legacy.reload()?;
        let kids: Vec<String> = keys.iter().map(|(k, _)| k.to_string()).collect();
        self.metrics.keys_loaded(&keys);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
        info!(keys = ?kids, "reloaded trusted keys and TLS certificate");
        Ok(())
    }

    /// Accepts connections until `shutdown` resolves, then drains: no new sessions,
    /// live ones get the grace period, then close 1001. Returns true when every
    /// session ended in time.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> bool {
        tokio::pin!(shutdown);
        let mut backoff = Duration::ZERO;
        let mut accept_failures: u64 = 0;
        let mut last_accept_log: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff = Duration::ZERO;
                        let proxy = self.clone();
                        tokio::spawn(async move { proxy.connection(stream, peer).await });
                    }
                    Err(e) => {
                        // Running out of file descriptors is transient: back off
                        // (10 ms doubling to 1 s), retry, and log at most once a second
                        // with the count, so neither the CPU nor the log spins.
                        accept_failures += 1;
                        if last_accept_log.map_or(true, |t| t.elapsed() >= Duration::from_secs(1)) {
                            warn!(cause = %e, failures = accept_failures, "accept failed; backing off");
                            last_accept_log = Some(Instant::now());
                            accept_failures = 0;
                        }
                        backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                        tokio::time::sleep(backoff).await;
                    }
                },
                _ = tick.tick() => self.housekeeping(),
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        self.draining.store(true, Ordering::SeqCst);
        let live = self.sessions.live_count();
        info!(
            live,
            grace_s = self.config.grace.as_secs(),
            "shutting down: draining sessions"
        );
        let clean = self.sessions.drain(self.config.grace).await;
        info!(clean, "shutdown complete");
        clean
    }

    /// Once a second: summaries of suppressed refusal lines, and forgetting clients
    /// that hold nothing.
    fn housekeeping(&self) {
        let now = Instant::now();
        for (code, n) in self.refusal_log.flush(now) {
            warn!(
                code,
                suppressed = n,
                "suppressed {n} refusals (reason: {code})"
            );
        }
        self.client_limits.prune(now);
    }

    /// One TCP connection: the PROXY header from a trusted balancer, TLS if
    /// configured, then HTTP/1.1 with upgrades.
    async fn connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let clients = &self.config.clients;
        // From anyone else the bytes are the request itself (see `clientaddr`).
        let peer = if clients.proxy_protocol && clients.trusts(peer.ip()) {
            match clientaddr::read_proxy_header(&mut stream, self.config.handshake_timeout).await {
                Ok(Some(client)) => client,
                Ok(None) => peer,
                Err(e) => {
                    let r = Refusal::new(400, "proxy_protocol", e.to_string());
                    self.log_refusal(peer, r, None);
                    return;
                }
            }
        } else {
            peer
        };
        let acceptor = self.tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        match acceptor {
            Some(acceptor) => {
                // Under rustls's 4 KiB reads: 64 KiB at once while an upload streams.
                let stream = crate::readahead::ReadAhead::new(stream);
                let tls =
                    tokio::time::timeout(self.config.handshake_timeout, acceptor.accept(stream))
                        .await;
                match tls {
                    Ok(Ok(tls)) => self.http(TokioIo::new(tls), peer, true).await,
                    Ok(Err(e)) => debug!(client = %peer, cause = %e, "TLS handshake failed"),
                    Err(_) => debug!(client = %peer, "TLS handshake timed out"),
                }
            }
            None => self.http(TokioIo::new(stream), peer, false).await,
        }
    }

    async fn http<I>(self: Arc<Self>, io: I, peer: SocketAddr, tls: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, tls).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.handshake_timeout)
            .max_buf_size(HYPER_BUF)
            .serve_connection(io, service)
            .with_upgrades();
        if let Err(e) = conn.await {
            debug!(client = %peer, cause = %e, "HTTP connection ended with an error");
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        hop: SocketAddr,
        tls: bool,
    ) -> Response<Full<Bytes>> {
        // `hop` sent this request; a trusted balancer may name the client behind it.
        let peer = clientaddr::forwarded_client(hop, req.headers(), &self.config.clients);
        let tls = clientaddr::browser_used_tls(hop, req.headers(), &self.config.clients, tls);
        let head = head_size(&req);
        if head > MAX_HEAD {
            let r = Refusal::new(
                431,
                "head_too_large",
                format!("request headers too large ({head} bytes; at most {MAX_HEAD})"),
            );
            return refuse(self.log_refusal(peer, r, None));
        }
        if is_websocket_upgrade(req.headers()) {
            return match self.clone().open_session(req, peer, tls).await {
                Ok(resp) => resp,
                Err(refusal) => {
                    self.metrics.refused(refusal.code);
                    refuse(refusal)
                }
            };
        }
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/consolegate/check") => {
                // The pre-flight verifies a ticket too: same bucket as handshakes.
                if let Err(e) = self.client_limits.handshake(peer.ip(), Instant::now()) {
                    let r = Refusal::new(429, e.code(), e.to_string());
                    return refuse(self.log_refusal(peer, r, None));
                }
                self.check_endpoint(req).await
            }
            (&Method::GET, "/consolegate/config.json") => self.config_json(),
            (&Method::POST, "/demo/ticket") if self.demo.is_some() => match &self.demo {
                Some(f) => json_response(StatusCode::OK, &f(), &self.config),
                None => not_found(),
            },
            (&Method::GET | &Method::HEAD, _) => {
                let head = req.method() == Method::HEAD;
                self.static_file(&path, head).await
            }
            _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        }
    }

    /// The WebSocket path. Everything that can refuse runs before the 101 answer.
    async fn open_session(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let started = Instant::now();
        let headers = req.headers();
        let accept_key = websocket_accept(headers)?;
        let binary = offers_binary(headers);
        if self.draining.load(Ordering::SeqCst) {
            return Err(self.log_refusal(
                peer,
                Refusal::new(503, "draining", "the proxy is shutting down; try again"),
                None,
            ));
        }
        if let Err(e) = self.client_limits.handshake(peer.ip(), Instant::now()) {
            let r = Refusal::new(429, e.code(), e.to_string());
            return Err(self.log_refusal(peer, r, None));
        }
        let origin = header_str(headers, header::ORIGIN);
        let host = header_str(headers, header::HOST);
        if let Err(e) = self.config.origins.check(origin, host, tls) {
            return Err(self.log_refusal(peer, e.into(), None));
        }
        let from_uri = self.legacy.ticket_from_uri(req.uri());
        let Some(ticket) = from_uri.or_else(|| ticket_from_uri(req.uri())) else {
            return Err(self.log_refusal(
                peer,
                Refusal::new(
                    400,
                    "no_ticket",
                    "no ticket in the URL (expected /<ticket> or ?token=<ticket>)",
                ),
                None,
            ));
        };

        let admitted = match self.admit(&ticket, true).await {
            Ok(a) => a,
            Err(r) => return Err(self.log_refusal(peer, r.refusal, r.verified.as_deref())),
        };
        let verified = admitted.verified;
        let forget_on_failure = |proxy: &Proxy| {
            if proxy.config.single_use {
                if let Some(jti) = &verified.claims.jti {
                    proxy.replay.forget(jti);
                }
            }
        };

        let Some(slot) = self.sessions.reserve() else {
            forget_on_failure(&self);
            let r = Refusal::new(
                503,
                "too_many_sessions",
                "the proxy is at its session limit; try again later",
            );
            return Err(self.log_refusal(peer, r, Some(&verified)));
        };
        let client_slot = match self.client_limits.session(peer.ip()) {
            Ok(s) => s,
            Err(e) => {
                forget_on_failure(&self);
                let r = Refusal::new(429, e.code(), e.to_string());
                return Err(self.log_refusal(peer, r, Some(&verified)));
            }
        };
        let dialled = Instant::now();
        let (tcp, target) = match self
            .backend
            .dial(&verified.claims.host, &admitted.addrs)
            .await
        {
            Ok(t) => {
                self.metrics.backend_connected(dialled.elapsed());
                t
            }
            Err(e) => {
                forget_on_failure(&self);
                return Err(self.log_refusal(peer, e.into(), Some(&verified)));
            }
        };
        // TLS and VeNCrypt finish after the 101 answer, so that their failures reach
        // the page as a close reason (a browser cannot read a refused upgrade).
        let pending = self
            .backend
            .pending(tcp, &verified.claims.host, verified.claims.tls);

        let on_upgrade = hyper::upgrade::on(&mut req);
        let stats = Arc::new(SessionStats::default());
        let info = SessionInfo {
            id: 0,
            client: peer,
            target,
            sub: verified.claims.sub.clone(),
            jti: verified.claims.jti.clone(),
            kid: verified.kid.clone(),
            started: SystemTime::now(),
            stats: stats.clone(),
        };
        let (guard, stop) = self.sessions.register(slot, info);
        let id = guard.id();
        // Keyed by jti, or by the signature for a ticket without one (never logged).
        let ticket_key = match &verified.claims.jti {
            Some(jti) => format!("jti:{}:{jti}", verified.kid),
            None => format!("sig:{}", ticket.rsplit('.').next().unwrap_or("")),
        };
        let per_client = Uses::for_kind(verified.claims.kind).max as usize;
        let (ticket_slot, replaced) = self.ticket_sessions.add(ticket_key, id, per_client);
        if !replaced.is_empty() {
            let n = self.sessions.stop_where(
                crate::relay::Stop::Kill("replaced by a newer session with the same ticket".into()),
                |i| replaced.contains(&i.id),
            );
            info!(session = id, replaced = ?replaced, stopped = n, jti = field(&verified.claims.jti),
                "ticket over max_sessions_per_ticket: the oldest session is replaced");
        }
        info!(
            session = id, client = %peer, target = %target, sub = field(&verified.claims.sub),
            jti = field(&verified.claims.jti), kid = %verified.kid,
            setup_ms = started.elapsed().as_millis() as u64, "session opened"
        );
        let relay_cfg = self.config.relay.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _client_slot = client_slot;
            let _ticket_slot = ticket_slot;
            let opened = Instant::now();
            let (upgraded, secured) = tokio::join!(on_upgrade, pending.finish());
            let (up, down, reason) = match (upgraded, secured) {
                (Ok(upgraded), Ok(target_stream)) => {
                    let client = TokioIo::new(upgraded);
                    let out =
                        relay::relay_counted(client, target_stream, &relay_cfg, stop, Some(stats))
                            .await;
                    (out.bytes_up, out.bytes_down, Ok(out.reason))
                }
                (Ok(upgraded), Err(e)) => {
                    warn!(session = id, client = %peer, target = %target, code = e.code(), reason = %e, "console server handshake failed");
                    relay::close_with(TokioIo::new(upgraded), 1011, &e.to_string()).await;
                    (0, 0, Ok(CloseReason::TargetError(e.to_string())))
                }
                (Err(e), _) => (0, 0, Err(e.to_string())),
            };
            match reason {
                Ok(reason) => log_session_end(
                    id,
                    peer,
                    target,
                    &verified,
                    up,
                    down,
                    opened.elapsed(),
                    &reason,
                ),
                Err(e) => {
                    warn!(session = id, client = %peer, cause = %e, "upgrade failed after 101")
                }
            }
        });

        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept_key) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if binary {
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static("binary"),
            );
        }
        self.metrics.handshake_done(started.elapsed());
        Ok(resp)
    }

    /// Rules 1–8 and the proxy's own support of the ticket's console kind. With
    /// `consume` false (the pre-flight check) a single-use ticket is only looked up.
    async fn admit(&self, ticket: &str, consume: bool) -> Result<Admitted, Rejected> {
        let now = unix_now();
        let opts = &self.config.verify;
        let verified = match self.legacy.verify(ticket, opts, now) {
            Some(legacy) => legacy.map_err(Refusal::from),
            None => ticket::verify(ticket, &self.current_keys(), opts, now).map_err(Refusal::from),
        }
        .map_err(|refusal| Rejected {
            refusal,
            verified: None,
        })?;
        let claims = &verified.claims;
        let fail = |refusal: Refusal, v: &Verified| {
            Err(Rejected {
                refusal,
                verified: Some(Box::new(v.clone())),
            })
        };
        if let Err(revoked) = self
            .deny
            .check(claims.jti.as_deref(), claims.sub.as_deref())
        {
            return fail(Refusal::new(403, "revoked", revoked.to_string()), &verified);
        }
        if let Err(e) = self.backend.supports(claims.tls) {
            return fail(e.into(), &verified);
        }
        if self.config.single_use {
            let until = claims.exp.saturating_add(self.config.verify.leeway_secs);
            // A SPICE client opens one connection per channel with the same ticket.
            let uses = Uses::for_kind(claims.kind);
            let seen = if consume {
                self.replay
                    .use_ticket(claims.jti.as_deref(), uses, until, now)
            } else {
                self.replay.check_uses(claims.jti.as_deref(), uses, now)
            };
            if let Err(e) = seen {
                return fail(e.into(), &verified);
            }
        }
        if let Err(e) = self.config.targets.check_port(claims.kind, claims.port) {
            return fail(e.into(), &verified);
        }
        let addrs = match resolve(&claims.host, claims.port).await {
            Ok(a) => a,
            Err(r) => return fail(r, &verified),
        };
        if let Err(e) = self
            .config
            .targets
            .check_resolved(claims.kind, &claims.host, &addrs)
        {
            if consume && self.config.single_use {
                if let Some(jti) = &claims.jti {
                    self.replay.forget(jti);
                }
            }
            return fail(e.into(), &verified);
        }
        Ok(Admitted { verified, addrs })
    }

    /// `POST /consolegate/check`: the console page's pre-flight. A browser cannot read
    /// the HTTP status of a refused WebSocket upgrade, so the page asks here first.
    async fn check_endpoint(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        };
        let ticket = String::from_utf8_lossy(&body).trim().to_string();
        let answer = match self.admit(&ticket, false).await {
            Ok(a) => serde_json::json!({
                "ok": true,
                "kind": a.verified.claims.kind.as_str(),
                "exp": a.verified.claims.exp,
                "jti": a.verified.claims.jti,
            }),
            Err(Rejected { refusal: r, .. }) => serde_json::json!({
                "ok": false, "status": r.status.as_u16(), "code": r.code, "reason": r.reason,
            }),
        };
        json_response(StatusCode::OK, &answer, &self.config)
    }

    fn config_json(&self) -> Response<Full<Bytes>> {
        let origins: Vec<String> = self
            .config
            .engine_origins
            .iter()
            .map(origin_string)
            .collect();
        let v = serde_json::json!({ "engine_origins": origins, "demo": self.demo.is_some() });
        json_response(StatusCode::OK, &v, &self.config)
    }

    async fn static_file(&self, url_path: &str, head: bool) -> Response<Full<Bytes>> {
        let mounts = [
            ("novnc/", self.config.novnc_dir.as_path()),
            ("spice/", self.config.spice_dir.as_path()),
            ("xterm/", self.config.xterm_dir.as_path()),
        ];
        let Some(path) = resolve_static(&self.config.web_dir, &mounts, url_path) else {
            return not_found();
        };
        let body = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(_) => return not_found(),
            },
            _ => return not_found(),
        };
        let ctype = content_type(&path);
        let mut resp = Response::new(Full::new(if head {
            Bytes::new()
        } else {
            Bytes::from(body)
        }));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if ctype.starts_with("text/html") {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        security_headers(h, &self.config);
        resp
    }

    /// One log line per refusal, at most `refusals_per_second` a second per code; the
    /// rest are counted and summarised (here or by [`Self::housekeeping`]).
    fn log_refusal(&self, peer: SocketAddr, r: Refusal, v: Option<&Verified>) -> Refusal {
        let verdict = self.refusal_log.note(r.code, Instant::now());
        if verdict.suppressed_before > 0 {
            let (code, n) = (r.code, verdict.suppressed_before);
            warn!(
                code,
                suppressed = n,
                "suppressed {n} refusals (reason: {code})"
            );
        }
        if !verdict.log {
            return r;
        }
        let (sub, jti, kid) = match v {
            Some(v) => (field(&v.claims.sub), field(&v.claims.jti), v.kid.as_str()),
            None => ("-", "-", "-"),
        };
        warn!(client = %peer, status = r.status.as_u16(), code = r.code, sub, jti, kid, reason = %r.reason, "refused");
        r
    }
}

#[allow(clippy::too_many_arguments)]
fn log_session_end(
    id: u64,
    peer: SocketAddr,
    target: SocketAddr,
    v: &Verified,
    up: u64,
    down: u64,
    duration: Duration,
    reason: &CloseReason,
) {
    info!(
        session = id, client = %peer, target = %target, sub = field(&v.claims.sub),
        jti = field(&v.claims.jti), kid = %v.kid, bytes_up = up, bytes_down = down,
        duration_ms = duration.as_millis() as u64, close_code = reason.code(), reason = %reason,
        "session ended"
    );
}

fn field(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Resolves the ticket's host; an IP literal costs no DNS query.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(Refusal::new(
                    502,
                    "target_unresolved",
                    format!("console server name {host} has no address"),
                ))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(Refusal::new(
            502,
            "target_unresolved",
            format!("console server name {host} cannot be resolved: {e}"),
        )),
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    header_has_token(h, header::UPGRADE, "websocket")
}

fn offers_binary(h: &HeaderMap) -> bool {
    header_has_token(h, header::SEC_WEBSOCKET_PROTOCOL, "binary")
}

/// Checks the handshake headers of RFC 6455 §4.2.1 and computes the accept key.
fn websocket_accept(h: &HeaderMap) -> Result<String, Refusal> {
    if !header_has_token(h, header::CONNECTION, "upgrade") {
        return Err(Refusal::new(
            400,
            "bad_handshake",
            "WebSocket handshake without Connection: Upgrade",
        ));
    }
    if header_str(h, header::SEC_WEBSOCKET_VERSION).map(str::trim) != Some("13") {
        return Err(Refusal::new(
            426,
            "bad_handshake",
            "unsupported WebSocket version (13 expected)",
        ));
    }
    let key = header_str(h, header::SEC_WEBSOCKET_KEY)
        .map(str::trim)
        .unwrap_or("");
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => {
            return Err(Refusal::new(
                400,
                "bad_handshake",
                "missing or invalid Sec-WebSocket-Key",
            ))
        }
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// The ticket from `?token=` or, failing that, the last path segment.
pub fn ticket_from_uri(uri: &hyper::Uri) -> Option<String> {
    if let Some(q) = uri.query() {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("token=") {
                let v = percent_decode(v)?;
                return String::from_utf8(v).ok().filter(|s| !s.is_empty());
            }
        }
    }
    let last = uri.path().rsplit('/').next()?;
    let v = String::from_utf8(percent_decode(last)?).ok()?;
    (!v.is_empty()).then_some(v)
}

/// Decodes `%XX` escapes; `None` on a malformed escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            // Exactly two hex digits: `from_str_radix` alone would also take a sign
            // ("%+f" as 0x0f), a second spelling of the same byte.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// Maps a URL path to a file under the web directory, or under a mounted client's
/// directory (`mounts`: URL prefix such as `"novnc/"` and its directory: noVNC,
/// spice-html5, xterm.js). `None` for anything that is not a plain relative path of
/// normal names: no `..`, no hidden files, no empty segments (so `//evil.example` is
/// not a path), no backslashes or NUL. Directories get no listing; `/` is `index.html`.
pub fn resolve_static(web_dir: &Path, mounts: &[(&str, &Path)], url_path: &str) -> Option<PathBuf> {
    let decoded = String::from_utf8(percent_decode(url_path)?).ok()?;
    let rel = decoded.strip_prefix('/')?;
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let (root, rel) = mounts
        .iter()
        .find_map(|(prefix, dir)| rel.strip_prefix(prefix).map(|r| (*dir, r)))
        .unwrap_or((web_dir, rel));
    let mut out = root.to_path_buf();
    for seg in rel.split('/') {
        if seg.is_empty()
            || seg.starts_with('.')
            || seg.contains(['\\', '\0', ':'])
            || seg == "node_modules"
        {
            return None;
        }
        out.push(seg);
    }
    // Belt and braces: the pushed segments must all be normal names.
    if out
        .strip_prefix(root)
        .ok()?
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(out)
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        "oga" | "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

fn origin_string(o: &crate::policy::Origin) -> String {
    let default = matches!((o.scheme.as_str(), o.port), ("http", 80) | ("https", 443));
    if default {
        format!("{}://{}", o.scheme, o.host)
    } else {
        format!("{}://{}:{}", o.scheme, o.host, o.port)
    }
}

/// The page may run only its own scripts, talk only to its own proxy, and be framed
/// only by the trusted engines.
fn security_headers(h: &mut HeaderMap, config: &Config) {
    let ancestors = if config.engine_origins.is_empty() {
        "'none'".to_string()
    } else {
        config
            .engine_origins
            .iter()
            .map(origin_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    // style-src-elem allows inline <style> elements: xterm.js (the serial console)
    // writes its cell sizes and colours into <style> elements it creates at run time
    // and accepts no nonce. Style attributes in markup stay blocked (style-src-attr
    // falls back to style-src); scripts stay 'self' only.
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-elem 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
         frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'; object-src 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Bytes of the request line and headers as they came (close enough: the line ends
/// and separators are counted as written by a well-behaved client).
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

fn refuse(r: Refusal) -> Response<Full<Bytes>> {
    let mut resp = plain(r.status, &r.reason);
    if r.status == StatusCode::TOO_MANY_REQUESTS {
        // A token comes back within a second; a session slot takes longer.
        let after = if r.code == "too_many_handshakes" {
            "1"
        } else {
            "10"
        };
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
    }
    if r.status == StatusCode::UPGRADE_REQUIRED {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "not found")
}

fn json_response(
    status: StatusCode,
    v: &serde_json::Value,
    config: &Config,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h, config);
    resp
}

/// The trusted Ed25519 keys. None configured is allowed only with a legacy source
/// (the configuration checks that): such a proxy serves oVirt tickets or token files.
fn load_keys(trust: &[PathBuf]) -> Result<KeySet, KeyError> {
    if trust.is_empty() {
        return Ok(KeySet::new());
    }
    keys::load_trusted(trust)
}

/// Builds the rustls acceptor from PEM files.
fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, FrontError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &Path, reason: String| FrontError::Tls {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(cert, e.to_string()))?;
    tune_tls(&mut cfg).map_err(|e| tls_err(cert, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// The TLS settings chosen with the benchmark (bench/README.md, "TLS"); everything
/// else is rustls's default.
///
/// - ALPN `http/1.1`: the upgrade is HTTP/1.1.
/// - Resumption by stateless tickets (rustls's ring ticketer, keys rotated every 6
///   hours), one ticket per full handshake: a console page that reconnects (a reload,
///   a network change) resumes without a certificate signature, and the proxy keeps no
///   session cache in memory. rustls's default sends two tickets backed by a
///   256-entry in-memory cache. 0-RTT early data stays off: a replayed ticket upgrade
///   must not reach a console.
/// - Cipher suites: rustls's list, in the browser's order (`ignore_client_order` off):
///   browsers put AES-GCM first on CPUs with AES instructions and ChaCha20-Poly1305
///   first on those without, so each client gets what is fast for it, and AES-128-GCM,
///   what browsers with AES prefer, costs the proxy less than AES-256-GCM.
/// - Records stay at 16 KiB (`max_fragment_size` unset): fewer, larger records are
///   cheaper to seal and to send, and browsers take them as they come.
fn tune_tls(cfg: &mut rustls::ServerConfig) -> Result<(), rustls::Error> {
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    cfg.send_tls13_tickets = 1;
    cfg.max_early_data_size = 0;
    cfg.ignore_client_order = false;
    cfg.max_fragment_size = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_stay_inside_the_web_directory() {
        let web = Path::new("/srv/web");
        let novnc = [
            ("novnc/", Path::new("/usr/share/novnc")),
            ("spice/", Path::new("/usr/share/spice-html5")),
            ("xterm/", Path::new("/opt/xterm")),
        ];
        let novnc = &novnc[..];
        assert_eq!(
            resolve_static(web, novnc, "/"),
            Some(PathBuf::from("/srv/web/index.html"))
        );
        assert_eq!(
            resolve_static(web, novnc, "/console.html"),
            Some(PathBuf::from("/srv/web/console.html"))
        );
        assert_eq!(
            resolve_static(web, novnc, "/novnc/core/rfb.js"),
            Some(PathBuf::from("/usr/share/novnc/core/rfb.js"))
        );
        assert_eq!(
            resolve_static(web, novnc, "/spice/main.js"),
            Some(PathBuf::from("/usr/share/spice-html5/main.js"))
        );
        assert_eq!(
            resolve_static(web, novnc, "/xterm/css/xterm.css"),
            Some(PathBuf::from("/opt/xterm/css/xterm.css"))
        );
        assert_eq!(
            resolve_static(web, novnc, "/spiced.html"),
            Some(PathBuf::from("/srv/web/spiced.html")),
            "a prefix is a whole segment"
        );
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/a/../../x",
            "//evil.example",
            "/a//b",
            "/.git/config",
            "/a\\..\\b",
            "/x%00.html",
            "/%zz",
            "/node_modules/x.js",
            "relative",
            "/c:/windows",
            "/novnc/../secret",
            "/spice/../../etc/passwd",
            "/xterm/%2e%2e/x",
            "/spice/",
        ] {
            assert_eq!(resolve_static(web, novnc, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_ticket_comes_from_the_query_or_the_last_path_segment() {
        let t = |s: &str| ticket_from_uri(&s.parse().unwrap());
        assert_eq!(t("/abc.def.ghi"), Some("abc.def.ghi".into()));
        assert_eq!(t("/some/prefix/abc.def.ghi"), Some("abc.def.ghi".into()));
        assert_eq!(
            t("/websockify?token=abc.def.ghi"),
            Some("abc.def.ghi".into())
        );
        assert_eq!(t("/websockify?x=1&token=a%2Eb"), Some("a.b".into()));
        assert_eq!(t("/"), None);
        assert_eq!(t("/x/"), None);
    }

    #[test]
    fn percent_escapes_are_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%2Eb%2f"), Some(b"a.b/".to_vec()));
        // Found while writing the request_uri fuzz target (its reference decoder guards
        // it now): a sign was taken as part of the number.
        assert_eq!(percent_decode("%+f"), None);
        assert_eq!(percent_decode("%-1"), None);
        assert_eq!(percent_decode("%f"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}

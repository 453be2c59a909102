//! The HTTP front: the listener, and per request either a WebSocket session or one of
//! the console page's files.
//!
//! A session's life reads top to bottom in [`Proxy::websocket`]: the handshake →
//! the ticket, the policy and the console server (one [`Admission`] value, see
//! [`crate::admission`]) → the 101 answer → relay → close and log. Every refusal
//! before the upgrade is an HTTP status with a one-line plain-text reason and one log
//! line ([`crate::refusal`] has the codes); the ticket itself is never logged.
//!
//! The rooms: `listener.rs` (PROXY header, TLS, HTTP/1.1, all within the handshake
//! deadline), `pending.rs` (the caps on connections that are not sessions yet),
//! `handshake.rs` (RFC 6455, and the `ticket.<ticket>` subprotocol), `uri.rs` (where
//! the ticket is), `page.rs` (static files, CSP, the page's config),
//! `check.rs` (the pre-flight), `refusal.rs` (refusals as HTTP and log lines),
//! `extension.rs` (routes a program embedding the proxy adds, such as the demo's).

mod check;
mod extension;
mod handshake;
mod listener;
mod page;
mod pending;
mod readahead;
mod refusal;
mod uri;

/// Kept here for engines and tests written against the earlier path; the clock lives
/// in [`crate::util::time`] (also [`crate::unix_now`]).
pub use crate::util::time::unix_now;
pub use extension::{Answer, Extension};
pub use listener::TlsError;
pub use page::resolve_static;
pub use pending::{Over, Pending};
pub use uri::{ticket_from_uri, ticket_in};

use crate::admission::{self, Admission, Gate, Rejected};
use crate::backend::Backend;
use crate::clientaddr;
use crate::config::Config;
use crate::denylist::DenyList;
use crate::limits::{ClientLimits, RefusalLog, TicketSessions};
use crate::ops::admin::Watched;
use crate::ops::metrics::Metrics;
use crate::recording::Recorder;
use crate::refusal::{Code, Refusal};
use crate::reload::{Outcome, Part, ReloadFailed};
use crate::session::Sessions;
use crate::util::accept::{Acceptor, TurnAway};
use crate::util::http::{self, Body};
use handshake::{header_str, Handshake};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use listener::{head_size, load_tls, MAX_HEAD};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::info;

/// Why the proxy could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error(transparent)]
    Admission(#[from] admission::LoadError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The listener's own state, apart from what admission owns.
struct Serving {
    /// `None` when plain ws:// is configured; replaced whole on reload.
    tls: RwLock<Option<TlsAcceptor>>,
    /// Set on SIGTERM: new sessions get 503 while live ones finish.
    draining: AtomicBool,
    /// Caps refusal log lines so a storm cannot fill the disk.
    refusal_log: RefusalLog,
    /// The real paths of the web directories, which served files must stay inside.
    web_roots: page::RealRoots,
    /// Connections that are not sessions yet, capped in all and per client.
    pending: Arc<Pending>,
    /// Answers connections over a cap without reading them.
    turn_away: TurnAway,
}

impl Serving {
    fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One proxy: its configuration, the admission state every request is checked
/// against, and the listener's own state.
pub struct Proxy {
    config: Config,
    /// Keys, single-use record, deny list, legacy sources, limits, the session
    /// registry and the console servers: see [`Gate`].
    gate: Gate,
    serving: Serving,
    /// Routes added by the program embedding the proxy (the demo's); none in
    /// production.
    extension: Option<Box<dyn Extension>>,
}

impl Proxy {
    /// Loads keys, certificates, legacy sources and the deny list named by `config`.
    pub fn new(config: Config) -> Result<Proxy, FrontError> {
        let gate = Gate::new(&config)?;
        let tls = load_listener_tls(&config)?;
        if tls.is_some() {
            gate.metrics().reloaded(Part::Tls.as_str(), true);
        }
        Ok(Proxy {
            serving: Serving {
                tls: RwLock::new(tls),
                draining: AtomicBool::new(false),
                refusal_log: RefusalLog::new(config.log.refusals_per_second),
                web_roots: page::RealRoots::default(),
                pending: Pending::new(
                    config.limits.max_pending,
                    config.limits.max_pending_per_client,
                ),
                turn_away: TurnAway::default(),
            },
            gate,
            config,
            extension: None,
        })
    }

    /// Adds routes in front of the static files (see [`Extension`]).
    pub fn with_extension(mut self, extension: impl Extension) -> Self {
        self.extension = Some(Box::new(extension));
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sessions(&self) -> &Sessions {
        self.gate.sessions()
    }

    /// How console servers are reached (the console CA and client certificate).
    pub fn backend(&self) -> &Backend {
        self.gate.backend()
    }

    pub fn metrics(&self) -> &Metrics {
        self.gate.metrics()
    }

    pub fn deny_list(&self) -> &DenyList {
        self.gate.deny_list()
    }

    /// True once shutdown began (new sessions get 503).
    pub fn is_draining(&self) -> bool {
        self.serving.draining.load(Ordering::SeqCst)
    }

    /// Per-client counts (tests check that nothing leaks).
    pub fn client_limits(&self) -> &ClientLimits {
        self.gate.client_limits()
    }

    /// Connections that are not sessions yet (tests check the caps and that nothing
    /// leaks).
    pub fn pending(&self) -> &Pending {
        &self.serving.pending
    }

    /// Live sessions per ticket (tests check that nothing leaks).
    pub fn ticket_sessions(&self) -> &TicketSessions {
        self.gate.ticket_sessions()
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.gate.key_ids()
    }

    /// SIGHUP: re-reads the deny list, keys, legacy sources, console TLS files and the
    /// listener's certificate, each part on its own ([`crate::reload`]): a part that
    /// fails is logged and counted, the others take effect, and live sessions are
    /// untouched (but for those the deny list or a withdrawn token now revokes). The
    /// error names the parts that failed.
    pub fn reload(&self) -> Result<(), ReloadFailed> {
        let mut outcomes = self.gate.reload();
        if self.config.tls.is_some() {
            let tls = load_listener_tls(&self.config).map(|tls| {
                *self.serving.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
            });
            let outcome = Outcome::of(Part::Tls, tls);
            self.metrics().reloaded(Part::Tls.as_str(), outcome.ok());
            outcomes.push(outcome);
        }
        outcomes.iter().for_each(Outcome::log);
        ReloadFailed::check(&outcomes)
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
        if let Ok(addr) = listener.local_addr() {
            self.gate.listening(addr);
        }
        let mut listener = Acceptor::new(listener, "browsers");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                (stream, peer) = listener.accept() => {
                    // Counted before anything is read; a trusted balancer's own
                    // address is not a client (its PROXY header may name one).
                    let client = (!self.config.clients.trusts(peer.ip())).then_some(peer.ip());
                    match self.serving.pending.admit(client) {
                        Ok(slot) => {
                            let proxy = self.clone();
                            tokio::spawn(async move { proxy.connection(stream, peer, slot).await });
                        }
                        Err(over) => self.turn_away(stream, peer, over),
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.log_suppressed(now);
                    self.gate.housekeeping(now);
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        self.serving.draining.store(true, Ordering::SeqCst);
        let grace = self.config.limits.grace;
        let live = self.sessions().live_count();
        info!(
            live,
            grace_s = grace.as_secs(),
            "shutting down: draining sessions"
        );
        let clean = self.sessions().drain(grace).await;
        info!(clean, "shutdown complete");
        clean
    }

    /// One request: a WebSocket session, the page's own endpoints, an extension's
    /// route or a file.
    /// `deadline` is the connection's handshake deadline, which a request body must
    /// arrive by.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        hop: SocketAddr,
        tls: bool,
        deadline: tokio::time::Instant,
    ) -> Response<Body> {
        // `hop` sent this request; a trusted balancer may name the client behind it.
        let client = clientaddr::forwarded_client(hop, req.headers(), &self.config.clients);
        let tls = clientaddr::browser_used_tls(hop, req.headers(), &self.config.clients, tls);
        let head = head_size(&req);
        if head > MAX_HEAD {
            let r = Refusal::new(
                Code::HeadTooLarge,
                format!("request headers too large ({head} bytes; at most {MAX_HEAD})"),
            );
            return self.refused(client, r.into());
        }
        if handshake::is_websocket_upgrade(req.headers()) {
            let clients = &self.config.clients;
            if clients.balancer_only && !clients.trusts(hop.ip()) {
                let r = Refusal::new(
                    Code::NotThroughBalancer,
                    "this proxy takes sessions only through its balancer",
                );
                return self.refused(client, r.into());
            }
            return match self.clone().websocket(req, client, tls).await {
                Ok(switching) => switching,
                Err(rejected) => self.refused(client, rejected),
            };
        }
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/consolegate/check") => {
                self.check_endpoint(req, client, deadline).await
            }
            (&Method::GET, "/consolegate/config.json") => self.config_json(),
            (method, _) => {
                let head = method == Method::HEAD;
                match self
                    .extension
                    .as_ref()
                    .and_then(|x| x.answer(method, &path))
                {
                    Some(Answer::Json(v)) => self.json(&v),
                    // An extension's files are the engine pages of the web directory.
                    Some(Answer::File(file)) => self.file(&self.config.web.dir, &file, head).await,
                    None if matches!(*method, Method::GET | Method::HEAD) => {
                        self.static_file(&path, head).await
                    }
                    None => http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                }
            }
        }
    }

    /// A WebSocket request, from the handshake to the 101 answer; the session then
    /// runs on its own task until it ends.
    async fn websocket(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        client: SocketAddr,
        tls: bool,
    ) -> Result<Response<Body>, Rejected> {
        let started = Instant::now();
        // The handshake: RFC 6455, and the proxy still taking sessions.
        let handshake = Handshake::read(req.headers())?;
        if self.is_draining() {
            let r = Refusal::new(Code::Draining, "the proxy is shutting down; try again");
            return Err(r.into());
        }
        self.gate.throttle(client.ip())?;
        // The ticket, the policy and the console server's TCP connection: one value
        // that gives back everything it took if the session does not start.
        let ticket = uri::ticket_in(req.uri(), handshake.ticket(), self.gate.legacy())?;
        let headers = req.headers();
        let admission: Admission = self
            .gate
            .admit(&admission::Request {
                client,
                origin: header_str(headers, header::ORIGIN),
                host: header_str(headers, header::HOST),
                tls,
                ticket: ticket.as_deref(),
            })
            .await?;
        // The session is registered (and its recording created, or it is refused);
        // then the 101 answer, and on the session's task the upgrade, the console
        // server's TLS or VeNCrypt, the relay, and the close and its log line.
        let upgrade = hyper::upgrade::on(&mut req);
        self.gate.open(admission, upgrade, started).await?;
        self.metrics().handshake_done(started.elapsed());
        Ok(handshake.accept())
    }
}

impl Watched for Proxy {
    fn sessions(&self) -> &Sessions {
        self.gate.sessions()
    }

    fn metrics(&self) -> &Metrics {
        self.gate.metrics()
    }

    fn is_draining(&self) -> bool {
        Proxy::is_draining(self)
    }

    fn has_keys(&self) -> bool {
        !self.key_ids().is_empty()
    }

    fn admin_token_file(&self) -> Option<&Path> {
        self.config.admin.token_file.as_deref()
    }

    fn recorder(&self) -> &Arc<Recorder> {
        self.gate.recorder()
    }

    fn admin_hosts(&self) -> &[String] {
        &self.config.admin.hosts
    }

    fn listening(&self, addr: SocketAddr) {
        self.gate.listening(addr);
    }
}

fn load_listener_tls(config: &Config) -> Result<Option<TlsAcceptor>, TlsError> {
    config
        .tls
        .as_ref()
        .map(|files| load_tls(&files.cert, &files.key))
        .transpose()
}

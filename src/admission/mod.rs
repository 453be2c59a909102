//! Admission: everything between "a WebSocket request arrived" and "its relay started",
//! as one value.
//!
//! [`Gate::admit`] runs the checks in order, each taking what it needs:
//!
//! 1. origin (cross-site WebSocket hijacking);
//! 2. the ticket: present, rules 1–6 (or a legacy credential), not revoked, a console
//!    TLS mode this proxy can serve, and what it asks of the session: `view` is
//!    refused for SPICE, whose input the proxy does not filter
//!    ([`check_view`](crate::tap::check_view)), and a session that must be recorded
//!    (`rec`, or `[recording] policy = "all"`) is refused when the proxy cannot record
//!    it ([`Recorder::check`]), before any use of the ticket is taken;
//! 3. rule 7: one use of a single-use ticket is taken ([`SingleUse`]);
//! 4. rule 8: the port for the ticket's kind, then every address the host resolves to,
//!    none of which may be one of the proxy's own listeners (`own.rs`), whatever the
//!    policy allows;
//! 5. a session slot (the proxy's limit) and a slot in the client's count;
//! 6. the TCP connection to the console server.
//!
//! and returns an [`Admission`] holding every slot, the single-use record and the
//! console connection. Dropping it, on any failure and at any point, gives them all
//! back; nothing is undone by hand. [`Gate::open`] then registers the session, creates
//! its recording when it must be recorded (`record.rs`: a proxy that cannot create it
//! refuses the session before the 101), and once the browser's upgrade and the console
//! server's TLS or VeNCrypt are through, spends the use and relays, through a
//! [`Tap`](crate::tap::Tap) for a view-only or recorded session, until the session ends
//! (`run.rs`).
//!
//! [`Gate::check`] runs steps 2–4 without taking anything: the console page's
//! pre-flight (`POST /consolegate/check`), and any caller that wants the verdict
//! without side effects.

mod own;
mod record;
mod resolve;
mod run;
mod single_use;

pub use own::OwnListeners;
pub use single_use::SingleUse;

use crate::backend::{self, Backend};
use crate::config::Config;
use crate::denylist::{DenyList, DenyListError, Subject};
use crate::keys::{self, KeyError, KeySet};
use crate::legacy::{self, Legacy};
use crate::limits::{ClientLimits, ClientSlot, TicketSessions};
use crate::ops::metrics::Metrics;
use crate::policy::{OriginPolicy, ReplayCache, TargetPolicy};
use crate::recording::{Recorder, RecordingConfig, RecordingError};
use crate::refusal::{Code, Refusal, Refuse};
use crate::relay::{RelayConfig, Stop};
use crate::reload::{Outcome, Part};
use crate::session::{Sessions, Slot};
use crate::ticket::{self, Verified, VerifyOptions};
use crate::util::time::unix_now;
use resolve::resolve;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// How often recording retention runs (and once at start): it reads the directory.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Why the admission state could not be loaded or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Backend(#[from] backend::LoadError),
    #[error(transparent)]
    Legacy(#[from] legacy::LoadError),
    #[error(transparent)]
    DenyList(#[from] DenyListError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
}

/// The key files a reload could not load (the others are in force).
#[derive(Debug)]
pub struct KeysNotLoaded(pub Vec<KeyError>);

impl std::fmt::Display for KeysNotLoaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The settings admission applies, from the configuration.
struct Rules {
    /// Rules 4–6.
    verify: VerifyOptions,
    /// Rule 7 on.
    single_use: bool,
    /// Rule 8.
    targets: TargetPolicy,
    origins: OriginPolicy,
    /// For each session's relay.
    relay: RelayConfig,
    /// Key files, re-read on reload.
    trust: Vec<PathBuf>,
}

/// What a request is checked against and what it takes a share of: one per proxy.
pub struct Gate {
    rules: Rules,
    /// Trusted keys; replaced whole on reload so a verification never sees half a set.
    keys: RwLock<Arc<KeySet>>,
    /// oVirt engine tickets and websockify token files, when configured.
    legacy: Legacy,
    /// Revoked ticket ids and users (see [`crate::denylist`]).
    deny: Arc<DenyList>,
    /// Rule 7: the single-use tickets whose use is taken or spent.
    replay: Arc<ReplayCache>,
    /// Per client address: handshake rate and session count.
    client_limits: Arc<ClientLimits>,
    /// Live sessions per ticket (`max_sessions_per_ticket`).
    ticket_sessions: Arc<TicketSessions>,
    /// All live sessions: the limit, the registry, drain.
    sessions: Sessions,
    /// The addresses this process listens on, which no ticket may reach.
    own: OwnListeners,
    /// Reaches console servers: TCP, and TLS with the console CA.
    backend: Backend,
    /// Session recording; records nothing without `[recording]`.
    recorder: Arc<Recorder>,
    /// When recording retention last ran (`None`: not yet).
    last_retention: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

/// What admission needs of a WebSocket request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The client (behind a trusted balancer: the address it named).
    pub client: SocketAddr,
    /// The `Origin` header, if any (browsers always send one).
    pub origin: Option<&'a str>,
    /// The `Host` header, for an Origin that must be the proxy itself.
    pub host: Option<&'a str>,
    /// Whether the browser reached the proxy over TLS.
    pub tls: bool,
    /// The ticket from the subprotocol or the URL; `None` when there is none.
    pub ticket: Option<&'a str>,
}

/// A refusal, with the ticket when the refusal came after its signature was checked
/// (so the log line can name `jti`, `sub` and the key).
#[derive(Debug)]
pub struct Rejected {
    pub refusal: Refusal,
    pub ticket: Option<Box<Verified>>,
}

impl From<Refusal> for Rejected {
    fn from(refusal: Refusal) -> Rejected {
        Rejected {
            refusal,
            ticket: None,
        }
    }
}

/// Whether a check takes rule 7's use or only looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    CheckOnly,
    Admit,
}

/// A ticket that passed rules 1–8, with the addresses its target resolved to.
pub struct Checked {
    pub ticket: Verified,
    pub addrs: Vec<SocketAddr>,
    /// Rule 7's use, when it was taken (admission of a single-use ticket).
    single_use: Option<SingleUse>,
}

/// An admitted request: every slot its session needs, rule 7's use, and the TCP
/// connection to its console server. Dropping it gives everything back, the use
/// included; [`Gate::open`] turns it into a running session.
pub struct Admission {
    client: SocketAddr,
    ticket: Verified,
    /// Keys the per-ticket session count: the `jti`, or the signature (never logged).
    ticket_key: String,
    /// The console server's address that answered.
    target: SocketAddr,
    /// TCP is up; TLS or VeNCrypt finish after the 101.
    console: backend::Pending,
    single_use: Option<SingleUse>,
    session_slot: Slot,
    client_slot: Option<ClientSlot>,
}

impl Admission {
    pub fn ticket(&self) -> &Verified {
        &self.ticket
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }
}

impl Gate {
    /// Loads the keys, the legacy sources, the deny list and the console TLS files
    /// named by `config`, prepares the recording directory, and sets up the session
    /// registry and the metrics that read it.
    pub fn new(config: &Config) -> Result<Gate, LoadError> {
        Gate::load(config, Recorder::new)
    }

    /// A gate that only checks tickets (`consolegate verify`): loaded from `config`
    /// as [`Gate::new`] loads it, so it applies the same rules, but it changes nothing
    /// on disk (the recording directory is not created). Only [`Gate::check`] is for
    /// it, which takes no single-use record, no slot, and dials no console server.
    pub fn for_checking(config: &Config) -> Result<Gate, LoadError> {
        Gate::load(config, |c| Ok(Recorder::for_checking(c)))
    }

    fn load(
        config: &Config,
        recorder: impl FnOnce(Option<RecordingConfig>) -> Result<Recorder, RecordingError>,
    ) -> Result<Gate, LoadError> {
        let keys = load_keys(&config.tickets.trust)?;
        let sessions = Sessions::new(config.limits.max_sessions);
        let deny = Arc::new(DenyList::load(config.tickets.deny_list.as_deref())?);
        let recorder = Arc::new(recorder(config.recording.clone())?);
        let metrics = Arc::new(Metrics::new(
            sessions.clone(),
            deny.clone(),
            recorder.stats().clone(),
        ));
        metrics.keys_loaded(&keys);
        for part in loaded_parts(config) {
            metrics.reloaded(part.as_str(), true);
        }
        let own = OwnListeners::default();
        own.add(config.listen);
        if let Some(admin) = config.admin.listen {
            own.add(admin);
        }
        Ok(Gate {
            rules: Rules {
                verify: config.tickets.verify.clone(),
                single_use: config.tickets.single_use,
                targets: config.targets.policy.clone(),
                origins: config.origins.clone(),
                relay: config.limits.relay.clone(),
                trust: config.tickets.trust.clone(),
            },
            keys: RwLock::new(Arc::new(keys)),
            legacy: load_legacy(&config.legacy, &sessions)?,
            deny,
            replay: Arc::default(),
            client_limits: Arc::new(ClientLimits::new(config.limits.per_client.clone())),
            ticket_sessions: Arc::new(TicketSessions::new(config.tickets.max_sessions_per_ticket)),
            sessions,
            own,
            backend: Backend::new(
                config.backend_tls.clone(),
                config.targets.connect_timeout,
                config.limits.handshake_timeout,
            )?,
            recorder,
            last_retention: Mutex::new(None),
            metrics,
        })
    }

    /// SIGHUP: the deny list (ending the live sessions it now revokes), the keys, the
    /// oVirt engine certificate, the token source and the console TLS files, each on
    /// its own ([`crate::reload`]): one part's failure never holds back another, and a
    /// key removed from the trust directory stops verifying whatever else fails.
    /// Returns each part's outcome, counted in the metrics, for the caller to log.
    pub fn reload(&self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        if self.deny.path().is_some() {
            let r = self.deny.reload_and_enforce(&self.sessions);
            outcomes.push(Outcome::of(Part::DenyList, r));
        }
        if !self.rules.trust.is_empty() {
            outcomes.push(Outcome::of(Part::Keys, self.reload_keys()));
        }
        if let Some(r) = self.legacy.reload_ovirt() {
            outcomes.push(Outcome::of(Part::Ovirt, r));
        }
        if let Some(r) = self.legacy.reload_tokens() {
            outcomes.push(Outcome::of(Part::Tokens, r));
        }
        outcomes.push(Outcome::of(Part::BackendTls, self.backend.reload()));
        for o in &outcomes {
            self.metrics.reloaded(o.part.as_str(), o.ok());
        }
        outcomes
    }

    /// The trusted keys become exactly those that load now, whatever failed: a removed
    /// or broken key file stops verifying at once. The error lists what did not load.
    fn reload_keys(&self) -> Result<(), KeysNotLoaded> {
        let (keys, errors) = keys::load_trusted_available(&self.rules.trust);
        self.metrics.keys_loaded(&keys);
        let ids: Vec<String> = keys.iter().map(|(k, _)| k.to_string()).collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        info!(keys = ?ids, "trusted keys in force");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(KeysNotLoaded(errors))
        }
    }

    /// A handshake token of the client's: the WebSocket upgrade and the pre-flight
    /// both verify a ticket, so both draw from one bucket.
    pub fn throttle(&self, client: IpAddr) -> Result<(), Refusal> {
        self.client_limits
            .handshake(client, Instant::now())
            .map_err(|e| Refusal::of(&e))
    }

    /// Steps 1–6 (see the module's doc): everything a session needs, or why not.
    pub async fn admit(&self, req: &Request<'_>) -> Result<Admission, Rejected> {
        if let Err(e) = self.rules.origins.check(req.origin, req.host, req.tls) {
            return Err(Refusal::of(&e).into());
        }
        let Some(raw) = req.ticket else {
            return Err(Refusal::new(
                Code::NoTicket,
                "no ticket (expected a ticket.<ticket> subprotocol, /<ticket> or ?token=<ticket>)",
            )
            .into());
        };
        let checked = self.check_ticket(raw, Mode::Admit).await?;
        let refused = |refusal: Refusal| Rejected {
            refusal,
            ticket: Some(Box::new(checked.ticket.clone())),
        };
        let Some(session_slot) = self.sessions.reserve() else {
            return Err(refused(Refusal::new(
                Code::TooManySessions,
                "the proxy is at its session limit; try again later",
            )));
        };
        let client_slot = self
            .client_limits
            .session(req.client.ip())
            .map_err(|e| refused(Refusal::of(&e)))?;
        let claims = &checked.ticket.claims;
        let dialled = Instant::now();
        let (tcp, target) = self
            .backend
            .dial(&claims.host, &checked.addrs)
            .await
            .map_err(|e| refused(Refusal::of(&e)))?;
        self.metrics.backend_connected(dialled.elapsed());
        let Checked {
            ticket, single_use, ..
        } = checked;
        Ok(Admission {
            client: req.client,
            console: self
                .backend
                .pending(tcp, &ticket.claims.host, ticket.claims.tls),
            ticket_key: ticket_key(&ticket, raw),
            ticket,
            target,
            single_use,
            session_slot,
            client_slot,
        })
    }

    /// Rules 1–8 and the proxy's support of the ticket's console TLS mode, taking
    /// nothing: what admitting `ticket` now would say, short of the slots and the
    /// console server.
    pub async fn check(&self, ticket: &str) -> Result<Checked, Rejected> {
        self.check_ticket(ticket, Mode::CheckOnly).await
    }

    /// Step 2–4: the ticket, then rules 7 and 8.
    async fn check_ticket(&self, raw: &str, mode: Mode) -> Result<Checked, Rejected> {
        let now = unix_now();
        let opts = &self.rules.verify;
        let verified = match self.legacy.verify(raw, opts, now) {
            Some(legacy) => legacy.map_err(|e| Refusal::of(&e)),
            None => {
                ticket::verify(raw, &self.current_keys(), opts, now).map_err(|e| Refusal::of(&e))
            }
        }?;
        let refused = |e: &dyn Refuse| Rejected {
            refusal: Refusal::of(e),
            ticket: Some(Box::new(verified.clone())),
        };
        let claims = &verified.claims;
        self.deny
            .check(Subject {
                issuer: &verified.kid,
                jti: claims.jti.as_deref(),
                sub: claims.sub.as_deref(),
            })
            .map_err(|e| refused(&e))?;
        self.backend.supports(claims.tls).map_err(|e| refused(&e))?;
        // Never a silent fallback: a view ticket for a console whose input the proxy
        // cannot filter (SPICE) is refused, like any claim it cannot enforce.
        crate::tap::check_view(claims.kind, claims.view).map_err(|e| refused(&e))?;
        // Before rule 7 takes a use: a session that must be recorded and cannot be is
        // refused, and its ticket stays good for a proxy that can record it.
        if self.recorder.wanted(claims.rec) {
            if let Err(e) = self.recorder.check(claims.kind) {
                if mode == Mode::Admit {
                    debug!(cause = %e, "a session that must be recorded cannot be");
                }
                return Err(refused(&e));
            }
        }
        let single_use = match (self.rules.single_use, mode) {
            (false, _) => None,
            (true, Mode::CheckOnly) => {
                SingleUse::look(&self.replay, &verified.kid, claims, now)
                    .map_err(|e| refused(&e))?;
                None
            }
            (true, Mode::Admit) => Some(
                SingleUse::take(&self.replay, &verified.kid, claims, opts.leeway_secs, now)
                    .map_err(|e| refused(&e))?,
            ),
        };
        // From here a failure drops `single_use`, which gives the use back.
        self.rules
            .targets
            .check_port(claims.kind, claims.port)
            .map_err(|e| refused(&e))?;
        let addrs = resolve(&claims.host, claims.port)
            .await
            .map_err(|r| Rejected {
                refusal: r,
                ticket: Some(Box::new(verified.clone())),
            })?;
        self.rules
            .targets
            .check_resolved(claims.kind, &claims.host, &addrs)
            .map_err(|e| refused(&e))?;
        self.own.check(&addrs).map_err(|e| refused(&e))?;
        Ok(Checked {
            ticket: verified,
            addrs,
            single_use,
        })
    }

    /// Records an address the process listens on (a listener just bound): no ticket
    /// may name it as its console server.
    pub fn listening(&self, addr: SocketAddr) {
        self.own.add(addr);
    }

    /// The listener addresses no ticket may reach.
    pub fn own_listeners(&self) -> Vec<SocketAddr> {
        self.own.list()
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key ids of the trusted keys in force.
    pub fn key_ids(&self) -> Vec<String> {
        self.current_keys()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect()
    }

    pub fn legacy(&self) -> &Legacy {
        &self.legacy
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn deny_list(&self) -> &DenyList {
        &self.deny
    }

    /// Session recording: the admin listener lists and serves its files.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// The counters and histograms of the request path, read by the admin listener.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn client_limits(&self) -> &ClientLimits {
        &self.client_limits
    }

    pub fn ticket_sessions(&self) -> &TicketSessions {
        &self.ticket_sessions
    }

    /// Forgets clients that hold nothing, and applies recording retention at the
    /// first call and every minute after (called once a second).
    pub fn housekeeping(&self, now: Instant) {
        self.client_limits.prune(now);
        let mut last = self
            .last_retention
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.map_or(true, |t| {
            now.saturating_duration_since(t) >= RETENTION_EVERY
        }) {
            *last = Some(now);
            self.prune_recordings();
        }
    }

    /// Applies recording retention off the caller's task (it reads the directory).
    fn prune_recordings(&self) {
        if self.recorder.config().is_some() {
            let recorder = self.recorder.clone();
            tokio::task::spawn_blocking(move || recorder.prune());
        }
    }
}

/// The parts a reload will re-read in this configuration, all loaded at start.
fn loaded_parts(config: &Config) -> Vec<Part> {
    let mut parts = vec![Part::BackendTls];
    if config.tickets.deny_list.is_some() {
        parts.push(Part::DenyList);
    }
    if !config.tickets.trust.is_empty() {
        parts.push(Part::Keys);
    }
    if config.legacy.ovirt_certificate.is_some() {
        parts.push(Part::Ovirt);
    }
    if config.legacy.token_source.is_some() {
        parts.push(Part::Tokens);
    }
    parts
}

/// The legacy sources, with a token source's withdrawn tokens ending their live
/// sessions (1008, the reason), as the deny list does.
fn load_legacy(config: &legacy::LegacyConfig, sessions: &Sessions) -> Result<Legacy, LoadError> {
    let legacy = Legacy::load(config)?;
    let sessions = sessions.clone();
    legacy.on_tokens_withdrawn(Box::new(move |withdrawn| {
        for w in withdrawn {
            let ended = sessions.stop_where(Stop::Kill(w.reason.into()), |i| {
                i.kid == legacy::TOKENFILE_KID && i.jti.as_deref() == Some(w.id.as_str())
            });
            info!(jti = %w.id, entry = %w.origin, reason = w.reason, sessions_ended = ended, "websockify token withdrawn");
        }
    }));
    Ok(legacy)
}

/// Keyed by jti, or by the signature for a ticket without one (never logged).
fn ticket_key(ticket: &Verified, raw: &str) -> String {
    match &ticket.claims.jti {
        Some(jti) => format!("jti:{}:{jti}", ticket.kid),
        None => format!("sig:{}", raw.rsplit('.').next().unwrap_or("")),
    }
}

/// The trusted Ed25519 keys. None configured is allowed only with a legacy source
/// (the configuration checks that): such a proxy serves oVirt tickets or token files.
fn load_keys(trust: &[PathBuf]) -> Result<KeySet, KeyError> {
    if trust.is_empty() {
        return Ok(KeySet::new());
    }
    keys::load_trusted(trust)
}

/// `sub`, `jti` and key id of a ticket for a log line; `-` for what is missing.
pub fn log_fields(ticket: Option<&Verified>) -> (&str, &str, &str) {
    match ticket {
        Some(v) => (
            v.claims.sub.as_deref().unwrap_or("-"),
            v.claims.jti.as_deref().unwrap_or("-"),
            v.kid.as_str(),
        ),
        None => ("-", "-", "-"),
    }
}

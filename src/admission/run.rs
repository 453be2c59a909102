//! From the 101 answer to the session's end: register the admitted session, create its
//! recording when it must be recorded, wait for the browser's upgrade and the console
//! server's TLS or VeNCrypt, spend rule 7's use the moment the relay starts, relay
//! (through a [`Tap`] when the session is view-only or recorded: the view-only filter
//! and the recording's observer), and log the end with the recording's digest and
//! what the view-only filter dropped.

use super::{log_fields, Admission, Gate, Rejected};
use crate::policy::Uses;
use crate::recording::{Finished, RecordingError};
use crate::refusal::{Refusal, Refuse};
use crate::relay::{self, CloseReason, SessionStats, Stop};
use crate::session::SessionInfo;
use crate::tap::{Observer, Tap, TapOptions};
use crate::ticket::Verified;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

impl Gate {
    /// Registers `admission`'s session, creates its recording when it must be
    /// recorded (a recording that cannot be created refuses the session: the error is
    /// the refusal, and everything the admission held is given back), replaces the
    /// oldest session of its ticket when the ticket is over `max_sessions_per_ticket`,
    /// and spawns its life: once `upgrade` (the browser's side of the 101) and the
    /// console server's handshake are both through, the relay starts and the ticket's
    /// use is spent. Returns the session id. `started` is when the request arrived.
    pub async fn open<U>(
        &self,
        admission: Admission,
        upgrade: U,
        started: Instant,
    ) -> Result<u64, Rejected>
    where
        U: Future<Output = Result<Upgraded, hyper::Error>> + Send + 'static,
    {
        let Admission {
            client,
            ticket,
            ticket_key,
            target,
            console,
            single_use,
            session_slot,
            client_slot,
        } = admission;
        let stats = Arc::new(SessionStats::default());
        let info = SessionInfo {
            id: 0,
            client,
            target,
            sub: ticket.claims.sub.clone(),
            jti: ticket.claims.jti.clone(),
            kid: ticket.kid.clone(),
            started: SystemTime::now(),
            stats: stats.clone(),
        };
        let (registration, stop) = self.sessions.register(session_slot, info);
        let id = registration.id();
        // A token withdrawn between its check and the registration would have missed
        // the withdrawal's stop: once registered, it is checked again.
        if !self.legacy.still_listed(&ticket) {
            return Err(Rejected {
                refusal: Refusal::of(&crate::legacy::LegacyError::UnknownToken),
                ticket: Some(Box::new(ticket)),
            });
        }
        // Before the 101: a session that must be recorded and cannot be is refused.
        let (observer, recording) = match self.start_recording(id, client, target, &ticket).await {
            Ok(Some((observer, recording))) => (Some(observer), Some(recording)),
            Ok(None) => (None, None),
            Err(e) => {
                return Err(Rejected {
                    refusal: Refusal::of(&e),
                    ticket: Some(Box::new(ticket)),
                })
            }
        };
        let per_client = Uses::for_kind(ticket.claims.kind).max as usize;
        let (ticket_slot, replaced) = self.ticket_sessions.add(ticket_key, id, per_client);
        let (sub, jti, kid) = log_fields(Some(&ticket));
        if !replaced.is_empty() {
            let n = self.sessions.stop_where(
                Stop::Kill("replaced by a newer session with the same ticket".into()),
                |i| replaced.contains(&i.id),
            );
            info!(session = id, replaced = ?replaced, stopped = n, jti,
                "ticket over max_sessions_per_ticket: the oldest session is replaced");
        }
        info!(
            session = id, client = %client, target = %target, sub, jti, kid = %kid,
            setup_ms = started.elapsed().as_millis() as u64, "session opened"
        );
        let relay_cfg = self.rules.relay.clone();
        let kind = ticket.claims.kind;
        let view = ticket.claims.view;
        tokio::spawn(async move {
            // Held for the whole session: the registry entry, the client's and the
            // ticket's counts. Dropped (given back) when this task ends, however.
            let _held = (registration, client_slot, ticket_slot);
            let opened = Instant::now();
            // Input messages the view-only filter dropped, for the end log line.
            let mut dropped = 0;
            let (upgraded, secured) = tokio::join!(upgrade, console.finish());
            let (up, down, reason) = match (upgraded, secured) {
                (Ok(upgraded), Ok(console)) => {
                    // Rule 7: the session started.
                    if let Some(used) = single_use {
                        used.spend();
                    }
                    let client_io = TokioIo::new(upgraded);
                    let options = TapOptions {
                        kind,
                        view,
                        observer: observer.map(|o| Box::new(o) as Box<dyn Observer>),
                    };
                    if options.needed() {
                        // The observer lives in the tap: once the tap is dropped the
                        // writer can write its trailer, so it goes before the
                        // recording is finished below.
                        let mut tapped = Tap::new(console, options);
                        let out = relay::relay_counted(
                            client_io,
                            &mut tapped,
                            &relay_cfg,
                            stop,
                            Some(stats),
                        )
                        .await;
                        dropped = tapped.dropped();
                        drop(tapped);
                        (out.bytes_up, out.bytes_down, out.reason)
                    } else {
                        let out =
                            relay::relay_counted(client_io, console, &relay_cfg, stop, Some(stats))
                                .await;
                        (out.bytes_up, out.bytes_down, out.reason)
                    }
                }
                (Ok(upgraded), Err(e)) => {
                    drop(observer);
                    // The use goes back before the page hears of the failure: it may
                    // ask /consolegate/check about the same ticket at once.
                    drop(single_use);
                    let code = e.refusal_code();
                    warn!(session = id, client = %client, target = %target, code = %code, reason = %e, "console server handshake failed");
                    relay::close_with(TokioIo::new(upgraded), code.close_code(), &e.to_string())
                        .await;
                    (0, 0, CloseReason::TargetError(e.to_string()))
                }
                (Err(e), _) => {
                    drop(observer);
                    warn!(session = id, client = %client, cause = %e, "upgrade failed after 101");
                    if let Some(recording) = recording {
                        // Header and trailer only: the file stays a valid recording.
                        let _ = recording.finish().await;
                    }
                    return;
                }
            };
            let recorded = match recording {
                Some(recording) => Some(recording.finish().await),
                None => None,
            };
            log_session_end(
                id,
                client,
                target,
                &ticket,
                (up, down, dropped),
                opened.elapsed(),
                &reason,
                recorded.as_ref(),
            );
        });
        Ok(id)
    }
}

/// The session's end: one line, with the recording's name and SHA-256 (the one in
/// its trailer) when it was recorded, or why its recording failed, and for a view-only
/// session what its tap dropped ([`Tap::dropped`]).
#[allow(clippy::too_many_arguments)]
fn log_session_end(
    id: u64,
    client: SocketAddr,
    target: SocketAddr,
    ticket: &Verified,
    (up, down, input_dropped): (u64, u64, u64),
    duration: Duration,
    reason: &CloseReason,
    recorded: Option<&Result<Finished, RecordingError>>,
) {
    let (sub, jti, kid) = log_fields(Some(ticket));
    let duration_ms = duration.as_millis() as u64;
    // A view-only session says so, with the input messages its filter dropped.
    let view = ticket.claims.view;
    match recorded {
        None => info!(
            session = id, client = %client, target = %target, sub, jti, kid = %kid,
            bytes_up = up, bytes_down = down, duration_ms, view, input_dropped,
            close_code = reason.code(), reason = %reason, "session ended"
        ),
        Some(Ok(f)) => info!(
            session = id, client = %client, target = %target, sub, jti, kid = %kid,
            bytes_up = up, bytes_down = down, duration_ms, view, input_dropped,
            close_code = reason.code(), reason = %reason,
            recording = %f.name, recording_sha256 = %f.sha256, recording_bytes = f.bytes,
            "session ended"
        ),
        Some(Err(e)) => warn!(
            session = id, client = %client, target = %target, sub, jti, kid = %kid,
            bytes_up = up, bytes_down = down, duration_ms, view, input_dropped,
            close_code = reason.code(), reason = %reason, recording_error = %e,
            "session ended"
        ),
    }
}

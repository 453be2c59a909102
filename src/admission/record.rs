//! A session's recording, created when the session is registered and before the 101
//! answer: a proxy that cannot create the file of a session that must be recorded
//! refuses the session (503 `recording_unavailable`) instead of running it
//! unrecorded, and the admission it held gives everything back.
//!
//! What the recording needs of the session is here: its metadata (the file's header,
//! docs/recording-format.md) and the way a failing writer ends it (a stop of the
//! session, with the writer's reason as the close reason).

use super::Gate;
use crate::recording::{self, Recording, RecordingError, RecordingObserver};
use crate::relay::Stop;
use crate::ticket::Verified;
use std::net::SocketAddr;

impl Gate {
    /// Creates session `id`'s recording when it must be recorded; `None` when it need
    /// not be.
    pub(super) async fn start_recording(
        &self,
        id: u64,
        client: SocketAddr,
        target: SocketAddr,
        ticket: &Verified,
    ) -> Result<Option<(RecordingObserver, Recording)>, RecordingError> {
        let claims = &ticket.claims;
        if !self.recorder.wanted(claims.rec) {
            return Ok(None);
        }
        let sessions = self.sessions.clone();
        let on_fail: recording::OnFail = Box::new(move |reason| {
            sessions.stop_where(Stop::Kill(reason), |i| i.id == id);
        });
        let meta = meta(id, client, target, ticket);
        self.recorder
            .start(claims.kind, meta, on_fail)
            .await
            .map(Some)
    }
}

/// What a recording says about its session.
fn meta(id: u64, client: SocketAddr, target: SocketAddr, v: &Verified) -> recording::Meta {
    let c = &v.claims;
    let start = recording::unix_ms_now();
    let host = if c.host.contains(':') {
        format!("[{}]", c.host)
    } else {
        c.host.clone()
    };
    recording::Meta {
        session: id,
        sub: c.sub.clone(),
        jti: c.jti.clone(),
        kid: v.kid.clone(),
        client: client.to_string(),
        target: format!("{host}:{}", c.port),
        address: target.to_string(),
        kind: c.kind.as_str().to_string(),
        tls: c.tls.as_str().to_string(),
        view: c.view,
        input: true,
        start: recording::meta::rfc3339_ms(start),
        start_unix_ms: start,
        proxy: recording::meta::proxy_version(),
    }
}

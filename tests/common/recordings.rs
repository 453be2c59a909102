//! Session recordings for tests: a recorder writing into a test's directory (no
//! free-space floor, so a full disk on the test machine refuses nothing) and the
//! metadata of a made-up session.

use consolegate::recording::{meta, Meta, Recorder, RecordingConfig};
use consolegate::ticket::Kind;
use std::path::Path;

/// A recorder with the defaults, writing into `dir`, without a free-space floor.
pub fn recorder(dir: &Path) -> Recorder {
    Recorder::new(Some(RecordingConfig {
        min_free_bytes: 0,
        ..RecordingConfig::new(dir.to_path_buf())
    }))
    .expect("the recording directory can be prepared")
}

/// The metadata of session `session`, a `kind` console of alice's, starting now.
pub fn meta_for(kind: Kind, session: u64) -> Meta {
    let start = consolegate::recording::unix_ms_now();
    Meta {
        session,
        sub: Some("alice".into()),
        jti: Some(format!("jti-{session}")),
        kid: "kid-test".into(),
        client: "127.0.0.1:50000".into(),
        target: "console.example:5901".into(),
        address: "127.0.0.1:5901".into(),
        kind: kind.as_str().into(),
        tls: "none".into(),
        view: false,
        input: true,
        start: meta::rfc3339_ms(start),
        start_unix_ms: start,
        proxy: meta::proxy_version(),
    }
}

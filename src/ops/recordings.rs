//! The admin listener's recording endpoints, behind the same bearer token as session
//! control (a recording shows everything a user did):
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /recordings` | JSON array, oldest first: `name`, `format`, `size`, `modified`, `active` (being written) and the session's metadata from the file's header |
//! | `GET /recordings/<name>` | the file, streamed (`Content-Length`; a recording being written is served as it is at that moment) |
//!
//! The public listener never serves recordings; the player page opens them from the
//! operator's disk. The admin listener ([`super::admin`]) checks the method and the
//! token before it hands a request here; this room knows only the [`Recorder`].

use crate::recording::{report, Recorder};
use crate::util::http::{json, text};
use http_body_util::{Either, Full};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The admin listener's response body: a small fixed one, or a recording file.
pub type AdminBody = Either<Full<Bytes>, FileBody>;

/// Bytes read from a recording per body frame.
const CHUNK: usize = 64 << 10;

/// One recording as `GET /recordings` lists it.
#[derive(Debug, Serialize)]
pub struct RecordingView {
    pub name: String,
    /// `vnc` or `asciicast`.
    pub format: &'static str,
    pub size: u64,
    /// Last write, RFC 3339 UTC.
    pub modified: String,
    /// Being written now.
    pub active: bool,
    /// The header's session metadata (docs/recording-format.md), `null` if unreadable.
    pub session: serde_json::Value,
}

/// True for the paths this module answers.
pub(super) fn handles(path: &str) -> bool {
    path == "/recordings" || path.starts_with("/recordings/")
}

/// Answers an authorized `GET` of `path` (one of [`handles`]); the flag is set when
/// the answer is a file, so the connection is not cut by the short admin request
/// timeout while it streams.
pub(super) async fn handle(
    recorder: Arc<Recorder>,
    path: &str,
    peer: SocketAddr,
) -> (Response<AdminBody>, bool) {
    let left = |r: Response<Full<Bytes>>| (r.map(Either::Left), false);
    if recorder.config().is_none() {
        return left(text(
            StatusCode::NOT_FOUND,
            "session recording is off: set [recording] dir (--recording-dir)",
        ));
    }
    if path == "/recordings" {
        let listed = tokio::task::spawn_blocking(move || {
            recorder.list().map(|v| {
                v.into_iter()
                    .map(|(e, active)| RecordingView {
                        session: report::read_meta(&e.path).unwrap_or(serde_json::Value::Null),
                        name: e.name,
                        format: e.format.as_str(),
                        size: e.size,
                        modified: crate::recording::meta::rfc3339_ms(
                            e.modified
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                                .unwrap_or(0),
                        ),
                        active,
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
        return match listed {
            Ok(Ok(list)) => left(json(StatusCode::OK, &list)),
            Ok(Err(e)) => left(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read the recording directory: {e}"),
            )),
            Err(_) => left(text(StatusCode::INTERNAL_SERVER_ERROR, "listing failed")),
        };
    }
    let name = &path["/recordings/".len()..];
    let Some(file_path) = recorder.path_of(name) else {
        return left(text(StatusCode::NOT_FOUND, "no such recording"));
    };
    let file = match tokio::fs::File::open(&file_path).await {
        Ok(f) => f,
        Err(_) => return left(text(StatusCode::NOT_FOUND, "no such recording")),
    };
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => {
            return left(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read the recording: {e}"),
            ))
        }
    };
    tracing::info!(client = %peer, recording = %name, bytes = size, "recording downloaded by an operator");
    let mut resp = Response::new(Either::Right(FileBody {
        file,
        buf: vec![0u8; CHUNK].into_boxed_slice(),
        remaining: size,
    }));
    let h = resp.headers_mut();
    let ctype = if name.ends_with(".cast") {
        "application/x-asciicast"
    } else {
        "application/octet-stream"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The name is one of ours (digits, letters, '-', '.'), safe in a header.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    (resp, true)
}

/// A recording file as a response body: at most the size it had when opened.
pub struct FileBody {
    file: tokio::fs::File,
    buf: Box<[u8]>,
    remaining: u64,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the recording became shorter while it was sent",
            ))));
        }
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
            &this.buf[..n],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

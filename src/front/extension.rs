//! Extra routes for a program that embeds the proxy, so that the production proxy
//! never names them: `consolegate demo` adds its ticket endpoint and its engine page
//! this way (`crate::demo::engine`); `consolegate serve` adds nothing.
//!
//! An extension sees the requests the proxy does not answer itself (anything but a
//! WebSocket upgrade and `/consolegate/…`), before the static files.

use hyper::Method;
use std::path::PathBuf;

/// What an extension answers.
pub enum Answer {
    /// A JSON document, sent with the page's headers and `no-store`.
    Json(serde_json::Value),
    /// A file the proxy does not serve by itself (an engine page, see
    /// [`super::page::resolve_static`]), sent as a static file.
    File(PathBuf),
}

/// Routes added in front of the static files.
pub trait Extension: Send + Sync + 'static {
    /// The answer to `method` on `path`, or `None` to let the proxy answer (a file,
    /// or 404 / 405).
    fn answer(&self, method: &Method, path: &str) -> Option<Answer>;
}

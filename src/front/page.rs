//! What the console page loads from the proxy: its files (and the browser clients
//! mounted beside them: noVNC, spice-html5, xterm.js, and asciinema-player for the
//! recording player), each with a strict Content-Security-Policy, and
//! `/consolegate/config.json`, the engine origins the page may take tickets from and
//! the proxy's longest session.
//!
//! Files are served only when their real path (every link followed) stays inside the
//! directory the URL named (the web directory or the mounted client's): a link in a
//! web directory that points elsewhere (`passwd.txt -> /etc/passwd`, a linked
//! directory) is 404, as if it were not there. The directories' own real paths are
//! cached ([`RealRoots`]), so a request costs one `realpath` of its file.
//!
//! The proxy serves the console page, not engine pages: files whose name starts with
//! `engine-` (the demo engine page, `engine-demo.html` and its script and style) show
//! how an engine embeds the console and play the engine's part. A production proxy
//! has no ticket endpoint behind them, so it does not serve them at all; an
//! [`Extension`](super::Extension) that plays the engine (the demo) serves them itself.

use super::Proxy;
use crate::config::Config;
use crate::policy::Origin;
use crate::util::http::{self, Body};
use crate::util::percent::percent_decode;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;
use tokio::io::AsyncReadExt;

/// The name prefix of engine pages, which only an extension serves.
const ENGINE_PAGE: &str = "engine-";

impl Proxy {
    /// A file of the console page or of a mounted client; 404 for anything else.
    pub(super) async fn static_file(&self, url_path: &str, head: bool) -> Response<Body> {
        let web = &self.config.web;
        let mounts = [
            ("novnc/", web.novnc_dir.as_path()),
            ("spice/", web.spice_dir.as_path()),
            ("xterm/", web.xterm_dir.as_path()),
            ("asciinema/", web.asciinema_dir.as_path()),
        ];
        match resolve_in(&web.dir, &mounts, url_path) {
            Some((root, path)) => {
                let mut resp = self.file(root, &path, head).await;
                if url_path == PLAYER_PAGE {
                    allow_wasm(resp.headers_mut());
                }
                resp
            }
            None => not_found(),
        }
    }

    /// `path`'s content with its type and the page's headers; 404 when it is not a
    /// readable file whose real path is inside `root`.
    pub(super) async fn file(&self, root: &Path, path: &Path, head: bool) -> Response<Body> {
        let Some(real) = self.serving.web_roots.inside(root, path).await else {
            return not_found();
        };
        let Some(body) = read_regular_file(&real).await else {
            return not_found();
        };
        let ctype = content_type(path);
        let mut resp = Response::new(Body::new(if head {
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

    /// `GET /consolegate/config.json`: the engine origins the page accepts tickets
    /// from, and `limits.max_duration` in seconds (`null`: none), for the page's
    /// session-time warning.
    pub(super) fn config_json(&self) -> Response<Body> {
        let origins: Vec<String> = self
            .config
            .web
            .engine_origins
            .iter()
            .map(origin_string)
            .collect();
        let max_duration_s = self.config.limits.relay.max_duration.map(|d| d.as_secs());
        self.json(&serde_json::json!({
            "engine_origins": origins,
            "max_duration_s": max_duration_s,
        }))
    }

    /// A JSON answer with the page's headers.
    pub(super) fn json(&self, v: &serde_json::Value) -> Response<Body> {
        let mut resp = http::json(StatusCode::OK, v);
        security_headers(resp.headers_mut(), &self.config);
        resp
    }
}

pub(super) fn not_found() -> Response<Body> {
    http::text(StatusCode::NOT_FOUND, "not found")
}

/// The real paths of the directories files are served from, each resolved once and
/// again only when a file seems to be outside it (a package upgrade may re-point a
/// directory link while the proxy runs).
#[derive(Default)]
pub(super) struct RealRoots {
    real: RwLock<HashMap<PathBuf, PathBuf>>,
}

impl RealRoots {
    /// `file`'s real path, if it is inside `root`'s real path.
    pub(super) async fn inside(&self, root: &Path, file: &Path) -> Option<PathBuf> {
        let real_file = tokio::fs::canonicalize(file).await.ok()?;
        let cached = self
            .real
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(root)
            .cloned();
        if cached.as_ref().is_some_and(|r| real_file.starts_with(r)) {
            return Some(real_file);
        }
        let real_root = tokio::fs::canonicalize(root).await.ok()?;
        let inside = real_file.starts_with(&real_root);
        self.real
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(root.to_path_buf(), real_root);
        inside.then_some(real_file)
    }
}

/// The content of `real`, a path with no links left in it, if it is a regular file.
/// Opened with `O_NOFOLLOW`, so a link swapped in for the file after it was resolved
/// is refused rather than followed.
async fn read_regular_file(real: &Path) -> Option<Vec<u8>> {
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(real)
        .await
        .ok()?;
    let meta = file.metadata().await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut body).await.ok()?;
    Some(body)
}

/// Maps a URL path to a file under the web directory, or under a mounted client's
/// directory (`mounts`: URL prefix such as `"novnc/"` and its directory: noVNC,
/// spice-html5, xterm.js). `None` for anything that is not a plain relative path of
/// normal names: no `..`, no hidden files, no empty segments (so `//evil.example` is
/// not a path), no backslashes or NUL; and `None` for engine pages (`engine-*` at
/// the top of the web directory, see the module's doc). Directories get no listing;
/// `/` is `index.html`.
pub fn resolve_static(web_dir: &Path, mounts: &[(&str, &Path)], url_path: &str) -> Option<PathBuf> {
    resolve_in(web_dir, mounts, url_path).map(|(_, path)| path)
}

/// [`resolve_static`], with the directory the path was resolved in (the web
/// directory or a mount's), which its real path must stay inside.
fn resolve_in<'a>(
    web_dir: &'a Path,
    mounts: &[(&str, &'a Path)],
    url_path: &str,
) -> Option<(&'a Path, PathBuf)> {
    let decoded = String::from_utf8(percent_decode(url_path)?).ok()?;
    let rel = decoded.strip_prefix('/')?;
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let (root, rel) = match mounts
        .iter()
        .find_map(|(prefix, dir)| rel.strip_prefix(prefix).map(|r| (*dir, r)))
    {
        Some(mounted) => mounted,
        None if rel.starts_with(ENGINE_PAGE) => return None,
        None => (web_dir, rel),
    };
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
    Some((root, out))
}

/// The recording player's page.
const PLAYER_PAGE: &str = "/player.html";

/// The recording player's CSP: the console page's, plus `'wasm-unsafe-eval'`, which
/// lets asciinema-player compile its terminal emulator (WebAssembly it carries in its
/// own script). It allows compiling WebAssembly only: `eval` and inline scripts stay
/// blocked. Only this page gets it.
fn allow_wasm(h: &mut HeaderMap) {
    let Some(csp) = h
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let csp = csp.replacen(
        "script-src 'self';",
        "script-src 'self' 'wasm-unsafe-eval';",
        1,
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
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

fn origin_string(o: &Origin) -> String {
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
    let engines = &config.web.engine_origins;
    let ancestors = if engines.is_empty() {
        "'none'".to_string()
    } else {
        engines
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_stay_inside_the_web_directory_and_engine_pages_are_withheld() {
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
            resolve_static(web, novnc, "/js/engine-x.js"),
            Some(PathBuf::from("/srv/web/js/engine-x.js")),
            "only the engine pages at the top are withheld"
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
            "/engine-demo.html",
            "/engine-demo.js",
            "/%65ngine-demo.css",
        ] {
            assert_eq!(resolve_static(web, novnc, bad), None, "{bad}");
        }
    }
}

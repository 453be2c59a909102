//! The demo's engine: what a virtualization platform's engine does for the console,
//! played by `consolegate demo` inside the proxy's process so the demo needs nothing
//! else. It signs short-lived tickets for the demo console server (`POST
//! /demo/ticket`, which `web/engine-demo.js` calls) and serves the engine page
//! (`engine-demo.html` and its script and style), which a production proxy does not.
//!
//! It reaches the proxy only as an [`Extension`]: the front never names the demo.

use crate::front::{Answer, Extension};
use crate::keys;
use crate::ticket::{Claims, Signer};
use crate::util::time::unix_now;
use hyper::Method;
use std::path::PathBuf;

/// Lifetime of the tickets the engine page gets: as an engine would sign them.
const PAGE_TICKET_SECS: i64 = 120;

/// The engine page's files, served from the web directory.
const PAGES: [&str; 4] = [
    "engine-demo.html",
    "engine-demo.js",
    "engine-demo.css",
    INDEX,
];

/// The demo's start page (`/`), linking to the engine page; a production proxy's
/// `/` is `index.html`, which says what the proxy is and links to no demo.
const INDEX: &str = "engine-demo-index.html";

/// Signs tickets for one console server and serves the engine page.
pub struct DemoEngine {
    signer: Signer,
    /// The demo console server's port on 127.0.0.1.
    console_port: u16,
    /// Its VNC password, handed to the page with each ticket (as an engine does).
    password: String,
    web_dir: PathBuf,
}

impl DemoEngine {
    pub fn new(signer: Signer, console_port: u16, password: String, web_dir: PathBuf) -> Self {
        DemoEngine {
            signer,
            console_port,
            password,
            web_dir,
        }
    }

    /// A ticket for the demo console, valid for `ttl_secs`.
    pub fn ticket(&self, ttl_secs: i64) -> String {
        let now = unix_now();
        let claims = Claims {
            sub: Some("demo".into()),
            jti: Some(keys::random_jti()),
            iat: Some(now),
            ..Claims::new("127.0.0.1", self.console_port, now + ttl_secs)
        };
        self.signer.sign(&claims)
    }
}

impl Extension for DemoEngine {
    fn answer(&self, method: &Method, path: &str) -> Option<Answer> {
        match *method {
            Method::POST if path == "/demo/ticket" => Some(Answer::Json(serde_json::json!({
                "ticket": self.ticket(PAGE_TICKET_SECS),
                "password": self.password,
                "title": "consolegate demo",
                "kind": "vnc",
            }))),
            Method::GET | Method::HEAD => {
                if path == "/" || path == "/index.html" {
                    return Some(Answer::File(self.web_dir.join(INDEX)));
                }
                let page = PAGES.iter().find(|p| path.strip_prefix('/') == Some(**p))?;
                Some(Answer::File(self.web_dir.join(page)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_answers_its_ticket_route_and_its_pages_only() {
        let engine = DemoEngine::new(
            Signer::new(keys::random_signing_key()),
            5999,
            "pw".into(),
            PathBuf::from("/srv/web"),
        );
        match engine.answer(&Method::POST, "/demo/ticket") {
            Some(Answer::Json(v)) => {
                assert_eq!(v["password"], "pw");
                assert_eq!(v["ticket"].as_str().unwrap().split('.').count(), 3);
            }
            _ => panic!("the ticket route answers JSON"),
        }
        match engine.answer(&Method::GET, "/engine-demo.js") {
            Some(Answer::File(p)) => assert_eq!(p, PathBuf::from("/srv/web/engine-demo.js")),
            _ => panic!("the engine page is served"),
        }
        for start in ["/", "/index.html"] {
            match engine.answer(&Method::GET, start) {
                Some(Answer::File(p)) => {
                    assert_eq!(p, PathBuf::from("/srv/web/engine-demo-index.html"))
                }
                _ => panic!("the demo's start page is its own"),
            }
        }
        for (m, p) in [
            (Method::GET, "/demo/ticket"),
            (Method::GET, "/console.html"),
            (Method::GET, "/engine-other.html"),
            (Method::POST, "/engine-demo.html"),
        ] {
            assert!(engine.answer(&m, p).is_none(), "{m} {p}");
        }
    }
}

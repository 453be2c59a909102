//! Shared harness for the integration tests: a proxy on an ephemeral loopback port
//! with throwaway keys, console-server stand-ins, and a raw ticket crafter.
#![allow(dead_code)]

use base64::Engine as _;
use consolegate::config::{Config, ServeArgs};
use consolegate::front::{unix_now, Proxy};
use consolegate::keys;
use consolegate::ticket::{Claims, Signer};
use ed25519_dalek::{Signer as _, SigningKey};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub struct TestProxy {
    pub addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    pub key: SigningKey,
    pub signer: Signer,
    pub key_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<bool>>,
}

impl TestProxy {
    /// A plain-ws proxy that may reach any loopback port; `tweak` adjusts the flags.
    pub async fn start(tweak: impl FnOnce(&mut ServeArgs)) -> TestProxy {
        let key_dir = tempfile::tempdir().unwrap();
        keys::generate(key_dir.path(), "engine").unwrap();
        let key = keys::load_signing_key(&key_dir.path().join("engine.key")).unwrap();
        let mut args = ServeArgs {
            listen: Some("127.0.0.1:0".into()),
            allow_plain: true,
            trust: vec![key_dir.path().to_path_buf()],
            allow_port: vec!["1-65535".into()],
            ping_interval: Some("off".into()),
            web_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")),
            ..ServeArgs::default()
        };
        tweak(&mut args);
        let config = Config::load(&args).unwrap();
        let proxy = Arc::new(Proxy::new(config).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.clone().serve(listener, async move {
            let _ = rx.await;
        }));
        TestProxy {
            addr,
            proxy,
            signer: Signer::new(key.clone()),
            key,
            key_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A valid ticket for `target`, valid for two minutes.
    pub fn ticket(&self, target: SocketAddr) -> String {
        self.signer.sign(&self.claims(target))
    }

    pub fn claims(&self, target: SocketAddr) -> Claims {
        Claims {
            sub: Some("alice".into()),
            jti: Some(keys::random_jti()),
            iat: Some(unix_now()),
            ..Claims::new(target.ip().to_string(), target.port(), unix_now() + 120)
        }
    }

    pub fn url(&self, ticket: &str) -> String {
        format!("ws://{}/{}", self.addr, ticket)
    }

    /// Starts the drain (as SIGTERM does) and returns the serve task.
    pub fn shutdown(&mut self) -> JoinHandle<bool> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap()
    }
}

/// A JWS from raw header and claims JSON, signed with `key` (for crafted tickets).
pub fn raw_ticket(key: &SigningKey, header: &str, claims: &str) -> String {
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.to_bytes()))
}

/// The standard header with the key's id.
pub fn header_for(key: &SigningKey) -> String {
    format!(
        r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
        keys::thumbprint(&key.verifying_key())
    )
}

/// A console-server stand-in that accepts one connection and hands it to the test.
pub async fn one_shot_target() -> (SocketAddr, oneshot::Receiver<tokio::net::TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok((s, _)) = listener.accept().await {
            let _ = tx.send(s);
        }
    });
    (addr, rx)
}

/// The status and body of a refused WebSocket handshake.
pub async fn refused(url: &str) -> (u16, String) {
    refused_with(url, &[]).await
}

pub async fn refused_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => panic!("handshake to {url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

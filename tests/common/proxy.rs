//! The proxy under test, two ways: in-process ([`TestProxy`], on a listener the test
//! bound, with throwaway keys) for most tests, and the `consolegate serve` binary as a
//! child ([`ServeProcess`], JSON logs) where a test needs signals, file-descriptor
//! counts, a `ulimit -n` or several proxies behind a balancer. [`DemoProcess`] is
//! `consolegate demo`, the README's first command.
//!
//! Neither ever picks a port in advance: the in-process proxy serves the listener the
//! test bound to port 0, and the binary listens on port 0 and its "consolegate
//! listening" log line says where.

use super::process::Process;
use super::tickets::claims_for;
use super::wait::wait_until;
use super::LIMIT;
use consolegate::config::{Config, ServeArgs};
use consolegate::front::Proxy;
use consolegate::keys;
use consolegate::ticket::{Claims, Signer};
use ed25519_dalek::SigningKey;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
        Self::start_on("127.0.0.1:0", tweak).await
    }

    /// The same on a listener bound to `bind` (port 0), e.g. `0.0.0.0:0`.
    pub async fn start_on(bind: &str, tweak: impl FnOnce(&mut ServeArgs)) -> TestProxy {
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
        let listener = TcpListener::bind(bind).await.unwrap();
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

    /// Starts this proxy's admin listener on a loopback port of its own and returns
    /// its address.
    pub async fn start_admin(&self) -> SocketAddr {
        let admin = consolegate::ops::admin::Admin::new(self.proxy.clone()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(admin.serve(listener));
        addr
    }

    /// A valid ticket for `target`, valid for two minutes.
    pub fn ticket(&self, target: SocketAddr) -> String {
        self.signer.sign(&self.claims(target))
    }

    pub fn claims(&self, target: SocketAddr) -> Claims {
        claims_for(target)
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

/// The binary the child-process tests run: `CONSOLEGATE_BIN` runs them against
/// another build (the release one, for figures), this crate's otherwise.
pub fn consolegate_bin() -> OsString {
    std::env::var_os("CONSOLEGATE_BIN")
        .unwrap_or_else(|| OsString::from(env!("CARGO_BIN_EXE_consolegate")))
}

/// `consolegate serve` as a child, JSON logs on stderr.
pub struct ServeProcess {
    pub process: Process,
    /// Where it listens, from its "consolegate listening" line.
    pub addr: SocketAddr,
}

impl ServeProcess {
    /// Runs `consolegate serve --listen 127.0.0.1:0 --admin-listen off --log-format
    /// json` with `args` added, under `ulimit -n <nofile>` when given, and waits until
    /// it listens.
    /// `args` may choose `--log-format text`; the address is then read from the text
    /// line.
    pub async fn start(name: &str, args: &[OsString], nofile: Option<u32>) -> ServeProcess {
        let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n}; "));
        let text = args.iter().any(|a| a == "--log-format");
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("{limit}exec \"$0\" \"$@\""))
            .arg(consolegate_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            // Several child proxies run at once: no fixed admin port for them.
            .args(["--admin-listen", "off"])
            .args(if text {
                &[][..]
            } else {
                &["--log-format", "json"][..]
            })
            .args(args);
        let process = Process::spawn(name, &mut cmd);
        let addr = if text {
            let mut addr = None;
            wait_until("the \"consolegate listening\" text line", LIMIT, || {
                process.assert_running();
                addr = process.log.lines().iter().find_map(|l| {
                    let rest = l.split("consolegate listening").nth(1)?;
                    let value = rest.split("listen=").nth(1)?.split_whitespace().next()?;
                    value.trim_matches('"').parse().ok()
                });
                addr.is_some()
            })
            .await;
            addr.expect("found")
        } else {
            let listening = process
                .wait_for_event("the \"consolegate listening\" line", |v| {
                    v["message"] == "consolegate listening"
                })
                .await;
            listening["listen"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no address in {listening}"))
        };
        ServeProcess { process, addr }
    }

    pub fn url(&self, ticket: &str) -> String {
        format!("ws://{}/{}", self.addr, ticket)
    }

    pub fn count(&self, pred: impl Fn(&serde_json::Value) -> bool) -> usize {
        self.process.log.count(pred)
    }

    pub fn messages(&self, message: &str) -> usize {
        self.process.log.messages(message)
    }

    /// Sessions opened minus sessions ended, from the log.
    pub fn live(&self) -> i64 {
        self.messages("session opened") as i64 - self.messages("session ended") as i64
    }

    /// Open file descriptors of the proxy.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.process.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn signal(&self, signal: &str) {
        self.process.signal(signal)
    }

    pub async fn wait_exit(&self, within: Duration) -> std::process::ExitStatus {
        self.process.wait_exit(within).await
    }
}

/// `consolegate serve` as a child ([`ServeProcess`], which it derefs to) with a fresh
/// engine key it trusts, allowed to reach any loopback port.
pub struct ChildProxy {
    pub proxy: ServeProcess,
    /// `engine.key` and `engine.pub`, and `trust/` (the directory the proxy trusts).
    pub key_dir: tempfile::TempDir,
    pub signer: Signer,
}

impl std::ops::Deref for ChildProxy {
    type Target = ServeProcess;
    fn deref(&self) -> &ServeProcess {
        &self.proxy
    }
}

impl ChildProxy {
    /// Runs the proxy with `extra` flags; `nofile` sets its `ulimit -n`.
    pub async fn start(extra: &[&str], nofile: Option<u32>) -> ChildProxy {
        let key_dir = tempfile::tempdir().unwrap();
        let trust = key_dir.path().join("trust");
        std::fs::create_dir(&trust).unwrap();
        keys::generate(key_dir.path(), "engine").unwrap();
        std::fs::copy(key_dir.path().join("engine.pub"), trust.join("engine.pub")).unwrap();
        let signer =
            Signer::new(keys::load_signing_key(&key_dir.path().join("engine.key")).unwrap());
        let mut args: Vec<OsString> = vec!["--allow-plain".into(), "--trust".into()];
        args.push(trust.into_os_string());
        args.extend(
            ["--allow-target", "127.0.0.1/32", "--allow-port", "1-65535"]
                .iter()
                .chain(extra)
                .map(OsString::from),
        );
        let proxy = ServeProcess::start("proxy", &args, nofile).await;
        ChildProxy {
            proxy,
            key_dir,
            signer,
        }
    }

    pub fn ticket(&self, target: SocketAddr) -> String {
        self.signer.sign(&claims_for(target))
    }

    /// After a fault: every session ended and the descriptors are back near
    /// `baseline`.
    pub async fn assert_no_leaks(&self, baseline: usize) {
        wait_until("live sessions back to 0", LIMIT, || self.live() == 0).await;
        wait_until(
            &format!("file descriptors back to {baseline} (+2)"),
            LIMIT,
            || self.fds() <= baseline + 2,
        )
        .await;
    }
}

/// `consolegate demo --listen 127.0.0.1:0` as a child, and what it printed.
pub struct DemoProcess {
    pub process: Process,
    /// The WebSocket URL it printed, with its ticket.
    pub url: String,
    /// Where it listens (the URL's host and port).
    pub addr: SocketAddr,
    /// The VNC password of its console server.
    pub password: String,
    /// Its `TMPDIR`, where it keeps its keys and config: the demo removes them when
    /// it stops, but a test ends it with SIGKILL.
    _tmp: tempfile::TempDir,
}

impl DemoProcess {
    /// Starts the demo with `args` added and waits until it has printed its URL and
    /// password.
    pub async fn start(args: &[OsString]) -> DemoProcess {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(consolegate_bin());
        cmd.args(["demo", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("TMPDIR", tmp.path());
        let process = Process::spawn("consolegate demo", &mut cmd);
        let printed = |prefix: &str| {
            process
                .log
                .lines()
                .iter()
                .find_map(|l| Some(l.trim().strip_prefix(prefix)?.trim().to_string()))
        };
        let (mut url, mut password) = (None, None);
        wait_until("the demo to print its URL and password", LIMIT, || {
            process.assert_running();
            url = printed("WebSocket URL:");
            password = printed("VNC password:");
            url.is_some() && password.is_some()
        })
        .await;
        let url = url.expect("printed");
        let addr = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the printed URL {url}"));
        DemoProcess {
            process,
            url,
            addr,
            password: password.expect("printed"),
            _tmp: tmp,
        }
    }
}

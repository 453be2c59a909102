//! A real console server: QEMU, paused (`-S`, its VNC and SPICE servers answer
//! without a guest running), with its JSON monitor (QMP) on a Unix socket.
//!
//! Ports are race-free where QEMU allows it: VNC takes the first free display from
//! :100 on (`to=`) and QMP's `query-vnc` says which. SPICE has no such option, so
//! its TLS port is a random one below the kernel's ephemeral range (where port-0
//! binds never land) and a start that lost the port to someone else is retried.
//!
//! Callers check `tools::have(&["qemu-system-x86_64"])` first.

use super::wait::wait_for;
use super::LIMIT;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::timeout;

/// Which console QEMU serves.
#[derive(Clone, Copy)]
pub enum Display<'a> {
    /// VNC. With `x509` (a directory holding ca-cert.pem, server-cert.pem and
    /// server-key.pem): VeNCrypt with a client certificate required. With
    /// `password`: VNC authentication.
    Vnc {
        x509: Option<&'a Path>,
        password: Option<&'a str>,
    },
    /// SPICE on its TLS port only, with a password.
    SpiceTls { x509: &'a Path, password: &'a str },
}

/// A paused QEMU, killed when dropped; its stderr is shown if the test fails.
pub struct Qemu {
    child: Child,
    pub port: u16,
    stderr: PathBuf,
    /// Holds the monitor socket and the stderr file.
    _dir: tempfile::TempDir,
}

/// How many SPICE ports to try before giving up.
const SPICE_ATTEMPTS: usize = 5;

impl Qemu {
    pub async fn start(display: Display<'_>) -> Qemu {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for attempt in 1..=SPICE_ATTEMPTS {
            let qmp_path = dir.path().join(format!("qmp-{attempt}.sock"));
            let stderr = dir.path().join(format!("stderr-{attempt}.log"));
            let mut args: Vec<String> = [
                "-machine",
                "accel=tcg",
                "-S",
                "-display",
                "none",
                "-nodefaults",
                "-vga",
                "std",
                "-m",
                "32",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend([
                "-qmp".into(),
                format!("unix:{},server,nowait", qmp_path.display()),
            ]);
            args.extend(display_args(display));
            let mut child = Command::new("qemu-system-x86_64")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).expect("QEMU's stderr file"))
                .spawn()
                .expect("qemu-system-x86_64 starts (tests/setup.sh installs it)");
            let started = wait_for("QEMU's monitor socket (or QEMU's exit)", LIMIT, || {
                let exited = child.try_wait().ok().flatten();
                let qmp_path = qmp_path.clone();
                async move {
                    match UnixStream::connect(&qmp_path).await {
                        Ok(sock) => Some(Ok(sock)),
                        Err(_) => exited.map(Err::<UnixStream, ExitStatus>),
                    }
                }
            })
            .await;
            let sock = match started {
                Ok(sock) => sock,
                Err(status) => {
                    let said = std::fs::read_to_string(&stderr).unwrap_or_default();
                    let lost_port = said.contains("binding socket to");
                    assert!(
                        lost_port && attempt < SPICE_ATTEMPTS,
                        "QEMU exited ({status}) with {args:?}:\n{said}"
                    );
                    continue;
                }
            };
            let mut qemu = Qemu {
                child,
                port: 0,
                stderr,
                _dir: dir,
            };
            let mut qmp = Qmp::new(sock).await;
            qemu.port = match display {
                Display::SpiceTls { .. } => {
                    let info = qmp.execute(r#"{"execute":"query-spice"}"#).await;
                    let port = info["return"]["tls-port"].as_u64();
                    port.and_then(|p| u16::try_from(p).ok())
                        .unwrap_or_else(|| panic!("no SPICE TLS port in {info}"))
                }
                Display::Vnc { password, .. } => {
                    if let Some(password) = password {
                        let cmd = serde_json::json!({
                            "execute": "change-vnc-password",
                            "arguments": {"password": password},
                        });
                        let r = qmp.execute(&cmd.to_string()).await;
                        assert!(r.get("return").is_some(), "change-vnc-password: {r}");
                    }
                    let info = qmp.execute(r#"{"execute":"query-vnc"}"#).await;
                    let port = info["return"]["service"]
                        .as_str()
                        .and_then(|s| s.parse().ok());
                    port.unwrap_or_else(|| panic!("no VNC port in {info}"))
                }
            };
            return qemu;
        }
        unreachable!("every attempt either returns or fails the test")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let said = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            eprintln!("--- QEMU's stderr ---\n{said}");
        }
    }
}

fn display_args(display: Display<'_>) -> Vec<String> {
    match display {
        Display::Vnc { x509, password } => {
            let mut args = Vec::new();
            // The first free display from :100 on; QMP says which one QEMU took.
            let mut vnc = "127.0.0.1:100,to=900".to_string();
            if let Some(dir) = x509 {
                args.extend([
                    "-object".into(),
                    format!(
                        "tls-creds-x509,id=tls0,dir={},endpoint=server,verify-peer=yes",
                        dir.display()
                    ),
                ]);
                vnc.push_str(",tls-creds=tls0");
            }
            if password.is_some() {
                vnc.push_str(",password=on");
            }
            args.extend(["-vnc".into(), vnc]);
            args
        }
        Display::SpiceTls { x509, password } => vec![
            "-object".into(),
            format!("secret,id=sp,data={password}"),
            "-spice".into(),
            format!(
                "tls-port={},addr=127.0.0.1,x509-dir={},password-secret=sp",
                spice_port_candidate(),
                x509.display()
            ),
        ],
    }
}

/// A random port from 20000 to 32767: below Linux's default ephemeral range
/// (32768-60999), so the port-0 listeners every other test binds never take it.
fn spice_port_candidate() -> u16 {
    let mut b = [0u8; 2];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    20_000 + u16::from_le_bytes(b) % 12_768
}

/// QEMU's JSON monitor, one command at a time.
struct Qmp {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl Qmp {
    async fn new(sock: UnixStream) -> Qmp {
        let (r, w) = sock.into_split();
        let mut q = Qmp {
            lines: BufReader::new(r).lines(),
            w,
        };
        let greeting = q.reply().await;
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        q.execute(r#"{"execute":"qmp_capabilities"}"#).await;
        q
    }

    /// The next line that is not an event.
    async fn reply(&mut self) -> serde_json::Value {
        loop {
            let line = timeout(LIMIT, self.lines.next_line())
                .await
                .expect("QMP answered in time")
                .expect("QMP socket readable")
                .expect("QMP line");
            let v: serde_json::Value = serde_json::from_str(&line).expect("QMP speaks JSON");
            if v.get("event").is_none() {
                return v;
            }
        }
    }

    async fn execute(&mut self, cmd: &str) -> serde_json::Value {
        self.w.write_all(cmd.as_bytes()).await.expect("QMP write");
        self.w.write_all(b"\n").await.expect("QMP write");
        self.reply().await
    }
}

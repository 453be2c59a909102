//! The `consolegate` command as people type it: the built binary, its output and exit
//! status. One test per CLI bug of issue 16 (each failed before its fix): what
//! `serve --check-config` checks and where relative paths point, what `verify`
//! applies and reads, errors that repeat their cause, `sign` given a public key,
//! `keygen`'s summary, the production start page, a second Ctrl-C, and the demo's
//! admin listener and printed commands.

mod common;

use common::process::Process;
use common::*;
use consolegate::keys;
use consolegate::ticket::Signer;
use futures_util::StreamExt;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// What a finished command printed (stdout and stderr, line by line) and how it
/// ended.
struct Ran {
    code: Option<i32>,
    out: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `consolegate ARGS` in `dir` to its end (at most [`LIMIT`]).
async fn consolegate_in<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Ran {
    let mut cmd = Command::new(consolegate_bin());
    cmd.args(args).current_dir(dir);
    let p = Process::spawn("consolegate", &mut cmd);
    let status = p.wait_exit(LIMIT).await;
    Ran {
        code: status.code(),
        out: p.log.lines().join("\n"),
    }
}

/// Runs `consolegate ARGS` in the crate's directory.
async fn consolegate<S: AsRef<OsStr>>(args: &[S]) -> Ran {
    consolegate_in(Path::new(env!("CARGO_MANIFEST_DIR")), args).await
}

/// A key pair `engine.key`/`engine.pub` in `dir`, and its signer.
fn engine_key(dir: &Path) -> Signer {
    keys::generate(dir, "engine").unwrap();
    Signer::new(keys::load_signing_key(&dir.join("engine.key")).unwrap())
}

/// A web directory with a stand-in for the console page and each browser client
/// at the places `[web]`'s defaults name under it.
fn web_tree(web: &Path) {
    for f in [
        "console.html",
        "node_modules/@novnc/novnc/core/rfb.js",
        "node_modules/@spice-project/spice-html5/src/main.js",
        "node_modules/@xterm/xterm/lib/xterm.mjs",
        "node_modules/@xterm/addon-fit/lib/addon-fit.mjs",
        "node_modules/asciinema-player/dist/bundle/asciinema-player.min.js",
    ] {
        let p = web.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }
}

fn packaged_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/consolegate.toml")
}

// Bug 7 ---------------------------------------------------------------------------

#[tokio::test]
async fn check_config_names_every_missing_path_of_the_packaged_config() {
    // The packaged config names /etc and /usr/share paths a test machine does not
    // have: every one is listed, by option, in one run.
    let ran = consolegate(&[
        OsStr::new("serve"),
        OsStr::new("--config"),
        packaged_config().as_os_str(),
        OsStr::new("--check-config"),
    ])
    .await;
    assert!(!ran.ok(), "{}", ran.out);
    assert!(!ran.out.contains("configuration OK"), "{}", ran.out);
    for (option, path) in [
        ("tls.cert", "/etc/consolegate/tls/cert.pem"),
        ("tls.key", "/etc/consolegate/tls/key.pem"),
        ("tickets.trust", "/etc/consolegate/keys"),
        ("web.dir", "/usr/share/consolegate/web"),
        ("web.novnc_dir", "/usr/share/consolegate/novnc"),
        ("web.spice_dir", "/usr/share/consolegate/spice"),
        ("web.xterm_dir", "/usr/share/consolegate/xterm"),
        ("web.asciinema_dir", "/usr/share/consolegate/asciinema"),
    ] {
        assert!(
            ran.out.contains(&format!("{option} {path}: not found")),
            "{option} not named:\n{}",
            ran.out
        );
    }

    // The same file with its paths pointed at a directory that has the keys and
    // the console page but no browser clients: only those are named.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    engine_key(root);
    std::fs::create_dir(root.join("web")).unwrap();
    std::fs::write(root.join("web/console.html"), "").unwrap();
    let text = std::fs::read_to_string(packaged_config())
        .unwrap()
        .replace("allow_plain = false", "allow_plain = true")
        .replace(
            "cert = \"/etc/consolegate/tls/cert.pem\"\nkey = \"/etc/consolegate/tls/key.pem\"\n",
            "",
        )
        .replace("\"/etc/consolegate/keys\"", "\"engine.pub\"")
        .replace("\"/usr/share/consolegate/", "\"");
    let file = root.join("consolegate.toml");
    std::fs::write(&file, text).unwrap();
    let ran = consolegate(&[
        OsStr::new("serve"),
        OsStr::new("--config"),
        file.as_os_str(),
        OsStr::new("--check-config"),
    ])
    .await;
    assert!(!ran.ok(), "{}", ran.out);
    assert!(
        ran.out.contains("names 4 paths that are not there"),
        "{}",
        ran.out
    );
    assert!(!ran.out.contains("web.dir"), "{}", ran.out);
    for option in ["novnc_dir", "spice_dir", "xterm_dir", "asciinema_dir"] {
        let dir_name = option.trim_end_matches("_dir");
        let path = root.join(if dir_name == "novnc" {
            "novnc".to_string()
        } else {
            dir_name.to_string()
        });
        assert!(
            ran.out
                .contains(&format!("web.{option} {}: not found", path.display())),
            "web.{option}:\n{}",
            ran.out
        );
    }
}

#[tokio::test]
async fn relative_paths_in_a_config_file_are_relative_to_its_directory_and_flags_to_the_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(etc.join("keys")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    engine_key(&etc.join("keys"));
    web_tree(&etc.join("site"));
    let file = etc.join("consolegate.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\nallow_plain = true\n[tickets]\ntrust = [\"keys\"]\n\
         [web]\ndir = \"site\"\n[admin]\nlisten = \"off\"\n",
    )
    .unwrap();
    // Run from another directory: the file's `keys` and `site` are next to it.
    let ran = consolegate_in(
        &elsewhere,
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            file.as_os_str(),
            OsStr::new("--check-config"),
        ],
    )
    .await;
    assert!(ran.ok(), "{}", ran.out);
    assert!(
        ran.out
            .contains("configuration OK: listen 127.0.0.1:0 (plain ws://), 1 trusted key(s)"),
        "{}",
        ran.out
    );
    assert!(
        ran.out
            .contains(&format!("console page {}", etc.join("site").display())),
        "{}",
        ran.out
    );

    // A relative flag is relative to the working directory: `--web-dir site` from
    // `elsewhere` names elsewhere/site, which is not there.
    let ran = consolegate_in(
        &elsewhere,
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            file.as_os_str(),
            OsStr::new("--web-dir"),
            OsStr::new("site"),
            OsStr::new("--check-config"),
        ],
    )
    .await;
    assert!(!ran.ok(), "{}", ran.out);
    assert!(ran.out.contains("web.dir site: not found"), "{}", ran.out);
    web_tree(&elsewhere.join("site"));
    let ran = consolegate_in(
        &elsewhere,
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            file.as_os_str(),
            OsStr::new("--web-dir"),
            OsStr::new("site"),
            OsStr::new("--check-config"),
        ],
    )
    .await;
    assert!(ran.ok(), "{}", ran.out);
    assert!(ran.out.contains("console page site"), "{}", ran.out);
}

// Bug 8 ---------------------------------------------------------------------------

#[tokio::test]
async fn verify_applies_what_the_proxy_applies_and_names_the_first_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    engine_key(root);
    let key = root.join("engine.key");
    let pubkey = root.join("engine.pub");
    let sign = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("sign"), OsStr::new("--key"), key.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        args.iter().map(|a| a.to_os_string()).collect::<Vec<_>>()
    };
    let signed = |extra: &[&str]| {
        let args = sign(extra);
        async move {
            let ran = consolegate(&args).await;
            assert!(ran.ok(), "{}", ran.out);
            ran.out.trim().to_string()
        }
    };
    let trust = |ticket: &str, extra: &[&str]| {
        let mut args = vec![
            "verify".into(),
            "--trust".into(),
            pubkey.clone().into_os_string(),
        ];
        args.extend(extra.iter().map(|s| s.into()));
        args.push(ticket.into());
        args
    };

    // The case: a serial ticket for 10.0.0.5:22 passed verify.
    let serial = signed(&["--host", "10.0.0.5", "--port", "22", "--kind", "serial"]).await;
    let ran = consolegate(&trust(&serial, &["--leeway", "30s"])).await;
    assert_eq!(ran.code, Some(1), "{}", ran.out);
    assert!(ran.out.starts_with("refused: "), "{}", ran.out);
    assert!(ran.out.contains("(port_not_allowed)"), "{}", ran.out);

    // The URL the signer prints, with --leeway as a duration: accepted, with the
    // address the console server resolved to.
    let url = signed(&[
        "--host",
        "127.0.0.1",
        "--port",
        "5901",
        "--url",
        "wss://proxy.example:6100",
    ])
    .await;
    assert!(url.starts_with("wss://proxy.example:6100/ey"), "{url}");
    let ran = consolegate(&trust(&url, &["--leeway", "30s", "--max-lifetime", "10m"])).await;
    assert!(ran.ok(), "{}", ran.out);
    let answer: serde_json::Value = serde_json::from_str(&ran.out).unwrap();
    assert_eq!(answer["claims"]["port"], 5901);
    assert_eq!(answer["addresses"][0], "127.0.0.1:5901");

    // A config file: its policy, kind ports, audience, deny list and listeners.
    let file = root.join("proxy.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:6100\"\nallow_plain = true\n\
         [tickets]\ntrust = [\"engine.pub\"]\naudiences = [\"hv1\"]\ndeny_list = \"deny.list\"\n\
         [targets]\nallow = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\nports = [\"5900-6923\"]\nserial_ports = [\"22\"]\n\
         [admin]\nlisten = \"127.0.0.1:6101\"\n",
    )
    .unwrap();
    std::fs::write(root.join("deny.list"), "sub mallory\n").unwrap();
    let with_config = |ticket: &str| {
        vec![
            "verify".into(),
            "--config".into(),
            file.clone().into_os_string(),
            ticket.into(),
        ]
    };
    let cases: [(&[&str], Option<&str>); 6] = [
        (
            &[
                "--host", "10.0.0.5", "--port", "22", "--kind", "serial", "--aud", "hv1",
            ],
            None,
        ),
        (
            &["--host", "10.0.0.5", "--port", "22", "--kind", "serial"],
            Some("(no_audience)"),
        ),
        (
            &[
                "--host", "10.0.0.5", "--port", "5901", "--kind", "serial", "--aud", "hv1",
            ],
            Some("(port_not_allowed_for_kind)"),
        ),
        (
            &["--host", "192.168.1.5", "--port", "5901", "--aud", "hv1"],
            Some("(target_not_allowed)"),
        ),
        (
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "7000",
                "--aud",
                "hv1",
                "--kind",
                "vnc",
            ],
            Some("(port_not_allowed)"),
        ),
        (
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "5901",
                "--aud",
                "hv1",
                "--sub",
                "mallory",
            ],
            Some("(revoked)"),
        ),
    ];
    for (extra, refusal) in cases {
        let ticket = signed(extra).await;
        let ran = consolegate(&with_config(&ticket)).await;
        match refusal {
            None => assert!(ran.ok(), "{extra:?}: {}", ran.out),
            Some(code) => {
                assert_eq!(ran.code, Some(1), "{extra:?}: {}", ran.out);
                assert!(ran.out.contains(code), "{extra:?}: {}", ran.out);
            }
        }
    }
    // The proxy's own listener is refused whatever the policy allows.
    let own = signed(&["--host", "127.0.0.1", "--port", "6100", "--aud", "hv1"]).await;
    let mut args = with_config(&own);
    args.splice(1..1, ["--allow-port".into(), "1-65535".into()]);
    let ran = consolegate(&args).await;
    assert_eq!(ran.code, Some(1), "{}", ran.out);
    assert!(ran.out.contains("(target_is_proxy)"), "{}", ran.out);
}

// Bug 9 ---------------------------------------------------------------------------

#[tokio::test]
async fn an_error_names_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    engine_key(dir.path());
    let ran = consolegate(&[
        OsStr::new("serve"),
        OsStr::new("--allow-plain"),
        OsStr::new("--trust"),
        dir.path().as_os_str(),
        OsStr::new("--allow-target"),
        OsStr::new("127.0.0.0/33"),
        OsStr::new("--check-config"),
    ])
    .await;
    assert_eq!(ran.code, Some(2), "{}", ran.out);
    assert_eq!(
        ran.out.matches("is not an address range").count(),
        1,
        "{}",
        ran.out
    );
    assert!(ran.out.contains("targets.allow"), "{}", ran.out);

    for args in [
        vec!["serve", "--config", "/nonexistent/consolegate.toml"],
        vec![
            "serve",
            "--allow-plain",
            "--token-source",
            "/nonexistent/tokens",
        ],
        vec![
            "serve",
            "--allow-plain",
            "--ovirt-certificate",
            "/nonexistent/engine.cer",
        ],
    ] {
        let ran = consolegate(&args).await;
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.out);
        assert_eq!(
            ran.out.matches("No such file or directory").count(),
            1,
            "{args:?}: {}",
            ran.out
        );
        assert!(ran.out.contains("/nonexistent/"), "{args:?}: {}", ran.out);
    }
}

#[tokio::test]
async fn sign_with_a_public_key_says_it_is_one_instead_of_asking_for_chmod() {
    let dir = tempfile::tempdir().unwrap();
    engine_key(dir.path());
    let ran = consolegate(&[
        OsStr::new("sign"),
        OsStr::new("--key"),
        dir.path().join("engine.pub").as_os_str(),
        OsStr::new("--host"),
        OsStr::new("127.0.0.1"),
        OsStr::new("--port"),
        OsStr::new("5901"),
    ])
    .await;
    assert_eq!(ran.code, Some(2), "{}", ran.out);
    assert!(
        ran.out.contains("engine.pub is a public key"),
        "{}",
        ran.out
    );
    assert!(ran.out.contains("the private key"), "{}", ran.out);
    assert!(!ran.out.contains("chmod"), "{}", ran.out);
}

#[tokio::test]
async fn keygen_says_what_it_made_where_and_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("keys");
    let ran = consolegate(&[
        OsStr::new("keygen"),
        OsStr::new("--out-dir"),
        out_dir.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("portal"),
    ])
    .await;
    assert!(ran.ok(), "{}", ran.out);
    let public = out_dir.join("portal.pub");
    let key = out_dir.join("portal.key");
    let kid = Signer::new(keys::load_signing_key(&key).unwrap())
        .kid()
        .to_string();
    for wanted in [
        format!("key id       {kid}"),
        format!("private key  {}", key.display()),
        format!("public key   {}", public.display()),
        format!(
            "install -m 0644 {} /etc/consolegate/keys/",
            public.display()
        ),
        format!("consolegate sign --key {}", key.display()),
        format!("consolegate verify --trust {}", public.display()),
    ] {
        assert!(ran.out.contains(&wanted), "no {wanted:?} in:\n{}", ran.out);
    }
    assert_ne!(ran.out.trim(), kid, "a bare key id is not a summary");

    // Scripts ask for JSON.
    let ran = consolegate(&[
        OsStr::new("keygen"),
        OsStr::new("--json"),
        OsStr::new("--out-dir"),
        out_dir.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("other"),
    ])
    .await;
    assert!(ran.ok(), "{}", ran.out);
    let v: serde_json::Value = serde_json::from_str(&ran.out).unwrap();
    assert_eq!(v["public_key"], out_dir.join("other.pub").to_str().unwrap());
    assert_eq!(v["kid"].as_str().unwrap().len(), 43);
}

#[tokio::test]
async fn a_production_start_page_says_what_it_is_and_links_to_no_demo_page() {
    let dir = tempfile::tempdir().unwrap();
    engine_key(dir.path());
    let proxy = ServeProcess::start(
        "proxy",
        &["--allow-plain".into(), "--trust".into(), dir.path().into()],
        None,
    )
    .await;
    let answer = http(proxy.addr, "GET", "/", "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("console proxy"), "{answer}");
    assert!(!answer.contains("engine-demo"), "{answer}");
    let answer = http(proxy.addr, "GET", "/engine-demo-index.html", "").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    // The demo's start page is its own, and leads to its engine page.
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let demo = DemoProcess::start(&["--web-dir".into(), web.into()]).await;
    let answer = http(demo.addr, "GET", "/", "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("href=\"engine-demo.html\""), "{answer}");
}

#[tokio::test]
async fn a_second_ctrl_c_ends_the_sessions_at_once_instead_of_after_the_grace_period() {
    let demo = DemoProcess::start(&[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&demo.url)
        .await
        .expect("the printed URL is accepted");
    let banner = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(banner, Message::Binary(b"RFB 003.008\n".to_vec().into()));

    demo.process.signal("INT");
    wait_until("the first SIGINT to be logged", LIMIT, || {
        demo.process.assert_running();
        demo.process
            .log
            .lines()
            .iter()
            .any(|l| l.contains("shutting down: draining sessions"))
    })
    .await;
    // The demo's grace period is 30 s: the session is still there.
    demo.process.assert_running();

    demo.process.signal("INT");
    let status = demo
        .process
        .wait_exit(std::time::Duration::from_secs(10))
        .await;
    assert!(status.success(), "{status}");
    let lines = demo.process.log.lines();
    assert!(
        lines.iter().any(|l| l.contains("second SIGINT")
            && l.contains("ending the live sessions now")
            && l.contains("sessions=1")),
        "{}",
        lines.join("\n")
    );
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1001, "{reason}");
}

// Bug 10 --------------------------------------------------------------------------

/// The arguments of the command the demo printed whose line contains `what`.
fn printed_command(demo: &DemoProcess, what: &str) -> Vec<String> {
    let lines = demo.process.log.lines();
    let line = lines.iter().find(|l| l.contains(what)).unwrap_or_else(|| {
        panic!(
            "the demo printed no {what:?} command:\n{}",
            lines.join("\n")
        )
    });
    // The program, then arguments; the ticket URL is the one quoted argument.
    line.split_whitespace()
        .skip(1)
        .map(|a| a.trim_matches('\'').to_string())
        .collect()
}

#[tokio::test]
async fn the_demo_answers_consolegate_sessions_and_verify_with_the_commands_it_prints() {
    let demo = DemoProcess::start(&[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&demo.url)
        .await
        .expect("the printed URL is accepted");
    timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();

    let sessions = printed_command(&demo, " sessions --admin ");
    let ran = consolegate(&sessions).await;
    assert!(ran.ok(), "{sessions:?}: {}", ran.out);
    let rows: Vec<&str> = ran.out.lines().collect();
    assert_eq!(rows.len(), 2, "{}", ran.out);
    assert!(rows[1].contains(" demo "), "{}", ran.out);

    let verify = printed_command(&demo, " verify --config ");
    assert!(verify.last().unwrap().starts_with("ws://"), "{verify:?}");
    let ran = consolegate(&verify).await;
    assert!(ran.ok(), "{verify:?}: {}", ran.out);
    let answer: serde_json::Value = serde_json::from_str(&ran.out).unwrap();
    assert_eq!(answer["claims"]["sub"], "demo");

    let kill = printed_command(&demo, " kill --admin ");
    let ran = consolegate(&kill).await;
    assert!(ran.ok(), "{kill:?}: {}", ran.out);
    assert!(ran.out.contains("ended 1 session(s)"), "{}", ran.out);
    let (code, _) = close_of(&mut ws).await;
    assert_eq!(code, 1008);
}

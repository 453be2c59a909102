//! `consolegate demo`: throwaway keys, a demo console server and the proxy, in one
//! process.

use super::{init_logging, runtime, serve_until_signalled};
use anyhow::{Context, Result};
use consolegate::config::{Config, LogFormat, ServeArgs};
use consolegate::demo::engine::DemoEngine;
use consolegate::front::Proxy;
use consolegate::keys;
use consolegate::ops::admin::Admin;
use consolegate::ticket::Signer;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::warn;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Address of the proxy.
    #[arg(long, default_value = "127.0.0.1:6100")]
    listen: String,
    /// Address of the admin listener (`consolegate sessions` and `kill` reach the
    /// demo there), or "off" [default: on loopback, the next port after --listen's,
    /// or any free port when --listen's is 0].
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Directory of the console page.
    #[arg(long)]
    web_dir: Option<PathBuf>,
}

/// Where the console page is: the flag, ./web, next to the binary in a source tree,
/// or where the Debian package puts it.
fn find_web_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    let mut candidates = vec![PathBuf::from("web")];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe
            .parent()
            .and_then(|d| d.parent())
            .and_then(|d| d.parent())
        {
            candidates.push(root.join("web"));
        }
    }
    candidates.push(PathBuf::from("/usr/share/consolegate/web"));
    candidates
        .iter()
        .find(|d| d.join("console.html").is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("web"))
}

fn random_password() -> String {
    // VNC passwords are at most 8 characters; avoid look-alike characters.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    init_logging(LogFormat::Text, "info")?;
    let listen: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("{:?} is not an address", args.listen))?;
    let admin_listen = match args.admin_listen.as_deref() {
        Some("off") => AdminAt::Off,
        Some(a) => AdminAt::Given(
            a.parse()
                .with_context(|| format!("--admin-listen {a:?} is not an address or \"off\""))?,
        ),
        // On loopback whatever --listen says: it has no TLS.
        None => AdminAt::Default(SocketAddr::new(
            if listen.ip().is_loopback() {
                listen.ip()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            },
            match listen.port() {
                0 => 0,
                p => p.wrapping_add(1),
            },
        )),
    };
    // The demo's keys, config and admin token: private to this user, removed on exit.
    let dir = std::env::temp_dir().join(format!("consolegate-demo-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let _cleanup = RemoveOnDrop(dir.clone());
    keys::generate(&dir, "demo").context("cannot make the demo key")?;
    let signer = Signer::new(
        keys::load_signing_key(&dir.join("demo.key")).context("cannot read the demo key")?,
    );
    write_private(&dir.join("admin.token"), &format!("{}\n", random_hex(32)))?;
    let password = random_password();
    let web_dir = find_web_dir(args.web_dir);
    let web_dir = std::fs::canonicalize(&web_dir).unwrap_or(web_dir);

    runtime()?.block_on(async move {
        let rfb = TcpListener::bind("127.0.0.1:0").await.context("cannot start the demo console server")?;
        let rfb_port = rfb.local_addr()?.port();
        tokio::spawn(consolegate::demo::run_rfb_server(rfb, Some(password.clone())));

        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?; // the bound one: `--listen 127.0.0.1:0` works
        let admin_listener = match admin_listen {
            AdminAt::Off => None,
            AdminAt::Given(a) => Some(TcpListener::bind(a).await.with_context(|| format!("cannot listen on {a} (admin; --admin-listen off disables it)"))?),
            // A busy default port costs the demo its admin listener, nothing else.
            AdminAt::Default(a) => match TcpListener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => {
                    warn!(admin = %a, cause = %e, "no admin listener for the demo (choose one with --admin-listen)");
                    None
                }
            },
        };
        let admin_bound = admin_listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let host_ip = if bound.ip().is_unspecified() { "127.0.0.1".parse()? } else { bound.ip() };
        let base = format!("http://{}", SocketAddr::new(host_ip, bound.port()));

        // The demo's proxy is configured by a file, as a production one is, so that
        // `consolegate verify --config` can be pointed at the very same settings.
        let config_file = dir.join("consolegate.toml");
        let demo = DemoSetup { bound, admin: admin_bound, rfb_port, web_dir: &web_dir, base: &base };
        write_private(&config_file, &demo.config_toml())?;
        let config = Config::load(&ServeArgs { config: Some(config_file.clone()), ..ServeArgs::default() })
            .context("demo configuration")?;
        let engine = DemoEngine::new(signer, rfb_port, password.clone(), web_dir.clone());
        let url_ticket = engine.ticket(600);
        let proxy = Arc::new(Proxy::new(config)?.with_extension(engine));
        if let Some(l) = admin_listener {
            let admin = Admin::new(proxy.clone()).context("demo admin listener")?;
            tokio::spawn(admin.serve(l));
        }
        let ws_url = format!("ws://{}/{url_ticket}", SocketAddr::new(host_ip, bound.port()));
        print!("{}", demo.banner(&ws_url, &password, &dir, &command_name()));
        serve_until_signalled(proxy, listener).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Where the demo's admin listener goes.
enum AdminAt {
    Off,
    /// `--admin-listen`: failing to bind it is an error.
    Given(SocketAddr),
    /// Next to the proxy: if taken, the demo runs without.
    Default(SocketAddr),
}

/// What the demo set up, for its config file and what it prints.
struct DemoSetup<'a> {
    bound: SocketAddr,
    admin: Option<SocketAddr>,
    rfb_port: u16,
    web_dir: &'a Path,
    /// `http://host:port` of the proxy.
    base: &'a str,
}

impl DemoSetup<'_> {
    /// The proxy's configuration: plain ws:// on loopback, the demo key (relative to
    /// the file, as any config file may name it), the demo console server only.
    fn config_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let port = self.bound.port();
        let admin = match self.admin {
            Some(a) => format!(
                "listen = {}\ntoken_file = \"admin.token\"\n",
                q(&a.to_string())
            ),
            None => "listen = \"off\"\n".to_string(),
        };
        format!(
            "# The configuration of a running `consolegate demo` (removed when it stops).\n\
             listen = {listen}\n\
             allow_plain = true\n\
             \n[tickets]\ntrust = [\"demo.pub\"]\n\
             \n[targets]\nallow = [\"127.0.0.1/32\"]\nports = [\"{rfb}\"]\n\
             \n[web]\ndir = {web}\nengine_origins = [{base}, {localhost}]\n\
             \n[admin]\n{admin}",
            listen = q(&self.bound.to_string()),
            rfb = self.rfb_port,
            web = q(&self.web_dir.to_string_lossy()),
            base = q(self.base),
            localhost = q(&format!("http://localhost:{port}")),
        )
    }

    /// What the demo prints: where to click, the URL and password, and the exact
    /// commands to try the CLI on it (`cmd`: how to call this binary).
    fn banner(&self, ws_url: &str, password: &str, dir: &Path, cmd: &str) -> String {
        let base = self.base;
        let d = dir.display();
        let has_page = self.web_dir.join("console.html").is_file();
        let mut out = String::from(
            "\nconsolegate demo is running (Ctrl-C to stop; Ctrl-C twice to stop at once)\n",
        );
        if has_page {
            out += &format!(
                "  open in a browser:  {base}/engine-demo.html   and click \"Open console\"\n"
            );
        } else {
            out += &format!(
                "  (console page not found in {}: run from the source tree)\n",
                self.web_dir.display()
            );
        }
        out += &format!("  WebSocket URL:      {ws_url}\n");
        out += &format!("  VNC password:       {password}\n");
        out += &format!(
            "  (the URL's ticket is valid for 10 minutes; the demo console server is 127.0.0.1:{})\n",
            self.rfb_port
        );
        out += &format!(
            "  keys and config:    {d}/  (demo.key, demo.pub, consolegate.toml, admin.token; removed when the demo stops)\n"
        );
        out += "\nTry the CLI on it, in another terminal:\n";
        out += &format!("  {cmd} verify --config {d}/consolegate.toml '{ws_url}'\n");
        out += &format!(
            "  {cmd} sign --key {d}/demo.key --host 127.0.0.1 --port {} --url ws://{}\n",
            self.rfb_port,
            base.trim_start_matches("http://")
        );
        match self.admin {
            Some(a) => {
                let flags = format!("--admin http://{a} --token-file {d}/admin.token");
                out += &format!("  {cmd} sessions {flags}\n");
                out += &format!("  {cmd} kill {flags} --sub demo\n");
            }
            None => out += "  (no admin listener: `sessions` and `kill` have nothing to reach)\n",
        }
        out.push('\n');
        out
    }
}

/// How to call this binary in the printed commands: `consolegate` when that name on
/// the PATH is this very binary, its full path otherwise (`cargo run`).
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "consolegate".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|d| std::fs::canonicalize(d.join("consolegate")).is_ok_and(|p| p == exe))
    });
    if on_path {
        "consolegate".into()
    } else {
        exe.display().to_string()
    }
}

/// Writes `text` to a new file only this user can read (mode 0600).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Removes the demo's throwaway key directory when the demo ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

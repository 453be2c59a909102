//! `consolegate demo`: throwaway keys, a demo console server and the proxy, in one
//! process.

use super::{init_logging, runtime, termination};
use anyhow::{Context, Result};
use consolegate::config::{Config, LogFormat, ServeArgs};
use consolegate::demo::engine::DemoEngine;
use consolegate::front::Proxy;
use consolegate::keys;
use consolegate::ticket::Signer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Address of the proxy.
    #[arg(long, default_value = "127.0.0.1:6100")]
    listen: String,
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
    let key_dir = std::env::temp_dir().join(format!("consolegate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir)
        .with_context(|| format!("cannot create {}", key_dir.display()))?;
    let _cleanup = RemoveOnDrop(key_dir.clone());
    keys::generate(&key_dir, "demo").context("cannot make the demo key")?;
    let signer = Signer::new(
        keys::load_signing_key(&key_dir.join("demo.key")).context("cannot read the demo key")?,
    );
    let password = random_password();
    let web_dir = find_web_dir(args.web_dir);

    runtime()?.block_on(async move {
        let rfb = TcpListener::bind("127.0.0.1:0").await.context("cannot start the demo console server")?;
        let rfb_port = rfb.local_addr()?.port();
        tokio::spawn(consolegate::demo::run_rfb_server(rfb, Some(password.clone())));

        let host_ip = if listen.ip().is_unspecified() { "127.0.0.1".to_string() } else { listen.ip().to_string() };
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port(); // the bound one: `--listen 127.0.0.1:0` works
        let base = format!("http://{}", SocketAddr::new(host_ip.parse()?, port));
        let serve_args = ServeArgs {
            listen: Some(listen.to_string()),
            allow_plain: true,
            trust: vec![key_dir.clone()],
            allow_target: vec!["127.0.0.1/32".into()],
            allow_port: vec![rfb_port.to_string()],
            engine_origin: vec![base.clone(), format!("http://localhost:{port}")],
            web_dir: Some(web_dir.clone()),
            ..ServeArgs::default()
        };
        let config = Config::load(&serve_args).context("demo configuration")?;
        let engine = DemoEngine::new(signer, rfb_port, password.clone(), web_dir.clone());
        let url_ticket = engine.ticket(600);
        let proxy = Proxy::new(config)?.with_extension(engine);
        let has_page = web_dir.join("console.html").is_file();
        println!();
        println!("consolegate demo is running (Ctrl-C to stop)");
        if has_page {
            println!("  open in a browser:  {base}/engine-demo.html   and click \"Open console\"");
        } else {
            println!("  (console page not found in {}: run from the source tree)", web_dir.display());
        }
        println!("  WebSocket URL:      ws://{}:{port}/{url_ticket}", host_ip);
        println!("  VNC password:       {password}");
        println!("  (the URL's ticket is valid for 10 minutes; the demo console server is 127.0.0.1:{rfb_port})");
        println!();
        Arc::new(proxy).serve(listener, termination()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Removes the demo's throwaway key directory when the demo ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

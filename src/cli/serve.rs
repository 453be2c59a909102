//! `consolegate serve`: the proxy.

use super::{init_logging, runtime, serve_until_signalled};
use anyhow::{Context, Result};
use consolegate::config::{Config, ServeArgs};
use consolegate::front::Proxy;
use consolegate::ops::admin::Admin;
use consolegate::reload::{Outcome, Part};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let config = Config::load(&args).context("invalid configuration")?;
    // Every missing path at once, before the first one stops the loading below.
    let problems = config.path_problems();
    if args.check_config && !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::bail!(
            "the configuration{} names {} that {} not there:\n{}",
            args.config
                .as_ref()
                .map(|c| format!(" ({})", c.display()))
                .unwrap_or_default(),
            match problems.len() {
                1 => "a path".to_string(),
                n => format!("{n} paths"),
            },
            if problems.len() == 1 { "is" } else { "are" },
            list.join("\n")
        );
    }
    init_logging(config.log.format, &config.log.level)?;
    for p in &problems {
        warn!(option = p.option, path = %p.path.display(), problem = %p.what, "a path of the configuration is not there: {p}");
    }
    let listen = config.listen;
    let plain = config.tls.is_none();
    let admin_listen = config.admin.listen;
    let proxy = Arc::new(Proxy::new(config).context("cannot load keys, certificate or deny list")?);
    let admin = Admin::new(proxy.clone()).context("admin listener")?;
    if proxy.config().admin.token_file.is_some() {
        proxy.metrics().reloaded(Part::AdminToken.as_str(), true);
    }
    if args.check_config {
        println!(
            "configuration OK: listen {listen} ({}), {} trusted key(s): {}; {}; admin {}; console page {}",
            if plain { "plain ws://" } else { "TLS" },
            proxy.key_ids().len(),
            proxy.key_ids().join(", "),
            proxy.backend().summary(),
            admin_listen.map_or("off".to_string(), |a| a.to_string()),
            proxy.config().web.dir.display(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        if plain {
            warn!("TLS is off: browsers connect with plain ws://; use this only behind a TLS-terminating balancer or for tests");
        }
        // Before the "listening" line: a SIGHUP that arrives once a supervisor has
        // seen it must reload, not kill the process (SIGHUP's default action).
        spawn_reload_on_sighup(proxy.clone(), admin.clone());
        if let Some(addr) = admin_listen {
            let admin_listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin; \"off\" disables it)"))?;
            if !addr.ip().is_loopback() {
                warn!(admin = %addr, "the admin listener is plain HTTP and not on loopback: its token and session data cross the network unencrypted");
            }
            info!(admin = %addr, session_control = proxy.config().admin.token_file.is_some(), "admin listening");
            tokio::spawn(admin.serve(admin_listener));
        }
        let bound = listener.local_addr().unwrap_or(listen);
        let limits = &proxy.config().limits;
        info!(
            listen = %bound,
            keys = %proxy.key_ids().join(","),
            open_files = consolegate::config::open_file_limit(),
            max_pending = limits.max_pending,
            max_pending_per_client = limits.max_pending_per_client,
            "consolegate listening"
        );
        serve_until_signalled(proxy, listener).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn spawn_reload_on_sighup(proxy: Arc<Proxy>, admin: Arc<Admin>) {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered here, not in the task, so the handler is in place on return.
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot handle SIGHUP; reload by restarting");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // Each part is logged on its own line as it loads or fails.
            let _ = proxy.reload();
            if let Some(loaded) = admin.reload() {
                let outcome = Outcome::of(Part::AdminToken, loaded);
                proxy
                    .metrics()
                    .reloaded(Part::AdminToken.as_str(), outcome.ok());
                outcome.log();
            }
        }
    });
}

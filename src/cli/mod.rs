//! The `consolegate` command's subcommands, one module each, and what they share:
//! logging, the async runtime and the termination signals.

pub mod demo;
pub mod keygen;
pub mod ops;
pub mod recording;
pub mod serve;
pub mod sign;
pub mod verify;

use anyhow::{Context, Result};
use consolegate::config::LogFormat;
use consolegate::front::Proxy;
use consolegate::relay::Stop;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub fn init_logging(format: LogFormat, level: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("log level {level:?} is not a level or filter"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into journald or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Browsers, tickets and file names put strings in log lines: escaped, so that
        // none can start a line of its own (JSON escapes by itself).
        LogFormat::Text => builder
            .fmt_fields(consolegate::util::text::TextFields)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        // Look for socket readiness every 16 tasks instead of tokio's 61: on a host
        // full of busy consoles a keystroke's session is noticed sooner (the busy
        // host's input round trip, bench/README.md), for a few more epoll_wait calls.
        .event_interval(16)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Serves `proxy` on `listener` until SIGTERM or SIGINT (Ctrl-C), then drains: no
/// new sessions, the live ones get the grace period, then close 1001. A second
/// SIGTERM or SIGINT during the drain ends the live sessions at once (close 1001, as
/// the grace's end does), so a person at a terminal never has to wait it out.
/// Returns once every session has ended.
pub async fn serve_until_signalled(proxy: Arc<Proxy>, listener: TcpListener) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered before serving, so no signal is missed (nor kills the process).
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let draining = proxy.clone();
    tokio::spawn(async move {
        let first = next_signal(&mut term, &mut int).await;
        info!(
            signal = first,
            grace_s = draining.config().limits.grace.as_secs(),
            "{first} received: stopping; live sessions may run for the grace period \
             (send it again, or press Ctrl-C again, to end them now)"
        );
        let _ = stop.send(());
        let second = next_signal(&mut term, &mut int).await;
        let ended = draining.sessions().stop_where(Stop::Drain, |_| true);
        warn!(
            signal = second,
            sessions = ended,
            "second {second}: ending the live sessions now, without waiting for the grace period"
        );
    });
    proxy
        .serve(listener, async {
            let _ = stopped.await;
        })
        .await;
    Ok(())
}

async fn next_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

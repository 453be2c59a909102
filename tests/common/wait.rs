//! Waiting on what a test cannot await directly (a log line from a child process, a
//! session count, a port that starts accepting): poll, bounded, and say on timeout
//! what was awaited. A fixed sleep guesses how long something takes and flakes when
//! the machine is loaded; these wait exactly as long as it takes, up to a bound.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How often the condition is looked at.
const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds; fails the test, naming `what`, after `within`.
pub async fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, within, || {
        std::future::ready(condition().then_some(()))
    })
    .await
}

/// Runs `attempt` until it returns `Some`, and returns that; fails the test, naming
/// `what`, after `within`. For conditions that need I/O (an HTTP request, a connect).
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = attempt().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

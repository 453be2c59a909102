//! A session's event loop: the stop signal and the timers (heartbeat, idle timeout,
//! maximum duration, buffer release) in a `select!` around one hand-written poll loop
//! ([`Session::poll_io`]) over the four I/O operations of [`transfer`], and the close.

mod transfer;

use super::close::{stop_reason, CloseReason, Stop};
use super::frame::ControlFrame;
use super::frame::{Parser, MAX_HEADER};
use super::{
    Buffer, Down, Event, RelayConfig, Session, Sizer, Up, CLOSE_WAIT, MAX_ROUNDS, MIN_BUFFER,
    RELEASE_AFTER, SHUTDOWN_WAIT,
};
use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// A deadline for timers that are switched off (their `select!` branches are disabled).
fn far_future(now: Instant) -> Instant {
    later(now, Duration::from_secs(100 * 365 * 86_400))
}

/// `base + d` without the panic on overflow a configured `Duration::MAX` would cause.
fn later(base: Instant, d: Duration) -> Instant {
    base.checked_add(d)
        .or_else(|| base.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(base)
}

impl<C, T> Session<C, T>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(super) fn new(client: C, target: T, cfg: &RelayConfig) -> Self {
        let now = Instant::now();
        Session {
            client,
            target,
            buffer_size: cfg.buffer_size.max(MIN_BUFFER),
            down: Down {
                buf: Buffer::default(),
                start: 0,
                end: 0,
                pos: 0,
            },
            up: Up::default(),
            up_buf: Buffer::default(),
            // Down buffers hold the frame header too: 64 KiB at the start is one
            // 16-page mapping.
            down_size: Sizer::new(cfg.buffer_size.max(MIN_BUFFER) + MAX_HEADER),
            up_size: Sizer::new(cfg.buffer_size.max(MIN_BUFFER)),
            parser: Parser::new(cfg.max_message),
            ctrl: None,
            pong: None,
            ping_queued: false,
            pings_unanswered: 0,
            client_flush: false,
            target_flush: false,
            discard_up: false,
            bytes_up: 0,
            bytes_down: 0,
            stats: None,
            last_read: now,
            last_down_read: now,
            last_up_read: now,
            last_payload: now,
            client_progress: now,
            release_armed: false,
            allocations: 0,
        }
    }

    fn count_up(&mut self, n: u64) {
        self.bytes_up += n;
        if let Some(s) = &self.stats {
            s.add_up(n);
        }
    }

    fn count_down(&mut self, n: u64) {
        self.bytes_down += n;
        if let Some(s) = &self.stats {
            s.add_down(n);
        }
    }

    /// Relays until something ends the session; returns why.
    pub(super) async fn run(
        &mut self,
        cfg: &RelayConfig,
        stop: &mut watch::Receiver<Stop>,
    ) -> CloseReason {
        if let Some(r) = stop_reason(&stop.borrow_and_update()) {
            return r;
        }
        let start = Instant::now();
        let at = |d: Option<Duration>| d.map_or(far_future(start), |d| later(start, d));
        let max_duration = tokio::time::sleep_until(at(cfg.max_duration));
        let ping = tokio::time::sleep_until(at(cfg.ping_interval));
        let idle = tokio::time::sleep_until(at(cfg.idle_timeout));
        let release = tokio::time::sleep_until(far_future(start));
        tokio::pin!(max_duration, ping, idle, release);
        let mut stop_open = true;
        loop {
            tokio::select! {
                biased;
                changed = stop.changed(), if stop_open => match changed {
                    Ok(()) => {
                        if let Some(r) = stop_reason(&stop.borrow_and_update()) {
                            return r;
                        }
                    }
                    // The proxy dropped its sender: no more requests will come.
                    Err(_) => stop_open = false,
                },
                () = &mut max_duration, if cfg.max_duration.is_some() => {
                    return CloseReason::MaxDuration;
                }
                event = poll_fn(|cx| self.poll_io(cx)) => match event {
                    Event::End(r) => return r,
                    Event::Allocated => {
                        self.release_armed = true;
                        release.as_mut().reset(Instant::now() + RELEASE_AFTER);
                    }
                },
                () = &mut ping, if cfg.ping_interval.is_some() => {
                    if self.pings_unanswered >= 2 {
                        return CloseReason::PingTimeout;
                    }
                    self.pings_unanswered += 1;
                    self.ping_queued = true;
                    let every = cfg.ping_interval.unwrap_or(Duration::MAX);
                    ping.as_mut().reset(later(Instant::now(), every));
                }
                () = &mut idle, if cfg.idle_timeout.is_some() => {
                    let every = cfg.idle_timeout.unwrap_or(Duration::MAX);
                    let mut due = later(self.last_payload, every);
                    if self.down.pending() {
                        due = due.min(later(self.client_progress, every));
                    }
                    if due <= Instant::now() {
                        return CloseReason::IdleTimeout;
                    }
                    idle.as_mut().reset(due);
                }
                () = &mut release, if self.release_armed => {
                    let now = Instant::now();
                    self.release_buffers(now);
                    self.release_armed = !self.down.buf.is_empty() || !self.up_buf.is_empty();
                    // The next buffer due; one still holding unsent bytes (or read
                    // from since) is looked at again later.
                    let mut next = now + RELEASE_AFTER;
                    for (held, last) in [
                        (!self.down.buf.is_empty(), self.last_down_read),
                        (!self.up_buf.is_empty(), self.last_up_read),
                    ] {
                        if held && last + RELEASE_AFTER > now {
                            next = next.min(last + RELEASE_AFTER);
                        }
                    }
                    release.as_mut().reset(next);
                }
            }
        }
    }

    /// Frees the buffers that hold nothing unsent and were not read into for
    /// [`RELEASE_AFTER`].
    fn release_buffers(&mut self, now: Instant) {
        if !self.down.pending() && self.last_down_read + RELEASE_AFTER <= now {
            self.down.buf = Buffer::default();
            self.down_size.reset();
        }
        if self.up.filled == 0 && !self.up.out_pending() && self.last_up_read + RELEASE_AFTER <= now
        {
            self.up_buf = Buffer::default();
            self.up_size.reset();
        }
    }

    /// Moves bytes both ways until every operation is blocked or the session ends.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;
            let mut allocated = false;
            if let Err(r) = self.io_round(cx, &mut progress, &mut allocated) {
                return Poll::Ready(Event::End(r));
            }
            if allocated && !self.release_armed {
                return Poll::Ready(Event::Allocated);
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One attempt at each operation, writes first so buffers free up before reads.
    fn io_round(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        self.client_out(cx, progress)?;
        self.target_out(cx, progress)?;
        self.target_in(cx, progress, allocated)?;
        self.client_in(cx, progress, allocated)
    }

    /// Nothing is waiting to be written to the browser.
    fn client_out_idle(&self) -> bool {
        !self.down.pending()
            && self.ctrl.is_none()
            && self.pong.is_none()
            && !self.ping_queued
            && !self.client_flush
    }

    /// Writes everything pending to the browser.
    async fn flush_client(&mut self) -> Result<(), CloseReason> {
        poll_fn(|cx| {
            let mut progress = false;
            if let Err(r) = self.client_out(cx, &mut progress) {
                return Poll::Ready(Err(r));
            }
            if self.client_out_idle() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Writes pending browser payload to the console server.
    async fn flush_target(&mut self) -> Result<(), CloseReason> {
        poll_fn(|cx| {
            let mut progress = false;
            if let Err(r) = self.target_out(cx, &mut progress) {
                return Poll::Ready(Err(r));
            }
            if !self.up.out_pending() && !self.target_flush {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Sends a close frame: finishes a data frame already begun (the stream must stay
    /// well-formed), drops data frames and pongs not yet begun, then the close.
    pub(super) async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), CloseReason> {
        if !self.down.started() {
            self.down.clear();
        }
        self.pong = None;
        self.ping_queued = false;
        self.flush_client().await?;
        self.ctrl = Some((ControlFrame::close(code, reason), 0));
        self.flush_client().await
    }

    /// Reads the browser until its close frame, EOF or an error; everything else it
    /// sends now is discarded.
    pub(super) async fn await_client_close(&mut self) {
        self.discard_up = true;
        (self.up.out_start, self.up.out_end) = (0, 0);
        poll_fn(|cx| loop {
            let mut progress = false;
            let mut allocated = false;
            match self.client_in(cx, &mut progress, &mut allocated) {
                Err(_) => return Poll::Ready(()),
                Ok(()) if !progress => return Poll::Pending,
                Ok(()) => {}
            }
        })
        .await;
    }

    /// Ends the session on both sides according to `reason`, within [`CLOSE_WAIT`].
    pub(super) async fn finish(&mut self, reason: &CloseReason) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            match reason {
                CloseReason::ClientVanished | CloseReason::ClientError(_) => {
                    // What the browser sent before it went is still delivered.
                    let _ = self.flush_target().await;
                }
                CloseReason::ClientClosed { code, .. } => {
                    if self.send_close(code.unwrap_or(1000), "").await.is_ok() {
                        let _ = self.client.shutdown().await;
                    }
                    let _ = self.flush_target().await;
                }
                CloseReason::TargetClosed => {
                    // All console bytes reach the browser before the close.
                    if self.flush_client().await.is_ok()
                        && self
                            .send_close(reason.code(), &reason.to_string())
                            .await
                            .is_ok()
                    {
                        self.await_client_close().await;
                        let _ = self.client.shutdown().await;
                    }
                }
                _ => {
                    if self
                        .send_close(reason.code(), &reason.to_string())
                        .await
                        .is_ok()
                    {
                        self.await_client_close().await;
                        let _ = self.client.shutdown().await;
                    }
                }
            }
        })
        .await;
        // Whatever happened above, the console server learns the session is over.
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, self.target.shutdown()).await;
    }
}

//! The four I/O operations of a session, each tried once per round of
//! [`Session::poll_io`](super::Session::poll_io): write to the browser (data frames built
//! in place, control frames between them), write to the console server, read the
//! console server (into the down buffer behind room for the frame header, or the stack
//! probe), read the browser (parse and unmask in place).

use super::super::close::{client_error, target_error, CloseReason};
use super::super::frame::{self, ControlFrame, Item, MAX_HEADER, OP_BINARY, OP_PING, OP_PONG};
use super::super::{Buffer, Session, Up, PROBE};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

impl<C, T> Session<C, T>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Writes to the browser: a started data frame first (frames go back to back), then
    /// control frames, then the next data frame, then a flush.
    pub(super) fn client_out(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Result<(), CloseReason> {
        loop {
            let is_data;
            let bytes: &[u8] = if self.down.started() {
                is_data = true;
                &self.down.buf[self.down.pos..self.down.end]
            } else if let Some((frame, pos)) = &self.ctrl {
                is_data = false;
                &frame.as_bytes()[*pos..]
            } else if let Some(frame) = self.pong.take() {
                self.ctrl = Some((frame, 0));
                continue;
            } else if self.ping_queued {
                self.ping_queued = false;
                self.ctrl = Some((ControlFrame::new(OP_PING, b""), 0));
                continue;
            } else if self.down.pending() {
                is_data = true;
                &self.down.buf[self.down.pos..self.down.end]
            } else if self.client_flush {
                return match Pin::new(&mut self.client).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.client_flush = false;
                        *progress = true;
                        Ok(())
                    }
                    Poll::Ready(Err(e)) => Err(client_error(e)),
                    Poll::Pending => Ok(()),
                };
            } else {
                return Ok(());
            };
            let n = match Pin::new(&mut self.client).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => return Err(CloseReason::ClientVanished),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(client_error(e)),
                Poll::Pending => return Ok(()),
            };
            *progress = true;
            self.client_flush = true;
            if is_data {
                self.client_progress = Instant::now();
                self.down.pos += n;
                if self.down.pos >= self.down.end {
                    self.count_down((self.down.end - MAX_HEADER) as u64);
                    self.down.clear();
                }
            } else if let Some((frame, pos)) = &mut self.ctrl {
                *pos += n;
                if *pos >= frame.as_bytes().len() {
                    self.ctrl = None;
                }
            }
        }
    }

    /// Writes unmasked browser payload to the console server, then flushes.
    pub(super) fn target_out(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Result<(), CloseReason> {
        loop {
            if !self.up.out_pending() {
                if !self.target_flush {
                    return Ok(());
                }
                return match Pin::new(&mut self.target).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.target_flush = false;
                        *progress = true;
                        Ok(())
                    }
                    Poll::Ready(Err(e)) => Err(target_error(e)),
                    Poll::Pending => Ok(()),
                };
            }
            let bytes = &self.up_buf[self.up.out_start..self.up.out_end];
            let n = match Pin::new(&mut self.target).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => {
                    return Err(CloseReason::TargetError(
                        "console server accepts no more data".into(),
                    ))
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(target_error(e)),
                Poll::Pending => return Ok(()),
            };
            *progress = true;
            self.target_flush = true;
            self.count_up(n as u64);
            self.up.out_start += n;
            if !self.up.out_pending() {
                self.up.compact(&mut self.up_buf);
            }
        }
    }

    /// Reads console bytes behind room for a header and makes them one frame. Only
    /// when the previous frame is fully written: that is the down backpressure.
    pub(super) fn target_in(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        if self.down.pending() {
            return Ok(());
        }
        if self.down.buf.is_empty() {
            return self.target_in_unbuffered(cx, progress, allocated);
        }
        // Nothing is pending, so a buffer of another size replaces it without a copy.
        if self.down.buf.len() != self.down_size.size() {
            self.down.buf = Buffer::new(self.down_size.size());
            self.allocations += 1;
        }
        let room = self.down.buf.len() - MAX_HEADER;
        let mut rb = ReadBuf::new(&mut self.down.buf[MAX_HEADER..]);
        let n = match Pin::new(&mut self.target).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(target_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::TargetClosed);
        }
        self.down_size.read(n, room);
        *progress = true;
        self.touch_down();
        let start = frame::put_header(&mut self.down.buf, MAX_HEADER, OP_BINARY, n);
        (self.down.start, self.down.pos, self.down.end) = (start, start, MAX_HEADER + n);
        self.client_progress = self.last_read;
        Ok(())
    }

    /// [`Self::target_in`] while the session holds no down buffer: reads into a stack
    /// frame; a small read that the browser takes whole is sent from there and never
    /// allocates (banners, screen trickles). Only a full probe (a burst is starting) or
    /// a write that does not finish allocates the buffer and moves the frame into it.
    pub(super) fn target_in_unbuffered(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        let mut frame = [0u8; MAX_HEADER + PROBE];
        let probe_len = PROBE.min(self.buffer_size);
        let mut rb = ReadBuf::new(&mut frame[MAX_HEADER..MAX_HEADER + probe_len]);
        let n = match Pin::new(&mut self.target).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(target_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::TargetClosed);
        }
        *progress = true;
        self.touch_down();
        let start = frame::put_header(&mut frame, MAX_HEADER, OP_BINARY, n);
        let end = MAX_HEADER + n;
        let mut pos = start;
        // Straight out only if no control frame is half written or waiting: frames
        // must not interleave, and queued control frames go first.
        let ctrl_idle = self.ctrl.is_none() && self.pong.is_none() && !self.ping_queued;
        if n < probe_len && ctrl_idle {
            match Pin::new(&mut self.client).poll_write(cx, &frame[start..end]) {
                Poll::Ready(Ok(0)) => return Err(CloseReason::ClientVanished),
                Poll::Ready(Ok(k)) => {
                    pos += k;
                    self.client_flush = true;
                }
                Poll::Ready(Err(e)) => return Err(client_error(e)),
                Poll::Pending => {}
            }
            if pos >= end {
                self.count_down(n as u64);
                return Ok(());
            }
        }
        self.down.buf = Buffer::new(self.down_size.size());
        self.allocations += 1;
        self.down.buf[start..end].copy_from_slice(&frame[start..end]);
        (self.down.start, self.down.pos, self.down.end) = (start, pos, end);
        self.client_progress = self.last_read;
        *allocated = true;
        Ok(())
    }

    /// Reads browser bytes and parses them. Only when the previous payload is fully
    /// written to the target: that is the up backpressure.
    pub(super) fn client_in(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        if self.up.out_pending() {
            return Ok(());
        }
        if self.up_buf.is_empty() {
            return self.client_in_unbuffered(cx, progress, allocated);
        }
        // Nothing is waiting to go out, so only an incomplete header (compacted to the
        // front) moves to a buffer of another size.
        let want = self.up_size.size();
        if self.up_buf.len() != want && self.up.filled <= want {
            let mut bigger = Buffer::new(want);
            bigger[..self.up.filled].copy_from_slice(&self.up_buf[..self.up.filled]);
            self.up_buf = bigger;
            self.allocations += 1;
        }
        let room = self.up_buf.len() - self.up.filled;
        let mut rb = ReadBuf::new(&mut self.up_buf[self.up.filled..]);
        let n = match Pin::new(&mut self.client).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(client_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::ClientVanished);
        }
        self.up_size.read(n, room);
        *progress = true;
        self.up.filled += n;
        // Parse with the buffer moved out of `self` (a pointer swap) so the parser
        // can update the rest of the session.
        let mut buf = std::mem::take(&mut self.up_buf);
        let mut up = self.up;
        let parsed = self.parse_up(&mut buf, &mut up);
        (self.up_buf, self.up) = (buf, up);
        parsed
    }

    /// [`Self::client_in`] while the session holds no up buffer: parses a stack probe
    /// and writes its payload to the target at once; allocates the buffer only for
    /// what cannot finish now (a full probe, a split header, a blocked target).
    pub(super) fn client_in_unbuffered(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        allocated: &mut bool,
    ) -> Result<(), CloseReason> {
        let mut probe = [0u8; PROBE];
        let probe_len = PROBE.min(self.buffer_size);
        let mut rb = ReadBuf::new(&mut probe[..probe_len]);
        let n = match Pin::new(&mut self.client).poll_read(cx, &mut rb) {
            Poll::Pending => return Ok(()),
            Poll::Ready(Err(e)) => return Err(client_error(e)),
            Poll::Ready(Ok(())) => rb.filled().len(),
        };
        if n == 0 {
            return Err(CloseReason::ClientVanished);
        }
        *progress = true;
        let mut up = Up {
            filled: n,
            ..Up::default()
        };
        // A protocol error or close still lets the payload before it reach the target
        // (the closing code flushes it), so keep going and return `parsed` last.
        let parsed = self.parse_up(&mut probe, &mut up);
        if up.out_pending() && n < probe_len {
            let bytes = &probe[up.out_start..up.out_end];
            match Pin::new(&mut self.target).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => {
                    return Err(CloseReason::TargetError(
                        "console server accepts no more data".into(),
                    ))
                }
                Poll::Ready(Ok(k)) => {
                    up.out_start += k;
                    self.count_up(k as u64);
                    self.target_flush = true;
                    if !up.out_pending() {
                        up.compact(&mut probe);
                    }
                }
                Poll::Ready(Err(e)) => return Err(target_error(e)),
                Poll::Pending => {}
            }
        }
        if up.out_pending() || up.filled > 0 || n == probe_len {
            self.up_buf = Buffer::new(self.up_size.size());
            self.allocations += 1;
            self.up_buf[..up.filled].copy_from_slice(&probe[..up.filled]);
            *allocated = true;
        }
        self.up = up;
        parsed
    }

    /// Records a console read, for the release timer and the idle timeout.
    pub(super) fn touch_down(&mut self) {
        let now = Instant::now();
        (self.last_read, self.last_down_read, self.last_payload) = (now, now, now);
    }

    /// Records a browser read, for the release timer and, with payload, the idle
    /// timeout.
    pub(super) fn touch(&mut self, payload: bool) {
        let now = Instant::now();
        self.last_read = now;
        self.last_up_read = now;
        if payload {
            self.last_payload = now;
        }
    }

    /// Parses everything read into `buf` so far. Data payloads are unmasked in place
    /// and gathered into the out range; control frames are answered here.
    pub(super) fn parse_up(&mut self, buf: &mut [u8], up: &mut Up) -> Result<(), CloseReason> {
        let mut payload = false;
        let result = loop {
            if up.parsed >= up.filled {
                break Ok(());
            }
            let item = match self.parser.next(&mut buf[up.parsed..up.filled]) {
                Ok(item) => item,
                Err(e) => break Err(e.into()),
            };
            match item {
                Item::NeedMore => break Ok(()),
                Item::Header { used } | Item::ControlPart { used } => up.parsed += used,
                Item::Data { len } => {
                    let src = up.parsed;
                    up.parsed += len;
                    if self.discard_up {
                        continue;
                    }
                    payload = true;
                    if !up.out_pending() {
                        (up.out_start, up.out_end) = (src, src + len);
                    } else {
                        // Close the gap left by the header in between; only small
                        // frames get here, a large payload starts an empty out range.
                        if up.out_end != src {
                            buf.copy_within(src..src + len, up.out_end);
                        }
                        up.out_end += len;
                    }
                }
                Item::Ping { used } => {
                    up.parsed += used;
                    if !self.discard_up {
                        self.pong = Some(ControlFrame::new(OP_PONG, self.parser.control_payload()));
                    }
                }
                Item::Pong { used } => {
                    up.parsed += used;
                    self.pings_unanswered = 0;
                }
                Item::Close { used, code, reason } => {
                    up.parsed += used;
                    break Err(CloseReason::ClientClosed { code, reason });
                }
            }
        };
        self.touch(payload);
        if !up.out_pending() {
            up.compact(buf);
        }
        result
    }
}

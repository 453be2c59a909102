//! Reading ahead under TLS, only while a stream is streaming.
//!
//! rustls reads TLS records from the socket 4 KiB at a time (its deframer asks for
//! `READ_SIZE` = 4096 bytes per `read_tls`), so one 16 KiB record costs four or five
//! `recv` calls, and an upload through `wss://` about one system call per 4 KiB, where
//! nginx and HAProxy (OpenSSL) make two per record. [`ReadAhead`] sits between the
//! socket and rustls: a read that the socket filled completely (more is queued behind
//! it) switches it to reading 64 KiB at once into its own buffer and handing rustls its
//! 4 KiB from there; the first read that drains the socket switches it back and frees
//! the buffer. A console's keystrokes, a handshake, an idle session: none of them ever
//! fills a 4 KiB read, so they never allocate.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once while streaming.
const AHEAD: usize = 64 << 10;

/// A stream whose reads go through a buffer only while data keeps coming.
pub struct ReadAhead<S> {
    inner: S,
    /// Empty unless streaming; unconsumed bytes are `buf[pos..end]`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The last socket read filled what was asked: read ahead next time.
    streaming: bool,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            streaming: false,
        }
    }

    /// Hands out buffered bytes; frees the buffer once it is drained and the socket was.
    fn take(&mut self, dst: &mut ReadBuf<'_>) {
        let n = dst.remaining().min(self.end - self.pos);
        dst.put_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.end && !self.streaming {
            self.buf = Vec::new();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.end {
            this.take(dst);
            return Poll::Ready(Ok(()));
        }
        if !this.streaming {
            let (before, want) = (dst.filled().len(), dst.remaining());
            ready!(Pin::new(&mut this.inner).poll_read(cx, dst))?;
            this.streaming = want > 0 && dst.filled().len() - before == want;
            return Poll::Ready(Ok(()));
        }
        if this.buf.is_empty() {
            this.buf = vec![0; AHEAD];
        }
        let mut rb = ReadBuf::new(&mut this.buf);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        (this.pos, this.end) = (0, n);
        this.streaming = n == AHEAD;
        this.take(dst);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn every_byte_arrives_in_order_whether_streaming_or_not() {
        let (mut tx, rx) = tokio::io::duplex(256 << 10);
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            // A trickle first, then a stream.
            for chunk in sent[..100].chunks(7) {
                tx.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            tx.write_all(&sent[100..]).await.unwrap();
        });
        let mut ra = ReadAhead::new(rx);
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        loop {
            let n = ra.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got, data);
        assert!(ra.buf.is_empty(), "the buffer is freed once drained");
    }

    #[tokio::test]
    async fn small_reads_never_allocate() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut ra = ReadAhead::new(rx);
        for i in 0..10u8 {
            tx.write_all(&[i; 8]).await.unwrap();
            let mut b = [0u8; 4096];
            let n = ra.read(&mut b).await.unwrap();
            assert_eq!(&b[..n], &[i; 8]);
            assert!(ra.buf.is_empty() && !ra.streaming);
        }
    }
}

//! The TCP backend every target relays to: a stand-in console server that speaks the
//! [`crate::proto`] commands (stream down, sink up with a CRC reply, echo, or idle after
//! the banner). One thread: its cost is the same for every target, and it must not take
//! a core away from the proxy under test.

use crate::proto::{self, Pattern, MSG_LEN, OP_DOWN, OP_ECHO, OP_UP};
use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Chunk the backend writes or reads per call.
const IO_CHUNK: usize = 256 << 10;

/// Accepts connections forever (the run script kills it).
pub async fn serve(listen: &str) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("backend: bind {listen}"))?;
    let pattern = Arc::new(Pattern::new());
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors is transient while a memory ramp is closing.
                eprintln!("backend: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let pattern = pattern.clone();
        tokio::spawn(async move {
            if let Err(e) = session(sock, &pattern).await {
                if !matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) {
                    eprintln!("backend: session: {e}");
                }
            }
        });
    }
}

async fn session(mut sock: TcpStream, pattern: &Pattern) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    sock.write_all(proto::BANNER).await?;
    // Allocated on the first command: 20,000 idle sessions should not cost 5 GiB here.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut cmd = [0u8; MSG_LEN];
        match sock.read_exact(&mut cmd).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let (op, n) = proto::parse_command(&cmd)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
        if buf.is_empty() {
            buf = vec![0u8; IO_CHUNK];
        }
        match op {
            OP_DOWN => {
                let mut off = 0u64;
                while off < n {
                    let len = (n - off).min(IO_CHUNK as u64) as usize;
                    sock.write_all(pattern.slice(off, len)).await?;
                    off += len as u64;
                }
            }
            OP_UP => {
                let mut h = crc32fast::Hasher::new();
                let mut got = 0u64;
                while got < n {
                    let want = (n - got).min(IO_CHUNK as u64) as usize;
                    let k = sock.read(&mut buf[..want]).await?;
                    if k == 0 {
                        return Ok(());
                    }
                    h.update(&buf[..k]);
                    got += k as u64;
                }
                sock.write_all(&proto::reply(got, h.finalize())).await?;
            }
            OP_ECHO => {
                let mut left = n;
                while left > 0 {
                    let want = left.min(IO_CHUNK as u64) as usize;
                    let k = sock.read(&mut buf[..want]).await?;
                    if k == 0 {
                        return Ok(());
                    }
                    sock.write_all(&buf[..k]).await?;
                    left -= k as u64;
                }
            }
            _ => unreachable!("parse_command returns known opcodes only"),
        }
    }
}

//! Most tests relay over loopback TCP, as in production. Tests of timers (heartbeat,
//! idle timeout, maximum duration, buffer release) and of "nothing more happens" run
//! on tokio's paused clock over in-memory pipes: the clock jumps to the next timer
//! only once every task is waiting, so they neither sleep nor flake on a loaded
//! machine. (Real sockets and a paused clock mix badly: the clock may jump while a
//! byte is still in the kernel.)

use super::*;
use frame::tests::masked as masked_with_key;
use frame::MAX_HEADER;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Fails the test instead of hanging it. Generous: on real sockets a loaded
/// machine may be slow, and on the paused clock the bound costs nothing.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

/// Two connected loopback TCP sockets.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (a.unwrap(), b.unwrap().0)
}

/// Two connected in-memory pipes' ends, with room for 64 KiB each way.
fn pipe_pair() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(64 << 10)
}

/// A relay with the browser's raw connection and the console end.
struct Raw<S> {
    browser: S,
    console: S,
    stop: watch::Sender<Stop>,
    relay: JoinHandle<RelayOutcome>,
}

/// Relays between `(browser, proxy_client)` and `(proxy_target, console)`.
fn relay_between<S>(client: (S, S), target: (S, S), cfg: RelayConfig) -> Raw<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ((browser, proxy_client), (proxy_target, console)) = (client, target);
    let (stop, stop_rx) = watch::channel(Stop::Run);
    let relay = tokio::spawn(async move { relay(proxy_client, proxy_target, &cfg, stop_rx).await });
    Raw {
        browser,
        console,
        stop,
        relay,
    }
}

/// Over loopback TCP.
async fn start_raw(cfg: RelayConfig) -> Raw<TcpStream> {
    relay_between(tcp_pair().await, tcp_pair().await, cfg)
}

/// Over in-memory pipes, for tests on the paused clock.
fn start_raw_in_memory(cfg: RelayConfig) -> Raw<DuplexStream> {
    relay_between(pipe_pair(), pipe_pair(), cfg)
}

/// The same with tokio-tungstenite as the browser.
struct Ws<S> {
    ws: WebSocketStream<S>,
    console: S,
    stop: watch::Sender<Stop>,
    relay: JoinHandle<RelayOutcome>,
}

async fn with_tungstenite<S>(raw: Raw<S>) -> Ws<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Ws {
        ws: WebSocketStream::from_raw_socket(raw.browser, Role::Client, None).await,
        console: raw.console,
        stop: raw.stop,
        relay: raw.relay,
    }
}

/// Over loopback TCP.
async fn start(cfg: RelayConfig) -> Ws<TcpStream> {
    with_tungstenite(start_raw(cfg).await).await
}

/// Over in-memory pipes, for tests on the paused clock.
async fn start_in_memory(cfg: RelayConfig) -> Ws<DuplexStream> {
    with_tungstenite(start_raw_in_memory(cfg)).await
}

fn quiet() -> RelayConfig {
    RelayConfig {
        ping_interval: None,
        ..RelayConfig::default()
    }
}

/// A masked client frame.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    masked_with_key(first, payload, [0x5A, 0x17, 0xC3, 0x81])
}

/// Reads until the close frame, answers it (tungstenite queues the answer and sends
/// it on the next poll) and returns its code and reason.
async fn expect_close<S>(ws: &mut WebSocketStream<S>) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (code, reason) = within(async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    break (u16::from(code), reason.to_string())
                }
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => {}
                other => panic!("connection ended before a close frame: {other:?}"),
            }
        }
    })
    .await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {}
    (code, reason)
}

/// Sends `frame` raw, then reads the relay's close with tungstenite.
async fn close_code_after_raw(frame: &[u8], cfg: RelayConfig) -> (u16, CloseReason) {
    let mut raw = start_raw(cfg).await;
    raw.browser.write_all(frame).await.unwrap();
    let mut ws = WebSocketStream::from_raw_socket(raw.browser, Role::Client, None).await;
    let (code, _) = expect_close(&mut ws).await;
    let outcome = within(raw.relay).await.unwrap();
    assert_eq!(outcome.reason.code(), code);
    (code, outcome.reason)
}

/// Byte `i` of the test streams: position-dependent so loss or reordering shows.
fn pattern(i: u64, seed: u64) -> u8 {
    ((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

#[tokio::test]
async fn relays_64_mib_each_way_at_once_byte_exact() {
    const TOTAL: u64 = 64 << 20;
    let Ws {
        ws, console, relay, ..
    } = start(quiet()).await;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut con_rx, mut con_tx) = console.into_split();

    let up_send = async {
        let mut sent = 0u64;
        while sent < TOTAL {
            // Odd sizes so frames and reads never line up.
            let n = (TOTAL - sent).min(100_003);
            let chunk: Vec<u8> = (sent..sent + n).map(|i| pattern(i, 1)).collect();
            ws_tx.send(Message::binary(chunk)).await.unwrap();
            sent += n;
        }
        ws_tx
    };
    let up_recv = async {
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        while got < TOTAL {
            let n = con_rx.read(&mut buf).await.unwrap();
            assert!(n > 0, "console saw EOF after {got} bytes");
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, pattern(got + k as u64, 1), "up byte {}", got + k as u64);
            }
            got += n as u64;
        }
    };
    let down_send = async {
        let mut sent = 0u64;
        while sent < TOTAL {
            let n = (TOTAL - sent).min(70_001);
            let chunk: Vec<u8> = (sent..sent + n).map(|i| pattern(i, 2)).collect();
            con_tx.write_all(&chunk).await.unwrap();
            sent += n;
        }
    };
    let down_recv = async {
        let mut got = 0u64;
        while got < TOTAL {
            match ws_rx.next().await {
                Some(Ok(Message::Binary(data))) => {
                    for (k, b) in data.iter().enumerate() {
                        assert_eq!(*b, pattern(got + k as u64, 2), "down byte");
                    }
                    got += data.len() as u64;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let (mut ws_tx, (), (), ()) =
        within(async { tokio::join!(up_send, up_recv, down_send, down_recv) }).await;
    ws_tx.send(Message::Close(None)).await.unwrap();
    let outcome = within(relay).await.unwrap();
    assert_eq!(outcome.bytes_up, TOTAL);
    assert_eq!(outcome.bytes_down, TOTAL);
    assert_eq!(
        outcome.reason,
        CloseReason::ClientClosed {
            code: None,
            reason: String::new()
        }
    );
}

#[tokio::test]
async fn a_text_frame_closes_with_1003() {
    let Ws {
        mut ws,
        relay,
        console: _console,
        ..
    } = start(quiet()).await;
    ws.send(Message::text("hello")).await.unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("binary"), "{reason}");
    assert_eq!(within(relay).await.unwrap().reason, CloseReason::TextFrame);
}

#[tokio::test]
async fn an_unmasked_frame_closes_with_1002() {
    let (code, reason) = close_code_after_raw(&[0x82, 0x02, b'h', b'i'], quiet()).await;
    assert_eq!(code, 1002);
    assert!(matches!(reason, CloseReason::ProtocolError(e) if e.contains("not masked")));
}

#[tokio::test]
async fn reserved_bits_unknown_opcodes_and_bad_control_frames_close_with_1002() {
    let cases = [
        masked(0xC2, b"compressed?"),         // RSV1 without an extension
        masked(0x83, b"opcode 3"),            // reserved data opcode
        masked(0x8C, b""),                    // reserved control opcode
        masked(0x09, b"fragmented"),          // ping without FIN
        masked(0x89, &[0; 126]),              // ping longer than 125
        masked(0x80, b"continuation"),        // continuation with nothing to continue
        masked(0x88, &1006u16.to_be_bytes()), // close code that may not be sent
    ];
    for frame in cases {
        let (code, _) = close_code_after_raw(&frame, quiet()).await;
        assert_eq!(code, 1002, "frame starting {:#04x}", frame[0]);
    }
}

#[tokio::test]
async fn a_message_over_max_message_closes_with_1009_even_when_fragmented() {
    let cfg = RelayConfig {
        max_message: 1000,
        ..quiet()
    };
    let (code, reason) = close_code_after_raw(&masked(0x82, &[1; 1001]), cfg.clone()).await;
    assert_eq!(
        (code, reason),
        (1009, CloseReason::MessageTooBig { limit: 1000 })
    );

    let mut two = masked(0x02, &[1; 600]);
    two.extend(masked(0x80, &[2; 600]));
    let (code, _) = close_code_after_raw(&two, cfg.clone()).await;
    assert_eq!(code, 1009);

    // Exactly at the limit is fine, and the next message starts from zero.
    let mut ok = masked(0x02, &[1; 500]);
    ok.extend(masked(0x80, &[2; 500]));
    ok.extend(masked(0x82, &[3; 1000]));
    let mut raw = start_raw(cfg).await;
    raw.browser.write_all(&ok).await.unwrap();
    let mut got = vec![0u8; 2000];
    within(raw.console.read_exact(&mut got)).await.unwrap();
    assert!(got[..500].iter().all(|b| *b == 1) && got[1000..].iter().all(|b| *b == 3));
}

#[tokio::test]
async fn fragmented_messages_are_relayed_as_they_come_with_control_frames_between() {
    let mut raw = start_raw(quiet()).await;
    let mut frames = masked(0x02, b"abc");
    frames.extend(masked(0x89, b"mid")); // ping inside the message
    frames.extend(masked(0x00, b"def"));
    frames.extend(masked(0x80, b"ghi"));
    frames.extend(masked(0x82, b"!"));
    raw.browser.write_all(&frames).await.unwrap();
    let mut got = [0u8; 10];
    within(raw.console.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"abcdefghi!");
    // The ping was answered: pong frame 0x8A with "mid".
    let mut pong = [0u8; 5];
    within(raw.browser.read_exact(&mut pong)).await.unwrap();
    assert_eq!(&pong, b"\x8a\x03mid");
}

#[tokio::test]
async fn frames_trickling_in_a_byte_at_a_time_are_relayed() {
    let mut raw = start_raw(quiet()).await;
    let mut frames = masked(0x82, b"slow");
    frames.extend(masked(0x89, b"p"));
    frames.extend(masked(0x82, &[3u8; 300]));
    for b in &frames {
        raw.browser.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let mut got = [0u8; 304];
    within(raw.console.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got[..4], b"slow");
    assert!(got[4..].iter().all(|b| *b == 3));
    let mut pong = [0u8; 3];
    within(raw.browser.read_exact(&mut pong)).await.unwrap();
    assert_eq!(&pong, b"\x8a\x01p");
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_carrying_its_payload() {
    let Ws {
        mut ws,
        console: _console,
        ..
    } = start(quiet()).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let msg = within(ws.next()).await.unwrap().unwrap();
    assert_eq!(msg, Message::Pong(b"are you there".to_vec().into()));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_pings_arrive_every_interval() {
    let cfg = RelayConfig {
        ping_interval: Some(Duration::from_millis(100)),
        ..RelayConfig::default()
    };
    let Ws {
        mut ws,
        relay,
        console: _console,
        ..
    } = start_in_memory(cfg).await;
    for _ in 0..4 {
        // tungstenite answers each ping, so the session stays up.
        let msg = within(ws.next()).await.unwrap().unwrap();
        assert!(matches!(msg, Message::Ping(_)), "{msg:?}");
    }
    assert!(!relay.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_browser_that_never_answers_pings_is_dropped_after_two_intervals() {
    let cfg = RelayConfig {
        ping_interval: Some(Duration::from_millis(100)),
        ..RelayConfig::default()
    };
    let mut raw = start_raw_in_memory(cfg);
    let started = Instant::now();
    // Read raw frames without answering until the close arrives, then hang up.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.contains(&0x88) {
        let n = within(raw.browser.read(&mut buf)).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    drop(raw.browser);
    let outcome = within(raw.relay).await.unwrap();
    assert_eq!(outcome.reason, CloseReason::PingTimeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(&seen[..4], b"\x89\x00\x89\x00", "two pings came first");
}

#[tokio::test]
async fn target_close_delivers_every_byte_then_closes_with_1000() {
    let Ws {
        mut ws,
        mut console,
        relay,
        ..
    } = start(quiet()).await;
    let data: Vec<u8> = (0..1_000_000).map(|i| pattern(i, 3)).collect();
    console.write_all(&data).await.unwrap();
    drop(console);
    let mut got = Vec::new();
    let (code, reason) = within(async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
                Some(Ok(Message::Close(Some(f)))) => break (u16::from(f.code), f.reason),
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert_eq!(got, data);
    assert_eq!(
        (code, reason.as_str()),
        (1000, "console server closed the connection")
    );
    let _ = ws.next().await; // sends tungstenite's close answer
    let outcome = within(relay).await.unwrap();
    assert_eq!(outcome.reason, CloseReason::TargetClosed);
    assert_eq!(outcome.bytes_down, data.len() as u64);
}

#[tokio::test]
async fn client_close_is_echoed_and_the_target_sees_eof_after_the_data() {
    let Ws {
        mut ws,
        mut console,
        relay,
        ..
    } = start(quiet()).await;
    ws.send(Message::binary(b"last words".to_vec()))
        .await
        .unwrap();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "tab closed".into(),
    })))
    .await
    .unwrap();
    let mut got = Vec::new();
    within(console.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"last words");
    // tungstenite reports the echo as the end of the stream.
    let echo = within(ws.next()).await;
    assert!(
        matches!(&echo, Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1001)
            || echo.is_none(),
        "{echo:?}"
    );
    let outcome = within(relay).await.unwrap();
    assert_eq!(
        outcome.reason,
        CloseReason::ClientClosed {
            code: Some(1001),
            reason: "tab closed".into()
        }
    );
    assert_eq!(outcome.reason.code(), 1001);
}

#[tokio::test]
async fn a_vanished_browser_closes_the_target() {
    let mut raw = start_raw(quiet()).await;
    raw.browser
        .write_all(&masked(0x82, b"typed"))
        .await
        .unwrap();
    drop(raw.browser);
    let mut got = Vec::new();
    within(raw.console.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"typed");
    let outcome = within(raw.relay).await.unwrap();
    assert_eq!(outcome.reason, CloseReason::ClientVanished);
    assert_eq!(outcome.bytes_up, 5);
}

#[tokio::test]
async fn drain_closes_with_1001() {
    let Ws {
        mut ws,
        mut console,
        stop,
        relay,
    } = start(quiet()).await;
    stop.send(Stop::Drain).unwrap();
    assert_eq!(
        expect_close(&mut ws).await,
        (1001, "proxy is shutting down".to_owned())
    );
    assert_eq!(within(relay).await.unwrap().reason, CloseReason::Drain);
    let mut rest = Vec::new();
    within(console.read_to_end(&mut rest)).await.unwrap();
}

#[tokio::test]
async fn kill_closes_with_1008_and_the_operator_reason_cut_on_a_char_boundary() {
    let Ws {
        mut ws,
        stop,
        relay,
        console: _console,
    } = start(quiet()).await;
    stop.send(Stop::Kill("access revoked".into())).unwrap();
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "access revoked".to_owned())
    );
    assert_eq!(
        within(relay).await.unwrap().reason,
        CloseReason::Killed("access revoked".into())
    );

    let Ws {
        mut ws,
        stop,
        relay,
        console: _console,
    } = start(quiet()).await;
    stop.send(Stop::Kill("ü".repeat(100))).unwrap(); // 200 bytes
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.len()), (1008, 122));
    within(relay).await.unwrap();
}

#[tokio::test]
async fn a_session_killed_before_it_starts_closes_at_once() {
    let raw = start_raw(quiet()).await;
    raw.stop.send(Stop::Kill("too late".into())).unwrap();
    let mut ws = WebSocketStream::from_raw_socket(raw.browser, Role::Client, None).await;
    assert_eq!(expect_close(&mut ws).await.0, 1008);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_waits_for_quiet_then_closes_with_1000() {
    let cfg = RelayConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..quiet()
    };
    let Ws {
        mut ws,
        mut console,
        relay,
        ..
    } = start_in_memory(cfg).await;
    let started = Instant::now();
    // Traffic every 100 ms for 600 ms keeps the session alive past the timeout.
    for _ in 0..6 {
        ws.send(Message::binary(b"k".to_vec())).await.unwrap();
        let mut b = [0u8; 1];
        within(console.read_exact(&mut b)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!relay.is_finished());
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1000, "session idle for too long"));
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(
        within(relay).await.unwrap().reason,
        CloseReason::IdleTimeout
    );
}

#[tokio::test(start_paused = true)]
async fn max_duration_ends_a_busy_session_with_1008() {
    let cfg = RelayConfig {
        max_duration: Some(Duration::from_millis(300)),
        ..quiet()
    };
    let Ws {
        mut ws,
        mut console,
        relay,
        ..
    } = start_in_memory(cfg).await;
    let started = Instant::now();
    let chatter = tokio::spawn(async move {
        while console.write_all(b"frame").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "session reached its maximum duration")
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        within(relay).await.unwrap().reason,
        CloseReason::MaxDuration
    );
    within(chatter).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_browser_that_stops_reading_bounds_what_is_read_from_the_console() {
    const PIPE: usize = 64 << 10;
    let cfg = quiet();
    let (_browser, proxy_client) = tokio::io::duplex(PIPE);
    let (proxy_target, mut console) = tokio::io::duplex(PIPE);
    let (_stop, stop_rx) = watch::channel(Stop::Run);
    let bound = PIPE + cfg.buffer_size + MAX_HEADER + PIPE;
    let relay = tokio::spawn(async move { relay(proxy_client, proxy_target, &cfg, stop_rx).await });
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = written.clone();
    let writer = tokio::spawn(async move {
        let chunk = [7u8; 4096];
        while let Ok(n) = console.write(&chunk).await {
            count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // The paused clock moves on only once the writer, the relay and this task all
    // wait: each read below sees everything that could move by then.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_300 = written.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_600 = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        at_600 <= bound,
        "console wrote {at_600} bytes, bound {bound}"
    );
    assert_eq!(at_300, at_600, "the relay kept reading");
    assert!(at_600 > PIPE, "the relay read something");
    relay.abort();
    writer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_console_that_stops_reading_bounds_what_is_read_from_the_browser() {
    const PIPE: usize = 64 << 10;
    let cfg = RelayConfig {
        max_message: usize::MAX,
        ..quiet()
    };
    let (mut browser, proxy_client) = tokio::io::duplex(PIPE);
    let (proxy_target, _console) = tokio::io::duplex(PIPE);
    let (_stop, stop_rx) = watch::channel(Stop::Run);
    let bound = PIPE + cfg.buffer_size + PIPE;
    let relay = tokio::spawn(async move { relay(proxy_client, proxy_target, &cfg, stop_rx).await });
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = written.clone();
    let writer = tokio::spawn(async move {
        // One endless frame: a header announcing 2^62 bytes, then payload forever.
        let mut header = vec![0x82, 0xFF];
        header.extend_from_slice(&(1u64 << 62).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        browser.write_all(&header).await.unwrap();
        let chunk = [7u8; 4096];
        while let Ok(n) = browser.write(&chunk).await {
            count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // The paused clock moves on only once the writer, the relay and this task all
    // wait: each read below sees everything that could move by then.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_300 = written.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_600 = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        at_600 <= bound,
        "browser wrote {at_600} bytes, bound {bound}"
    );
    assert_eq!(at_300, at_600, "the relay kept reading");
    relay.abort();
    writer.abort();
}

#[tokio::test]
async fn the_outcome_counts_payload_bytes_each_way() {
    let Ws {
        mut ws,
        mut console,
        relay,
        ..
    } = start(quiet()).await;
    for n in [1usize, 125, 126, 65_535, 65_536, 200_000] {
        ws.send(Message::binary(vec![9u8; n])).await.unwrap();
    }
    let up: u64 = 1 + 125 + 126 + 65_535 + 65_536 + 200_000;
    let mut got = vec![0u8; up as usize];
    within(console.read_exact(&mut got)).await.unwrap();
    console.write_all(&[5u8; 12_345]).await.unwrap();
    drop(console);
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, 1000);
    let outcome = within(relay).await.unwrap();
    assert_eq!((outcome.bytes_up, outcome.bytes_down), (up, 12_345));
}

#[tokio::test]
async fn close_with_sends_code_and_reason_and_returns_on_the_answer() {
    let (browser, proxy_client) = tcp_pair().await;
    // 1011 rather than 1014 here: tungstenite 0.26 refuses 1014, browsers accept it.
    let closer = tokio::spawn(async move {
        close_with(proxy_client, 1011, "console server unreachable").await;
    });
    let mut ws = WebSocketStream::from_raw_socket(browser, Role::Client, None).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1011, "console server unreachable".to_owned())
    );
    within(closer).await.unwrap();
}

#[test]
fn an_idle_session_without_buffers_is_small() {
    let (_c, client) = tokio::io::duplex(1);
    let (_t, target) = tokio::io::duplex(1);
    let (_stop, stop_rx) = watch::channel(Stop::Run);
    let cfg = RelayConfig::default();
    let fut = relay(client, target, &cfg, stop_rx);
    // The whole per-session state of the relay while no buffer is allocated.
    let size = std::mem::size_of_val(&fut);
    assert!(size < 4096, "relay future is {size} bytes");
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_release_their_buffers_after_a_burst_or_a_banner() {
    for burst in [12usize, 1 << 20] {
        // Pipes with room for the whole burst, as loopback TCP's buffers have: the
        // peers below move it one direction after the other.
        let (browser, proxy_client) = tokio::io::duplex(2 << 20);
        let (proxy_target, console) = tokio::io::duplex(2 << 20);
        let mut session = Session::new(proxy_client, proxy_target, &quiet());
        let (_stop, mut stop_rx) = watch::channel(Stop::Run);
        let cfg = quiet();
        let peers = async {
            let (mut con_rx, mut con_tx) = tokio::io::split(console);
            let mut ws = WebSocketStream::from_raw_socket(browser, Role::Client, None).await;
            let up = vec![1u8; burst];
            ws.send(Message::binary(up)).await.unwrap();
            con_tx.write_all(&vec![2u8; burst]).await.unwrap();
            let mut got = vec![0u8; burst];
            con_rx.read_exact(&mut got).await.unwrap();
            let mut down = 0;
            while down < burst {
                if let Some(Ok(Message::Binary(b))) = ws.next().await {
                    down += b.len();
                }
            }
            tokio::time::sleep(RELEASE_AFTER * 3).await;
            (ws, con_rx, con_tx)
        };
        // Run the session while the peers move their burst and then go quiet;
        // dropping `run` leaves the session intact for inspection.
        let (_peers, reason) = within(async {
            tokio::join!(
                peers,
                tokio::time::timeout(RELEASE_AFTER * 4, session.run(&cfg, &mut stop_rx))
            )
        })
        .await;
        assert!(reason.is_err(), "session ended: {reason:?}");
        assert_eq!(session.bytes_up, burst as u64);
        assert_eq!(session.bytes_down, burst as u64);
        assert_eq!(session.down.buf.capacity(), 0, "after {burst} bytes");
        if burst < PROBE {
            assert_eq!(session.allocations, 0, "small reads go out from the stack");
        }
        assert_eq!(session.up_buf.capacity(), 0, "after {burst} bytes");
    }
}

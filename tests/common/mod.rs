//! Shared harness for the integration tests, one concern a file:
//! - [`proxy`]: the proxy in-process ([`TestProxy`]) or as the binary ([`ServeProcess`]);
//! - [`tickets`]: valid claims and raw, crafted tickets;
//! - [`targets`]: console-server stand-ins and a port that refuses connections;
//! - [`ws`]: the browser's side (clients, refusals, close frames, raw frames);
//! - [`wait`]: bounded waiting on a condition instead of fixed sleeps;
//! - [`process`]: child processes with their output collected;
//! - [`tools`]: external programs, and visible skips (failures under CI) without them;
//! - [`pki`]: certificates made with openssl; [`qemu`]: a real VNC and SPICE server;
//! - [`recordings`]: a recorder in a test's directory and a made-up session's metadata;
//! - [`rfb`]: a recording RFB server, the browser's side of RFB, client messages.
#![allow(dead_code)]

pub mod pki;
pub mod process;
pub mod proxy;
pub mod qemu;
pub mod recordings;
pub mod rfb;
pub mod targets;
pub mod tickets;
pub mod tools;
pub mod wait;
pub mod ws;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use proxy::{consolegate_bin, ChildProxy, DemoProcess, ServeProcess, TestProxy};
#[allow(unused_imports)]
pub use targets::{echo_target, echo_target_with_banner, one_shot_target, RefusingPort};
#[allow(unused_imports)]
pub use tickets::{claims_for, header_for, raw_ticket, B64};
#[allow(unused_imports)]
pub use wait::{wait_for, wait_until};
#[allow(unused_imports)]
pub use ws::*;

use std::time::Duration;

/// The bound on any single step of a test (a handshake, a read, a process start): long,
/// because the machine is small and shared; tests assert outcomes, not speed.
pub const LIMIT: Duration = Duration::from_secs(30);

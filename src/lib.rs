//! consolegate: a stateless, ticket-checking WebSocket-to-TCP proxy for VM consoles.
//!
//! An engine signs a short-lived Ed25519 ticket naming a console's `host:port`
//! ([`ticket`]); the proxy ([`front`]) checks it against its trusted keys ([`keys`]) and
//! its target and origin policy ([`policy`]), connects to the console server and relays
//! bytes ([`relay`]) until the session ends. No database, token files or RPC: any proxy
//! holding the public key serves any ticket.
//!
//! A request flows one way: `front` (accept, HTTP) → `ticket` (rules 1–6) → `policy`
//! (single use, target) → [`backend`] (TCP, then TLS or VeNCrypt to the console
//! server) → `relay` → close and log, with `session` keeping the live-session limit
//! and drain.
//!
//! Operators watch and steer a running proxy through [`admin`] (health, readiness,
//! [`metrics`], listing and killing sessions) and revoke tickets or users with a
//! [`denylist`] file; see docs/operations.md.
//!
//! An engine written in Rust signs tickets with [`ticket::Signer`]:
//!
//! ```no_run
//! use consolegate::{keys, ticket::{Claims, Signer}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let signer = Signer::new(keys::load_signing_key(std::path::Path::new("engine.key"))?);
//! let exp = consolegate::front::unix_now() + 120;
//! let ticket = signer.sign(
//!     &Claims::new("127.0.0.1", 5901, exp).with_sub("alice").with_jti(keys::random_jti()),
//! );
//! println!("wss://hv1.example:6100/{ticket}");
//! # Ok(()) }
//! ```
//!
//! and a proxy, or any program, checks them with [`ticket::verify`] (rules 1–6) and
//! [`policy`] (rules 7–8).
#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod clientaddr;
pub mod config;
pub mod demo;
pub mod denylist;
pub mod front;
pub mod keys;
pub mod legacy;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod readahead;
pub mod relay;
pub mod session;
pub mod ticket;

pub use keys::KeySet;
pub use ticket::{Claims, Signer, TicketError, Verified, VerifyOptions};

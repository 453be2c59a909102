//! consolegate: a stateless, ticket-checking WebSocket-to-TCP proxy for VM consoles.
//!
//! An engine signs a short-lived Ed25519 ticket naming a console's `host:port`
//! ([`ticket`]); the proxy ([`front`]) checks it against its trusted keys ([`keys`]) and
//! its target and origin policy ([`policy`]), connects to the console server and relays
//! bytes ([`relay`]) until the session ends. No database, token files or RPC: any proxy
//! holding the public key serves any ticket.
//!
//! A request flows one way: [`front`] (accept, HTTP, the handshake) → [`admission`]
//! (the ticket's rules 1–6 in [`ticket`], revocation in [`denylist`], rules 7–8 in
//! [`policy`], the slots of [`session`] and [`limits`], the TCP connection of
//! [`backend`]: one guard value that gives everything back unless the session starts)
//! → [`relay`] → close and log. Every refusal on the way has one code in the
//! [`refusal`] contract. Below them all, [`util`] holds the shared helpers; beside
//! them, [`config`] turns the file and flags into one validated configuration.
//!
//! Operators watch and steer a running proxy through [`ops`] (health, readiness,
//! metrics, listing and killing sessions) and revoke tickets or users with a
//! [`denylist`] file; see docs/operations.md. SIGHUP re-reads each part of the
//! configuration on its own ([`reload`]). The [`demo`] is a separate room: the
//! production path never names it.
//!
//! An engine written in Rust signs tickets with [`ticket::Signer`]:
//!
//! ```no_run
//! use consolegate::{keys, ticket::{Claims, Signer}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let signer = Signer::new(keys::load_signing_key(std::path::Path::new("engine.key"))?);
//! let exp = consolegate::unix_now() + 120;
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

pub mod admission;
pub mod backend;
pub mod clientaddr;
pub mod config;
pub mod demo;
pub mod denylist;
pub mod front;
pub mod keys;
pub mod legacy;
pub mod limits;
pub mod ops;
pub mod policy;
pub mod recording;
pub mod refusal;
pub mod relay;
pub mod reload;
pub mod rfb;
pub mod session;
pub mod tap;
pub mod ticket;
pub mod util;

pub use keys::KeySet;
pub use ticket::{Claims, Signer, TicketError, Verified, VerifyOptions};
pub use util::time::unix_now;

//! RFB (the VNC protocol, RFC 6143) as it passes through the proxy. The relay itself
//! never parses RFB; sessions that need to know what the bytes mean (view-only
//! tickets, recorded sessions) follow the protocol with the pure parsers here.
//!
//! - [`handshake`]: which browser bytes are the version, the security choice, the VNC
//!   authentication response and ClientInit, and where client messages begin.
//! - [`view`]: the client messages a `view` ticket's browser may send.

pub mod handshake;
pub mod view;

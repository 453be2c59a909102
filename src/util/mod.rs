//! Small helpers several rooms share, kept below all of them so that imports flow one
//! way: the clock, percent-decoding, plain HTTP answers, the accept loop and the
//! escaping of strangers' strings for logs and terminals. Nothing here knows about
//! tickets, sessions or the proxy.

pub mod accept;
pub mod http;
pub mod percent;
pub mod text;
pub mod time;

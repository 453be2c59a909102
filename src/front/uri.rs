//! Where the ticket is: a `ticket.<ticket>` WebSocket subprotocol (the console page's
//! form, which puts it in no URL: see `handshake.rs`), or the request's URL: the
//! `token` query parameter (websockify and nova style), else the last path segment
//! (oVirt style); an oVirt engine ticket, when those are on, is the whole path. The
//! path `/console` (the contract's path for the subprotocol form), like `/`, carries no
//! ticket. A request carrying a ticket in both places is refused: which one would the
//! proxy check, and which one would the balancer have routed by?

use crate::legacy::Legacy;
use crate::refusal::{Code, Refusal};
use crate::util::percent::percent_decode;

/// The last path segment of the subprotocol form's URL, which is not a ticket.
pub const TICKETLESS_SEGMENT: &str = "console";

/// The ticket of a WebSocket request: the one offered as a subprotocol, or the one in
/// its URL (legacy forms first); refused when it carries both.
pub fn ticket_in(
    uri: &hyper::Uri,
    protocol: Option<&str>,
    legacy: &Legacy,
) -> Result<Option<String>, Refusal> {
    // Two `token` parameters: a balancer may route by one and the proxy check the
    // other (see `handshake.rs` on why the proxy reads what a balancer reads).
    let tokens = uri.query().map_or(0, |q| {
        q.split('&').filter(|p| p.starts_with("token=")).count()
    });
    if tokens > 1 {
        return Err(Refusal::new(
            Code::AmbiguousTicket,
            "more than one token parameter in the URL; send one ticket",
        ));
    }
    let in_url = legacy.ticket_from_uri(uri).or_else(|| ticket_from_uri(uri));
    match (in_url, protocol) {
        (Some(_), Some(_)) => Err(Refusal::new(
            Code::AmbiguousTicket,
            "a ticket in the URL and another in the ticket.<ticket> subprotocol; send one",
        )),
        (in_url, protocol) => Ok(in_url.or_else(|| protocol.map(str::to_string))),
    }
}

/// The ticket from `?token=` or, failing that, the last path segment (but
/// `/console`).
pub fn ticket_from_uri(uri: &hyper::Uri) -> Option<String> {
    if let Some(q) = uri.query() {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("token=") {
                let v = percent_decode(v)?;
                return String::from_utf8(v).ok().filter(|s| !s.is_empty());
            }
        }
    }
    let last = uri.path().rsplit('/').next()?;
    let v = String::from_utf8(percent_decode(last)?).ok()?;
    (!v.is_empty() && v != TICKETLESS_SEGMENT).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_comes_from_the_query_or_the_last_path_segment() {
        let t = |s: &str| ticket_from_uri(&s.parse().unwrap());
        assert_eq!(t("/abc.def.ghi"), Some("abc.def.ghi".into()));
        assert_eq!(t("/some/prefix/abc.def.ghi"), Some("abc.def.ghi".into()));
        assert_eq!(
            t("/websockify?token=abc.def.ghi"),
            Some("abc.def.ghi".into())
        );
        assert_eq!(t("/websockify?x=1&token=a%2Eb"), Some("a.b".into()));
        assert_eq!(t("/"), None);
        assert_eq!(t("/x/"), None);
        assert_eq!(t("/console"), None);
        assert_eq!(t("/consoles/console"), None);
    }

    #[test]
    fn a_ticket_in_the_url_and_in_the_subprotocol_is_refused() {
        let legacy = Legacy::default();
        let t = |uri: &str, p: Option<&str>| ticket_in(&uri.parse().unwrap(), p, &legacy);
        assert_eq!(
            t("/console", Some("a.b.c")).unwrap().as_deref(),
            Some("a.b.c")
        );
        assert_eq!(t("/", Some("a.b.c")).unwrap().as_deref(), Some("a.b.c"));
        assert_eq!(t("/a.b.c", None).unwrap().as_deref(), Some("a.b.c"));
        assert_eq!(t("/console", None).unwrap(), None);
        let e = t("/websockify?token=a.b.c&token=d.e.f", None).unwrap_err();
        assert_eq!(e.code, Code::AmbiguousTicket);
        for uri in ["/d.e.f", "/websockify?token=d.e.f"] {
            let e = t(uri, Some("a.b.c")).unwrap_err();
            assert_eq!(e.code, Code::AmbiguousTicket, "{uri}");
            assert!(!e.reason.contains("a.b.c") && !e.reason.contains("d.e.f"));
        }
    }
}

//! Where the ticket is in the request's URL: the `token` query parameter
//! (websockify and nova style), else the last path segment (oVirt style); an oVirt
//! engine ticket, when those are on, is the whole path.

use crate::legacy::Legacy;
use crate::util::percent::percent_decode;

/// The ticket of a WebSocket request, legacy forms first.
pub fn ticket_in(uri: &hyper::Uri, legacy: &Legacy) -> Option<String> {
    legacy.ticket_from_uri(uri).or_else(|| ticket_from_uri(uri))
}

/// The ticket from `?token=` or, failing that, the last path segment.
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
    (!v.is_empty()).then_some(v)
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
    }
}

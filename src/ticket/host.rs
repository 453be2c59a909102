//! The `host` claim's grammar: an IP literal or an LDH DNS name, and nothing that a
//! resolver, a URL parser or the target policy could read as something else.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest DNS name in the `host` claim (RFC 1035 presentation form, no trailing dot).
pub const MAX_HOST_LEN: usize = 253;

/// Why a `host` claim is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProblem {
    Empty,
    TooLong,
    NotAscii,
    Whitespace,
    Brackets,
    HasPort,
    BadIpv6,
    EmptyLabel,
    LabelTooLong,
    BadCharacter,
    HyphenAtLabelEdge,
    NumericName,
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostProblem::Empty => "it is empty",
            HostProblem::TooLong => "it is longer than 253 characters",
            HostProblem::NotAscii => {
                "it contains non-ASCII characters (write an international name in its xn-- form)"
            }
            HostProblem::Whitespace => "it contains whitespace or control characters",
            HostProblem::Brackets => "it has brackets (write an IPv6 address without [ ])",
            HostProblem::HasPort => "it contains a port (put the port in the port claim)",
            HostProblem::BadIpv6 => "it has a colon but is not an IPv6 address",
            HostProblem::EmptyLabel => "it has an empty label (a leading, trailing or double dot)",
            HostProblem::LabelTooLong => "a label is longer than 63 characters",
            HostProblem::BadCharacter => {
                "it has a character other than letters, digits, hyphens and dots"
            }
            HostProblem::HyphenAtLabelEdge => "a label starts or ends with a hyphen",
            HostProblem::NumericName => {
                "it looks like an IPv4 address but is not one (write four decimal octets)"
            }
        })
    }
}

/// The `host` grammar: an IPv4 literal in dotted-quad form, a bare IPv6 literal (no
/// brackets, no zone), or a DNS name of LDH labels (letters, digits, hyphens; 1–63
/// characters each, no hyphen at either end; at most 253 characters; no trailing
/// dot). A name whose last label is numeric (`1.2.3`, `0x7f.1`, `2130706433`) is
/// refused: the C resolver reads those as IPv4 addresses in inet_aton's shorthand,
/// so the target policy would see one host and the connection reach another.
pub(super) fn host_problem(host: &str) -> Option<HostProblem> {
    if host.is_empty() {
        return Some(HostProblem::Empty);
    }
    if !host.is_ascii() {
        return Some(HostProblem::NotAscii);
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Some(HostProblem::Whitespace);
    }
    if host.contains(['[', ']']) {
        return Some(HostProblem::Brackets);
    }
    if host.len() > MAX_HOST_LEN {
        return Some(HostProblem::TooLong);
    }
    if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return None;
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        let one_colon = !name.contains(':');
        let numeric_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        return Some(if one_colon && numeric_port {
            HostProblem::HasPort
        } else {
            HostProblem::BadIpv6
        });
    }
    let mut last = "";
    for label in host.split('.') {
        if label.is_empty() {
            return Some(HostProblem::EmptyLabel);
        }
        if label.len() > 63 {
            return Some(HostProblem::LabelTooLong);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some(HostProblem::BadCharacter);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(HostProblem::HyphenAtLabelEdge);
        }
        last = label;
    }
    if looks_numeric(last) {
        return Some(HostProblem::NumericName);
    }
    None
}

/// A label inet_aton would read as a number: decimal, octal or `0x` hex.
fn looks_numeric(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::TicketError;
    use super::*;

    #[test]
    fn hosts_that_are_ip_literals_or_ldh_names_are_accepted() {
        let label63 = "a".repeat(63);
        let name253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(name253.len(), 253);
        for host in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "2001:db8::5",
            "::ffff:10.0.0.1",
            "localhost",
            "console-1.example.com",
            "xn--bcher-kva.example",
            "HOST.Example",
            "123.example",
            label63.as_str(),
            name253.as_str(),
        ] {
            assert_eq!(host_problem(host), None, "{host}");
        }
    }

    #[test]
    fn hosts_outside_the_grammar_are_refused_each_for_its_reason() {
        use HostProblem::*;
        let long_label = "a".repeat(64);
        let long_name = format!("{}.example", "a.".repeat(125));
        assert!(long_name.len() > 253);
        for (host, problem) in [
            ("", Empty),
            ("bücher.example", NotAscii),
            ("ｅxample.com", NotAscii),
            ("10.0.0.1:22", HasPort),
            ("console.example:5900", HasPort),
            ("[::1]", Brackets),
            ("[::1]:5900", Brackets),
            (" 10.0.0.1", Whitespace),
            ("a b.example", Whitespace),
            ("a.example\n", Whitespace),
            ("a\0.example", Whitespace),
            ("fe80::1%eth0", BadIpv6),
            ("1:2:3", BadIpv6),
            ("a..example", EmptyLabel),
            (".example", EmptyLabel),
            ("example.", EmptyLabel),
            (long_label.as_str(), LabelTooLong),
            (long_name.as_str(), TooLong),
            ("a_b.example", BadCharacter),
            ("a/b", BadCharacter),
            ("evil.example#", BadCharacter),
            ("user@host.example", BadCharacter),
            ("-a.example", HyphenAtLabelEdge),
            ("a-.example", HyphenAtLabelEdge),
            ("1.2.3", NumericName),
            ("0x7f.1", NumericName),
            ("2130706433", NumericName),
            ("10.0.0.256", NumericName),
            ("010.0.0.1", NumericName),
        ] {
            assert_eq!(host_problem(host), Some(problem), "{host:?}");
        }
    }

    #[test]
    fn a_unicode_host_is_refused_with_a_readable_reason() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":"bücher.example","port":5900,"exp":{NOW}}}"#
        )));
        assert_eq!(err.code(), "bad_host");
        assert_eq!(
            err.to_string(),
            "ticket host \"b\\u{fc}cher.example\" is not usable: it contains non-ASCII \
             characters (write an international name in its xn-- form)"
        );
    }

    #[test]
    fn a_host_with_a_port_inside_is_refused() {
        let err = refused(&forge_claims(&format!(
            r#"{{"host":"10.0.0.1:22","port":5900,"exp":{NOW}}}"#
        )));
        assert_eq!(
            err,
            TicketError::BadHost {
                host: "10.0.0.1:22".into(),
                problem: HostProblem::HasPort
            }
        );
        assert!(err.to_string().contains("put the port in the port claim"));
    }
}

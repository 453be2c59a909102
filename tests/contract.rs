//! The refusal contract between the proxy and its readers: the codes, statuses, close
//! codes and `Retry-After` values of `src/refusal.rs` against `docs/refusal-codes.md`
//! and against the console page's `REFUSAL_SENTENCES` (`web/console.js`), so that
//! neither the docs nor the page can name a code the proxy does not send.

use consolegate::refusal::Code;
use consolegate::relay::CloseReason;
use consolegate::rfb::handshake::HandshakeError;
use consolegate::rfb::view::ViewError;
use consolegate::tap::{ObserverError, TapError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of the markdown table under `heading` (cells trimmed, header and
/// separator rows left out).
fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} section"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_docs_table_lists_exactly_the_codes_the_proxy_sends() {
    let doc = read("docs/refusal-codes.md");
    let mut documented = BTreeMap::new();
    for row in table(&doc, "## Refusal codes") {
        let [code, status, close, retry, _when] = &row[..] else {
            panic!("a row of five cells expected: {row:?}");
        };
        let code = code.trim_matches('`').to_string();
        let retry = (retry != "–").then(|| retry.clone());
        let previous = documented.insert(code.clone(), (status.clone(), close.clone(), retry));
        assert!(previous.is_none(), "{code} is documented twice");
    }
    let sent: BTreeMap<String, (String, String, Option<String>)> = Code::ALL
        .iter()
        .map(|c| {
            (
                c.as_str().to_string(),
                (
                    c.status().to_string(),
                    c.close_code().to_string(),
                    c.retry_after().map(|s| s.to_string()),
                ),
            )
        })
        .collect();
    for (code, row) in &sent {
        assert_eq!(
            documented.get(code),
            Some(row),
            "docs/refusal-codes.md: {code} should read (status, close, Retry-After) {row:?}"
        );
    }
    for code in documented.keys() {
        assert!(
            sent.contains_key(code),
            "docs/refusal-codes.md documents {code}, which the proxy never sends"
        );
    }
}

/// The close code the relay sends for each way a session ends; `None` for the ends
/// where nothing can be sent. A new `CloseReason` fails to compile here until it is
/// added (and documented).
fn relay_close_code(reason: &CloseReason) -> Option<u16> {
    match reason {
        CloseReason::ClientVanished | CloseReason::ClientError(_) => None,
        // The browser's own code is echoed; it is not the proxy's to document.
        CloseReason::ClientClosed { .. } => None,
        CloseReason::TargetClosed
        | CloseReason::TextFrame
        | CloseReason::ProtocolError(_)
        | CloseReason::MessageTooBig { .. }
        | CloseReason::IdleTimeout
        | CloseReason::MaxDuration
        | CloseReason::Drain
        | CloseReason::Killed(_)
        | CloseReason::TargetError(_)
        | CloseReason::PingTimeout
        // A layer between the relay and the console server (the tap) ending the
        // session with its own code: listed below from the tap's own errors.
        | CloseReason::Ended { .. } => Some(reason.code()),
    }
}

/// The ends of a session the tap makes (view-only, the RFB handshake it follows,
/// the recording's observer), with the close codes the tap gives them.
fn tap_ends() -> Vec<CloseReason> {
    [
        TapError::Handshake(HandshakeError::OutOfTurn),
        TapError::View(ViewError::UnknownMessage(99)),
        TapError::Observer(ObserverError("recording could not keep up".into())),
    ]
    .into_iter()
    .map(|e| CloseReason::Ended {
        code: e.close_code(),
        reason: e.to_string(),
    })
    .collect()
}

#[test]
fn the_docs_list_every_close_code_a_session_can_end_with() {
    let doc = read("docs/refusal-codes.md");
    let documented: BTreeSet<u16> = table(&doc, "## Close codes of a session")
        .iter()
        .map(|row| row[0].parse().unwrap_or_else(|_| panic!("{row:?}")))
        .collect();
    let relay: BTreeSet<u16> = [
        CloseReason::TargetClosed,
        CloseReason::ClientVanished,
        CloseReason::TextFrame,
        CloseReason::ProtocolError(String::new()),
        CloseReason::MessageTooBig { limit: 1 },
        CloseReason::IdleTimeout,
        CloseReason::MaxDuration,
        CloseReason::Drain,
        CloseReason::Killed(String::new()),
        CloseReason::TargetError(String::new()),
        CloseReason::ClientError(String::new()),
        CloseReason::PingTimeout,
    ]
    .into_iter()
    .chain(tap_ends())
    .filter_map(|r| relay_close_code(&r))
    .collect();
    for code in &relay {
        assert!(
            documented.contains(code),
            "docs/refusal-codes.md: the relay ends sessions with {code}, not documented"
        );
    }
    let refusal_closes: BTreeSet<u16> = Code::ALL.iter().map(|c| c.close_code()).collect();
    for code in &documented {
        assert!(
            relay.contains(code) || refusal_closes.contains(code),
            "docs/refusal-codes.md documents close code {code}, which the proxy never sends"
        );
        assert!(!matches!(code, 1005 | 1006 | 1015), "{code} is never sent");
    }
}

/// The keys of `const REFUSAL_SENTENCES = { code: '…', … };` in the console page.
fn page_codes() -> BTreeSet<String> {
    let js = read("web/console.js");
    let start = js
        .find("const REFUSAL_SENTENCES = {")
        .expect("web/console.js keeps its code → sentence map in REFUSAL_SENTENCES");
    let body = &js[start..];
    let body = &body[body.find('{').unwrap_or(0) + 1..body.find("};").unwrap_or(body.len())];
    let without_comments: String = body
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(',')
        .filter_map(|entry| entry.split_once(':'))
        .map(|(key, _)| {
            key.trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .to_string()
        })
        .collect()
}

#[test]
fn the_console_page_handles_only_codes_the_proxy_sends() {
    let page = page_codes();
    assert!(page.len() >= 10, "parsed too few codes: {page:?}");
    let sent: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    for code in &page {
        assert!(
            sent.contains(code.as_str()),
            "web/console.js has a sentence for {code:?}, which the proxy never sends"
        );
        assert_ne!(
            code, "network",
            "the page's own code is handled outside the map"
        );
    }
}

#[test]
fn the_readme_links_the_full_table() {
    let readme = read("README.md");
    assert!(
        readme.contains("(docs/refusal-codes.md)"),
        "README.md links docs/refusal-codes.md from its refusal and close codes section"
    );
}

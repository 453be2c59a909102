//! Strangers' strings made safe for a terminal and for line-based logs: one escaping
//! rule ([`escape`]) used by the text log format ([`TextFields`]), the `sessions`
//! table and the recording reports.
//!
//! Much of what the proxy logs or prints comes from outside: a browser's close reason,
//! a ticket's `sub` or `jti`, a token file's name, a refusal reason echoing a ticket's
//! `kid`. A newline in one of them would start a forged log line (`…\n2099-… INFO
//! session ended … sub=admin`), and an ESC or a C1 control would drive the terminal
//! of the operator reading it. The JSON log format is safe by construction (the
//! serializer escapes); the text format is not, because tracing-subscriber writes
//! `%value` fields and the message as they are (it only escapes ANSI sequences in the
//! message). So the text format's fields go through [`TextFields`], which escapes
//! every field of every event, whatever its log site: a new log line cannot forget.
//!
//! Escaped: the C0 and C1 control characters and DEL (`char::is_control`), the line
//! and paragraph separators U+2028 and U+2029, and the bidirectional overrides and
//! isolates (U+202A–U+202E, U+2066–U+2069) that make text read differently than it
//! is stored. `\n`, `\r` and `\t` read as such, the rest as `\u{…}`, the same
//! spelling Rust's `{:?}` uses, so string fields (which tracing already writes with
//! `{:?}`) and escaped ones look alike.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Whether `c` must not reach a terminal or a log line as it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with control characters, line separators and bidirectional controls escaped
/// (see the module's doc); borrowed when there is nothing to escape, as is almost
/// always the case.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `value` quoted and escaped as Rust's `{:?}` writes a string (which escapes quotes,
/// backslashes and control characters), then through [`escape`] for anything `{:?}`
/// deems printable that this module does not.
fn quoted(value: &str) -> String {
    escape(&format!("{value:?}")).into_owned()
}

/// A field value as the text format writes it: bare when it is one plain word (an
/// address, a number, a code), otherwise [`quoted`]. So a value holding spaces,
/// quotes or `=` (a close reason, an error) can neither end the line nor pass for
/// another field of it.
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '=' | '\\') || needs_escape(c));
    if plain {
        out.push_str(value);
    } else {
        out.push_str(&quoted(value));
    }
}

/// The text log format's field formatter: tracing-subscriber's default layout
/// (`message field=value …`, string fields quoted), with every value escaped and
/// quoted as [`push_value`] says and the message escaped. Install with
/// `tracing_subscriber::fmt().fmt_fields(TextFields)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = FieldVisitor {
            line: String::new(),
        };
        fields.record(&mut visitor);
        writer.write_str(&visitor.line)
    }
}

/// Collects one event's or span's fields as text.
struct FieldVisitor {
    line: String,
}

impl FieldVisitor {
    fn separate(&mut self) {
        if !self.line.is_empty() {
            self.line.push(' ');
        }
    }

    fn field(&mut self, field: &Field, value: &str, always_quote: bool) {
        let name = field.name();
        // What the `log` crate's records carry; tracing-subscriber's own formatter
        // leaves these out too.
        if name.starts_with("log.") {
            return;
        }
        self.separate();
        if name == "message" {
            self.line.push_str(&escape(value));
            return;
        }
        self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.line.push('=');
        if always_quote {
            self.line.push_str(&quoted(value));
        } else {
            push_value(&mut self.line, value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Strings keep the default formatter's quotes (`sub="alice"`), except the
        // message, which is text.
        let quote = field.name() != "message";
        self.field(field, value, quote);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.field(field, &text, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn control_characters_separators_and_bidi_controls_are_escaped() {
        assert!(matches!(escape("alice@example"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(
            escape("\u{1b}[2J\u{7}\u{7f}\u{9b}"),
            "\\u{1b}[2J\\u{7}\\u{7f}\\u{9b}"
        );
        assert_eq!(
            escape("x\u{2028}y\u{202e}z\u{2066}"),
            "x\\u{2028}y\\u{202e}z\\u{2066}"
        );
        assert_eq!(escape("é 漢字 🙂"), "é 漢字 🙂");
        let mut v = String::new();
        push_value(&mut v, "127.0.0.1:5900");
        v.push(' ');
        push_value(&mut v, "bye sub=admin \"x\"\n");
        v.push(' ');
        push_value(&mut v, "");
        assert_eq!(v, r#"127.0.0.1:5900 "bye sub=admin \"x\"\n" """#);
    }

    /// A subscriber writing text lines into a buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_event_with_a_newline_in_every_kind_of_field_stays_one_line() {
        let buf = Buffer::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(TextFields)
            .with_ansi(false)
            .without_time()
            .with_writer(move || sink.clone())
            .finish();
        let forged = "x\n2099-01-01T00:00:00Z  INFO consolegate: forged sub=admin\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = %forged);
            let _g = span.enter();
            tracing::info!(
                display = %forged,
                debug = ?forged,
                string = forged,
                error = &std::io::Error::other(forged) as &dyn std::error::Error,
                number = 7,
                addr = %"127.0.0.1:5900",
                "message {forged}"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("number=7 addr=127.0.0.1:5900"), "{text}");
        assert!(text.contains(r#"string="x\n2099"#), "{text}");
        assert!(text.contains(r#"display="x\n2099"#), "{text}");
        assert!(text.contains("message x\\n2099"), "{text}");
        assert!(text.contains("conn{peer=\"x\\n2099"), "{text}");
    }
}

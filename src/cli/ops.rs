//! `consolegate sessions` and `kill`: a running proxy's live sessions, through its
//! admin listener.

use anyhow::{Context, Result};
use consolegate::ops::admin;
use consolegate::ops::client;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the admin listener is and how to authenticate to it.
#[derive(clap::Args)]
struct AdminArgs {
    /// The proxy's admin listener [admin.listen].
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:6101")]
    admin: String,
    /// File holding the admin bearer token [admin.token_file].
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/consolegate/admin.token"
    )]
    token_file: PathBuf,
}

#[derive(clap::Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Print the JSON array the admin API returns instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "jti", "sub"])))]
pub struct KillArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The session with this id (from `consolegate sessions`).
    #[arg(long)]
    id: Option<u64>,
    /// Every session opened with this ticket id.
    #[arg(long)]
    jti: Option<String>,
    /// Every session of this user.
    #[arg(long)]
    sub: Option<String>,
    /// Close reason shown to the user (default: "session ended by an operator").
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

/// One admin API call for the `sessions` and `kill` subcommands; a non-200 answer is
/// an error carrying the proxy's one-line reason.
fn admin_call(
    args: &AdminArgs,
    method: hyper::Method,
    path: &str,
    body: Option<String>,
) -> Result<String> {
    let token = admin::read_token(&args.token_file)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = rt.block_on(client::request(
        &args.admin,
        method,
        path,
        Some(&token),
        body,
    ))?;
    if answer.status != hyper::StatusCode::OK {
        anyhow::bail!(
            "the proxy answered {}: {}",
            answer.status,
            answer.body.trim()
        );
    }
    Ok(answer.body)
}

pub fn sessions(args: SessionsArgs) -> Result<ExitCode> {
    let body = admin_call(&args.admin, hyper::Method::GET, "/sessions", None)?;
    if args.json {
        println!("{}", body.trim());
        return Ok(ExitCode::SUCCESS);
    }
    let list: Vec<admin::SessionView> =
        serde_json::from_str(&body).context("the proxy's session list is not the expected JSON")?;
    print!("{}", session_table(&list));
    Ok(ExitCode::SUCCESS)
}

/// The session list as an aligned table, one line a session, newest last. Every
/// cell is escaped: `sub` and `jti` come from tickets, and a control character in
/// one must not drive the operator's terminal or break the table.
fn session_table(list: &[admin::SessionView]) -> String {
    let mut rows = vec![[
        "ID", "CLIENT", "TARGET", "SUB", "JTI", "STARTED", "UP", "DOWN",
    ]
    .map(String::from)];
    for s in list {
        rows.push([
            s.id.to_string(),
            s.client.to_string(),
            s.target.to_string(),
            s.sub.clone().unwrap_or_else(|| "-".into()),
            s.jti.clone().unwrap_or_else(|| "-".into()),
            s.started.clone(),
            human_bytes(s.bytes_up),
            human_bytes(s.bytes_down),
        ]);
    }
    for row in rows.iter_mut() {
        for cell in row.iter_mut() {
            if let std::borrow::Cow::Owned(escaped) = consolegate::util::text::escape(cell) {
                *cell = escaped;
            }
        }
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if list.is_empty() {
        out.push_str("(no live sessions)\n");
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn kill(args: KillArgs) -> Result<ExitCode> {
    let req = admin::KillRequest {
        id: args.id,
        jti: args.jti,
        sub: args.sub,
        reason: args.reason,
    };
    let body = serde_json::to_string(&req)?;
    let answer = admin_call(
        &args.admin,
        hyper::Method::POST,
        "/sessions/kill",
        Some(body),
    )?;
    let killed = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["killed"].as_u64())
        .context("the proxy's kill answer is not the expected JSON")?;
    println!("ended {killed} session(s)");
    // A kill that matched nothing is worth noticing in a script (a typo in the id).
    Ok(if killed == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, session_table};
    use consolegate::ops::admin::SessionView;

    #[test]
    fn the_session_table_aligns_columns_and_says_when_it_is_empty() {
        assert_eq!(
            session_table(&[]),
            "ID  CLIENT  TARGET  SUB  JTI  STARTED  UP  DOWN\n(no live sessions)\n"
        );
        let s = SessionView {
            id: 7,
            client: "127.0.0.1:40000".parse().unwrap(),
            target: "127.0.0.1:5901".parse().unwrap(),
            sub: Some("alice".into()),
            jti: None,
            kid: "k".into(),
            started: "2025-01-02T03:04:05Z".into(),
            started_unix: 1_735_787_045,
            bytes_up: 10,
            bytes_down: 3 << 20,
        };
        let t = session_table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("SUB"), lines[1].find("alice"));
        assert!(lines[1].ends_with("10 B  3.0 MiB"), "{t}");
        assert!(lines[1].contains(" - "), "{t}");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn the_session_table_escapes_control_characters_from_tickets() {
        let s = SessionView {
            id: 1,
            client: "127.0.0.1:40000".parse().unwrap(),
            target: "127.0.0.1:5901".parse().unwrap(),
            sub: Some("eve\n2   127.0.0.1:1  fake\u{1b}[2J\u{9b}31m".into()),
            jti: Some("j\r\u{7}\u{202e}".into()),
            kid: "k".into(),
            started: "2025-01-02T03:04:05Z\u{1b}]0;x\u{7}".into(),
            started_unix: 0,
            bytes_up: 0,
            bytes_down: 0,
        };
        let t = session_table(&[s]);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(
            t.contains("eve\\n2   127.0.0.1:1  fake\\u{1b}[2J\\u{9b}31m"),
            "{t}"
        );
        assert!(t.contains("j\\r\\u{7}\\u{202e}"), "{t}");
    }
}

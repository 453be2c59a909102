//! Every file and directory a configuration names, with the option that names it,
//! and which of them are not there: `serve --check-config` lists them all (a proxy
//! whose console page or noVNC directory is missing starts, but serves nothing a
//! browser can use), and `serve` warns about each at start.
//!
//! Only existence and kind are checked here, and for the browser clients one file
//! the console page loads from each (so `web.novnc_dir` pointing at the wrong level
//! of a package is caught too). Whether a key or certificate parses is for the parts
//! that load them; whether the recording directory can be created, for the recorder.

use super::Config;
use std::fmt;
use std::path::{Path, PathBuf};

/// What must be at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A regular file (or a link to one).
    File,
    /// A directory.
    Dir,
    /// A file or a directory (`tickets.trust`, `legacy.token_source`).
    FileOrDir,
    /// A directory holding these files (relative to it): a browser client.
    DirWith(&'static [&'static str]),
    /// A directory, or a missing one whose parent exists (the recorder creates it).
    DirOrCreatable,
}

/// One path of the configuration and the option that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPath {
    /// The file key (`web.novnc_dir`); its flag has the same meaning.
    pub option: &'static str,
    pub path: PathBuf,
    pub expect: Expect,
}

/// A path that is not what its option needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProblem {
    pub option: &'static str,
    pub path: PathBuf,
    /// What is wrong, e.g. "no such directory".
    pub what: String,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.option, self.path.display(), self.what)?;
        if let Some(hint) = hint(self.option) {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// What fixes a missing browser client.
fn hint(option: &str) -> Option<&'static str> {
    Some(match option {
        "web.dir" => "the console page: /usr/share/consolegate/web from the package, web/ in a source tree",
        "web.novnc_dir" => "noVNC: `npm ci --prefix web` in a source tree, or Debian's novnc package at /usr/share/novnc",
        "web.spice_dir" => "spice-html5, for SPICE consoles: `npm ci --prefix web`, or Debian's spice-html5 at /usr/share/spice-html5",
        "web.xterm_dir" => "xterm.js, for serial consoles: `npm ci --prefix web`",
        "web.asciinema_dir" => "asciinema-player, for the recording player: `npm ci --prefix web`",
        _ => return None,
    })
}

/// The file each browser client's directory must hold: what the console page (and
/// the recording player) load first from it.
const CONSOLE_PAGE: &[&str] = &["console.html"];
const NOVNC: &[&str] = &["core/rfb.js"];
const SPICE: &[&str] = &["main.js"];
const XTERM: &[&str] = &["xterm/lib/xterm.mjs", "addon-fit/lib/addon-fit.mjs"];
const ASCIINEMA: &[&str] = &["asciinema-player.min.js"];

impl Config {
    /// Every file and directory this configuration names, in the file's order.
    pub fn paths(&self) -> Vec<NamedPath> {
        let mut out = Vec::new();
        let mut add = |option, path: &Path, expect| {
            out.push(NamedPath {
                option,
                path: path.to_path_buf(),
                expect,
            })
        };
        if let Some(tls) = &self.tls {
            add("tls.cert", &tls.cert, Expect::File);
            add("tls.key", &tls.key, Expect::File);
        }
        for t in &self.tickets.trust {
            add("tickets.trust", t, Expect::FileOrDir);
        }
        if let Some(d) = &self.tickets.deny_list {
            add("tickets.deny_list", d, Expect::File);
        }
        let web = &self.web;
        add("web.dir", &web.dir, Expect::DirWith(CONSOLE_PAGE));
        add("web.novnc_dir", &web.novnc_dir, Expect::DirWith(NOVNC));
        add("web.spice_dir", &web.spice_dir, Expect::DirWith(SPICE));
        add("web.xterm_dir", &web.xterm_dir, Expect::DirWith(XTERM));
        add(
            "web.asciinema_dir",
            &web.asciinema_dir,
            Expect::DirWith(ASCIINEMA),
        );
        if let Some(t) = &self.admin.token_file {
            add("admin.token_file", t, Expect::File);
        }
        if let Some(c) = &self.legacy.ovirt_certificate {
            add("legacy.ovirt_certificate", c, Expect::File);
        }
        if let Some(t) = &self.legacy.token_source {
            add("legacy.token_source", t, Expect::FileOrDir);
        }
        let b = &self.backend_tls;
        for (option, path) in [
            ("backend_tls.ca", &b.ca),
            ("backend_tls.client_cert", &b.client_cert),
            ("backend_tls.client_key", &b.client_key),
        ] {
            if let Some(p) = path {
                add(option, p, Expect::File);
            }
        }
        if let Some(r) = &self.recording {
            add("recording.dir", &r.dir, Expect::DirOrCreatable);
        }
        out
    }

    /// The paths that are missing or of the wrong kind, each once, in the file's order.
    pub fn path_problems(&self) -> Vec<PathProblem> {
        self.paths()
            .into_iter()
            .filter_map(|p| {
                problem(&p.path, p.expect).map(|what| PathProblem {
                    option: p.option,
                    path: p.path,
                    what,
                })
            })
            .collect()
    }
}

/// What is wrong with `path` for `expect`, if anything.
fn problem(path: &Path, expect: Expect) -> Option<String> {
    // `metadata` follows links: a link to the right thing is the right thing.
    let meta = std::fs::metadata(path);
    let missing = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_string(),
        _ => format!("cannot be read: {e}"),
    };
    match expect {
        Expect::File => match meta {
            Ok(m) if m.is_file() => None,
            Ok(_) => Some("not a file".into()),
            Err(e) => Some(missing(&e)),
        },
        Expect::Dir => match meta {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some("not a directory".into()),
            Err(e) => Some(missing(&e)),
        },
        Expect::FileOrDir => meta.err().map(|e| missing(&e)),
        Expect::DirWith(files) => match meta {
            Ok(m) if m.is_dir() => {
                let absent: Vec<&str> = files
                    .iter()
                    .copied()
                    .filter(|f| !path.join(f).is_file())
                    .collect();
                (!absent.is_empty()).then(|| format!("has no {}", absent.join(" or ")))
            }
            Ok(_) => Some("not a directory".into()),
            Err(e) => Some(missing(&e)),
        },
        Expect::DirOrCreatable => match meta {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some("not a directory".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                match parent.map(std::fs::metadata) {
                    None | Some(Ok(_)) => None,
                    Some(Err(_)) => Some(
                        "not found, and neither is its parent directory, so it cannot be created"
                            .into(),
                    ),
                }
            }
            Err(e) => Some(missing(&e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeArgs;
    use std::fs;

    /// A source tree's `web/` with a stand-in for each browser client.
    fn web_tree(root: &Path) {
        for f in [
            "console.html",
            "node_modules/@novnc/novnc/core/rfb.js",
            "node_modules/@spice-project/spice-html5/src/main.js",
            "node_modules/@xterm/xterm/lib/xterm.mjs",
            "node_modules/@xterm/addon-fit/lib/addon-fit.mjs",
            "node_modules/asciinema-player/dist/bundle/asciinema-player.min.js",
        ] {
            let p = root.join("web").join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_its_directory_and_flags_to_the_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("etc");
        fs::create_dir(&conf).unwrap();
        let file = conf.join("consolegate.toml");
        fs::write(
            &file,
            "allow_plain = true\n[tickets]\ntrust = [\"keys\", \"/abs/keys\"]\n\
             deny_list = \"deny.list\"\n[web]\ndir = \"site\"\n\
             [recording]\ndir = \"../rec\"\n[admin]\ntoken_file = \"admin.token\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            xterm_dir: Some(PathBuf::from("xterm")),
            ..ServeArgs::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(
            c.tickets.trust,
            vec![conf.join("keys"), PathBuf::from("/abs/keys")]
        );
        assert_eq!(c.tickets.deny_list, Some(conf.join("deny.list")));
        assert_eq!(c.web.dir, conf.join("site"));
        assert_eq!(
            c.web.novnc_dir,
            conf.join("site/node_modules/@novnc/novnc"),
            "a client's default is under the web directory, wherever that is"
        );
        assert_eq!(
            c.web.xterm_dir,
            PathBuf::from("xterm"),
            "a flag stays as given"
        );
        assert_eq!(c.recording.unwrap().dir, conf.join("../rec"));
        assert_eq!(c.admin.token_file, Some(conf.join("admin.token")));
    }

    #[test]
    fn every_named_path_that_is_missing_is_a_problem_named_by_its_option() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        web_tree(root);
        fs::create_dir(root.join("keys")).unwrap();
        let file = root.join("c.toml");
        fs::write(
            &file,
            "allow_plain = true\n[tickets]\ntrust = [\"keys\"]\n[web]\ndir = \"web\"\n\
             [recording]\ndir = \"rec\"\n",
        )
        .unwrap();
        let args = |tweak: fn(&mut ServeArgs)| {
            let mut a = ServeArgs {
                config: Some(file.clone()),
                ..ServeArgs::default()
            };
            tweak(&mut a);
            Config::load(&a).unwrap()
        };
        let c = args(|_| {});
        assert_eq!(c.path_problems(), vec![], "{:?}", c.paths());
        assert!(c
            .paths()
            .iter()
            .any(|p| p.option == "recording.dir" && p.expect == Expect::DirOrCreatable));

        fs::remove_file(root.join("web/node_modules/@xterm/addon-fit/lib/addon-fit.mjs")).unwrap();
        let c = args(|a| {
            a.trust.push(PathBuf::from("/nonexistent/keys"));
            a.novnc_dir = Some(PathBuf::from("/nonexistent/novnc"));
            a.deny_list = Some(PathBuf::from("/nonexistent/deny.list"));
            a.recording_dir = Some(PathBuf::from("/nonexistent/deeper/rec"));
        });
        let problems: Vec<String> = c.path_problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with("tickets.trust /nonexistent/keys: not found"));
        assert!(problems[1].starts_with("tickets.deny_list /nonexistent/deny.list: not found"));
        assert!(problems[2].starts_with("web.novnc_dir /nonexistent/novnc: not found (noVNC"));
        assert!(
            problems[3].contains("web.xterm_dir")
                && problems[3].contains("has no addon-fit/lib/addon-fit.mjs"),
            "{}",
            problems[3]
        );
        assert!(problems[4]
            .starts_with("recording.dir /nonexistent/deeper/rec: not found, and neither"));
    }

    #[test]
    fn a_file_where_a_directory_belongs_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "").unwrap();
        assert_eq!(problem(&f, Expect::Dir).as_deref(), Some("not a directory"));
        assert_eq!(
            problem(&f, Expect::DirWith(NOVNC)).as_deref(),
            Some("not a directory")
        );
        assert_eq!(
            problem(dir.path(), Expect::File).as_deref(),
            Some("not a file")
        );
        assert_eq!(problem(&f, Expect::FileOrDir), None);
        assert_eq!(
            problem(&dir.path().join("new"), Expect::DirOrCreatable),
            None
        );
    }
}

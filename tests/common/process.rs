//! Child processes of a test (the `consolegate` binary, HAProxy, nginx): killed when
//! the test ends, however it ends; their stdout and stderr lines collected as they
//! come (JSON lines parsed once), and the last of them printed when the test fails.
//! Once [`Process::wait_exit`] returns, the log holds everything the child wrote: it
//! waits for the reader threads to reach the end of the pipes, so a test can count
//! log lines right after the exit.

use super::wait::wait_until;
use super::LIMIT;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a child wrote so far, line by line.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Lines>>);

#[derive(Default)]
pub struct Lines {
    /// Every line, as written.
    pub text: Vec<String>,
    /// The lines that are JSON (the proxy's `--log-format json`), parsed.
    pub events: Vec<serde_json::Value>,
}

impl Log {
    fn push(&self, line: String) {
        let mut l = self.lock();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v.is_object() {
                l.events.push(v);
            }
        }
        l.text.push(line);
    }

    pub fn lock(&self) -> MutexGuard<'_, Lines> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().text.clone()
    }

    /// Every JSON line so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.lock().events.clone()
    }

    /// How many JSON lines match `pred`.
    pub fn count(&self, pred: impl Fn(&serde_json::Value) -> bool) -> usize {
        self.lock().events.iter().filter(|v| pred(v)).count()
    }

    /// How many JSON lines have this `message`.
    pub fn messages(&self, message: &str) -> usize {
        self.count(|v| v["message"] == message)
    }
}

/// A child process and its output.
pub struct Process {
    pub name: String,
    /// Behind a mutex so that status checks work through a shared reference.
    child: Mutex<Child>,
    pub log: Log,
    /// The threads reading stdout and stderr into `log`; finished at end of file.
    readers: Vec<JoinHandle<()>>,
    /// A log file to show on failure besides stdout and stderr.
    pub log_file: Option<PathBuf>,
}

impl Process {
    /// Spawns `cmd` with stdin from /dev/null.
    pub fn spawn(name: &str, cmd: &mut Command) -> Process {
        Self::spawn_with_stdin(name, cmd, Stdio::null())
    }

    /// Spawns `cmd` with `stdin` (a socket the child inherits, for instance).
    pub fn spawn_with_stdin(name: &str, cmd: &mut Command, stdin: Stdio) -> Process {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {name} ({cmd:?}): {e} (tests/setup.sh installs it)")
            });
        let log = Log::default();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let readers = [stdout, stderr]
            .into_iter()
            .flatten()
            .map(|stream| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for line in std::io::BufReader::new(stream).lines() {
                        let Ok(line) = line else { break };
                        log.push(line);
                    }
                })
            })
            .collect();
        Process {
            name: name.to_string(),
            child: Mutex::new(child),
            log,
            readers,
            log_file: None,
        }
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// Fails the test, with the child's output, if it has exited.
    pub fn assert_running(&self) {
        if let Ok(Some(status)) = self.child().try_wait() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.name,
                self.log.lines().join("\n")
            );
        }
    }

    /// Waits for a JSON line matching `wanted` (failing if the child exits first) and
    /// returns it.
    pub async fn wait_for_event(
        &self,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut found = None;
        wait_until(&format!("{}: {what}", self.name), LIMIT, || {
            self.assert_running();
            found = self.log.lock().events.iter().find(|v| wanted(v)).cloned();
            found.is_some()
        })
        .await;
        found.expect("wait_until returned once it was found")
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) as `kill -<signal>` does.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {} ({pid})", self.name);
    }

    /// Waits for the child to exit and for its output to be read to the end, and
    /// returns how it exited. The exit alone is not enough before counting log lines:
    /// the reader threads may still be reading what the child wrote last.
    pub async fn wait_exit(&self, within: Duration) -> ExitStatus {
        let mut status = None;
        wait_until(&format!("{} to exit", self.name), within, || {
            status = self.child().try_wait().ok().flatten();
            status.is_some()
        })
        .await;
        wait_until(
            &format!("{}'s output to be read to the end", self.name),
            LIMIT,
            || self.readers.iter().all(JoinHandle::is_finished),
        )
        .await;
        status.expect("wait_until returned once it exited")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
        if std::thread::panicking() {
            let lines = self.log.lines();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("--- last output of {} ---\n{}", self.name, tail.join("\n"));
            if let Some(f) = &self.log_file {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(60)..];
                eprintln!("--- {} ---\n{}", f.display(), tail.join("\n"));
            }
        }
    }
}

//! `dozen up` as a child process, in a folder of its own, with every line
//! it prints: the whole system as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A file of the repository (`Procfile`, `dev.env`, `schedule`), as checked in.
pub fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A binary of the workspace, built beside the running test (`cargo test
/// --workspace` builds them all).
pub fn workspace_binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test's path");
    let path = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A base port for `dozen up --port-base`: eight process types a hundred
/// ports apart, two instances each, every port free now. Below the kernel's
/// ephemeral range (Linux's starts at 32768), so other tests' outgoing
/// connections cannot be holding them; `block` (0–4) gives each caller four
/// bases of its own, 1,000 ports apart, from 10,000 + 4,000 × `block`.
pub fn port_base(block: u16) -> u16 {
    assert!(block < 5, "blocks 0 to 4 fit below the ephemeral range");
    let first = (std::process::id() % 4) as u16;
    (0..4)
        .map(|k| 10_000 + (block * 4 + (first + k) % 4) * 1000)
        .find(|base| {
            (0..8u16).all(|i| {
                (0..2u16)
                    .all(|n| std::net::TcpListener::bind(("0.0.0.0", base + 100 * i + n)).is_ok())
            })
        })
        .expect("a free block of ports")
}

/// `dozen <args>` run in `folder`, with no variable of the test's own
/// leaking in, and its output piped.
pub fn command(binary: &Path, folder: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(folder)
        .env_remove("DATABASE_URL")
        // Run by cargo test, dozen would otherwise build the workspace first.
        .env_remove("CARGO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running `dozen up`, and every line it printed.
#[derive(Debug)]
pub struct DozenUp {
    pub child: Child,
    pub folder: tempfile::TempDir,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl DozenUp {
    /// `binary up <args>` in `folder` (which holds the Procfile and env
    /// file), with `vars` set.
    pub fn start(
        binary: &Path,
        folder: tempfile::TempDir,
        args: &[&str],
        vars: &[(&str, String)],
    ) -> Self {
        let mut child = command(binary, folder.path())
            .arg("up")
            .args(args)
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .spawn()
            .expect("dozen starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("piped"))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines
                        .lock()
                        .expect("not poisoned")
                        .push((Instant::now(), line));
                }
            });
        }
        Self {
            child,
            folder,
            lines,
        }
    }

    /// Every line printed so far that holds `text`.
    pub fn lines_with(&self, text: &str) -> Vec<(Instant, String)> {
        self.lines
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, l)| l.contains(text))
            .cloned()
            .collect()
    }

    /// Everything printed so far, for a failure's message.
    pub fn output(&self) -> String {
        let lines = self.lines.lock().expect("not poisoned");
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits up to `within` for `count` lines holding `text`.
    pub async fn wait_for_within(
        &self,
        text: &str,
        count: usize,
        within: Duration,
    ) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + within;
        loop {
            let found = self.lines_with(text);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {count} × {text:?}; got:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to 20 s for `count` lines holding `text`.
    pub async fn wait_for(&self, text: &str, count: usize) -> Vec<(Instant, String)> {
        self.wait_for_within(text, count, Duration::from_secs(20))
            .await
    }

    pub fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("still running") as i32;
        kill(Pid::from_raw(pid), signal).expect("dozen is signalled");
    }

    /// Waits (20 s at most) for dozen to exit; its exit code.
    pub async fn exit_code(&mut self) -> i32 {
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("dozen exits")
            .expect("dozen's status")
            .code()
            .unwrap_or(-1)
    }
}

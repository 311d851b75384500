//! Starting a child so that it can never outlive `dozen`.
//!
//! `dozen` starts each child as `dozen __exec <parent pid> -- <command…>`,
//! which asks the kernel to SIGKILL it when its parent dies
//! (`PR_SET_PDEATHSIG`, kept across `exec`), checks the parent is still there,
//! and replaces itself with the command. So even `kill -9 dozen` leaves no
//! child behind. Each child leads its own process group, so a signal reaches
//! whatever it started too.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::PathBuf;
use std::process::Stdio;

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};

pub const TRAMPOLINE: &str = "__exec";

/// In the child, before the command: the death signal, then `exec`.
pub fn trampoline(parent: u32, argv: &[String]) -> anyhow::Result<std::convert::Infallible> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        anyhow::bail!("dozen exited before its child started");
    }
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()?;
    let program = argv.first().ok_or_else(|| anyhow::anyhow!("no command"))?;
    let error = nix::unistd::execvp(program, &argv).unwrap_err();
    anyhow::bail!("cannot run {:?}: {error}", argv[0])
}

/// How a child is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// A process of the formation: its own process group, output piped to `dozen`.
    Supervised,
    /// A one-off process: the terminal's, with its input, output and Ctrl-C.
    Terminal,
}

/// Starts `argv` with exactly `env`.
pub fn spawn(
    argv: &[String],
    env: &BTreeMap<String, String>,
    attach: Attach,
) -> std::io::Result<Child> {
    // A rebuilt dozen replaces its file: Linux then names the running one "… (deleted)".
    // `DOZEN_EXE` names it where this code runs in another program (tests).
    let me: PathBuf = match std::env::var_os("DOZEN_EXE") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?,
    };
    let me = PathBuf::from(me.to_string_lossy().trim_end_matches(" (deleted)"));
    let mut command = Command::new(me);
    command
        .arg(TRAMPOLINE)
        .arg(std::process::id().to_string())
        .arg("--")
        .args(argv)
        .env_clear()
        .envs(env)
        .kill_on_drop(true);
    if attach == Attach::Supervised {
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }
    command.spawn()
}

/// Sends `signal` to the child's whole process group.
pub fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), signal);
    }
}

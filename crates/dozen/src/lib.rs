//! The `dozen` command: a Procfile's process types run with their formation,
//! ports and release phase (`dozen up`), and one-off admin processes with the
//! same environment (`dozen run`).

pub mod clock;
pub mod envfile;
pub mod exec;
pub mod export;
pub mod ops;
pub mod procfile;
pub mod schedule;
pub mod supervisor;

use std::collections::BTreeMap;

use exec::Attach;
use supervisor::Up;

/// `dozen run <type-or-service> <command…>`: the command with the
/// environment a process of that type (or service) gets, on the terminal;
/// its exit code.
pub async fn run_one_off(up: &Up, target: &str, command: &[String]) -> anyhow::Result<i32> {
    let service = up
        .procfile
        .get(target)
        .map(|t| Up::service_of(&t.argv))
        .unwrap_or_else(|| target.to_owned());
    let env = up.env_of_service(&service);
    // Ctrl-C reaches the child from the terminal; dozen waits for it to end.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut child = exec::spawn(command, &env, Attach::Terminal)?;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                use std::os::unix::process::ExitStatusExt;
                return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
            }
            _ = interrupt.recv() => {}
        }
    }
}

/// `-m web=2,worker=0`.
pub fn parse_formation(text: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut formation = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, count) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected type=count"))?;
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: the count must be a whole number"))?;
        formation.insert(name.trim().to_owned(), count);
    }
    Ok(formation)
}

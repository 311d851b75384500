//! `dozen dlq …` and `dozen status`: the bus's operations API on whatever
//! `BUS_URL` says, and the processes of a running `dozen up`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use dozen_bus::{Bus, BusUrl};
use serde::{Deserialize, Serialize};

/// What `dozen up` writes about its processes, for `dozen status`.
pub const STATUS_FILE: &str = ".dozen/processes.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub pid: Option<u32>,
    pub port: u16,
    pub restarts: u32,
}

pub fn write_status(processes: &BTreeMap<String, ProcessStatus>) {
    let path = Path::new(STATUS_FILE);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, serde_json::to_vec_pretty(processes)?)?;
            std::fs::rename(temporary, path)
        });
    if let Err(error) = written {
        eprintln!("dozen | cannot write {STATUS_FILE}: {error}");
    }
}

pub async fn connect(bus_url: Option<&String>) -> anyhow::Result<std::sync::Arc<dyn Bus>> {
    let url = bus_url.ok_or_else(|| {
        anyhow::anyhow!("BUS_URL is not set (in the environment or the env file)")
    })?;
    let url: BusUrl = url
        .parse()
        .map_err(|problem| anyhow::anyhow!("BUS_URL is invalid: {problem}"))?;
    Ok(dozen_bus::connect(&url).await?)
}

/// `dozen status`: each process of a running `dozen up`, then each subscription.
pub async fn status(bus: &dyn Bus, out: &mut impl Write) -> anyhow::Result<()> {
    match std::fs::read(STATUS_FILE) {
        Ok(bytes) => {
            let processes: BTreeMap<String, ProcessStatus> = serde_json::from_slice(&bytes)?;
            writeln!(
                out,
                "{:<16} {:>8} {:>6} {:>6} {:>9}",
                "process", "pid", "port", "ready", "restarts"
            )?;
            for (name, process) in processes {
                let running = process.pid.is_some_and(crate::supervisor::alive);
                let ready = running && crate::supervisor::ready(process.port).await;
                let pid = process
                    .pid
                    .filter(|_| running)
                    .map_or("-".into(), |p| p.to_string());
                let ready = if ready { "yes" } else { "no" };
                writeln!(
                    out,
                    "{name:<16} {pid:>8} {:>6} {ready:>6} {:>9}",
                    process.port, process.restarts
                )?;
            }
        }
        Err(_) => writeln!(
            out,
            "no dozen up is running here ({STATUS_FILE} is missing)"
        )?,
    }
    writeln!(out)?;
    subscriptions(bus, out).await
}

pub async fn subscriptions(bus: &dyn Bus, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<24} {:<16} {:>7} {:>9} {:>6}",
        "subscription", "topic", "depth", "in flight", "dead"
    )?;
    for s in bus.subscriptions().await? {
        writeln!(
            out,
            "{:<24} {:<16} {:>7} {:>9} {:>6}",
            s.name, s.topic, s.depth, s.in_flight, s.dead_letters
        )?;
    }
    Ok(())
}

/// `dozen dlq list <subscription>`: its dead letters, oldest first.
pub async fn list(
    bus: &dyn Bus,
    subscription: &str,
    limit: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<38} {:<16} {:>8} {:<26} last error",
        "event id", "type", "attempts", "dead since"
    )?;
    for dead in bus.dead_letters(subscription, limit).await? {
        writeln!(
            out,
            "{:<38} {:<16} {:>8} {:<26} {}",
            dead.event.id,
            dead.event.event_type,
            dead.attempts,
            dead.dead_at.as_deref().unwrap_or("-"),
            dead.last_error.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// `dozen dlq show <subscription> <event id>`: the dead letter, as JSON.
pub async fn show(
    bus: &dyn Bus,
    subscription: &str,
    event_id: &str,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let found = bus
        .dead_letters(subscription, usize::MAX)
        .await?
        .into_iter()
        .find(|d| d.event.id == event_id);
    match found {
        Some(dead) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&dead)?)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

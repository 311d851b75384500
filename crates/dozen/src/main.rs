use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dozen::envfile::{self, Vars};
use dozen::procfile::Procfile;
use dozen::supervisor::Up;

/// Runs Dozen's process types on one machine: the release phase, then every
/// process of the formation, restarted when they crash and drained on Ctrl-C.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The Procfile: `<type>: <command>` per line.
    #[arg(short = 'f', long, default_value = "Procfile", global = true)]
    procfile: PathBuf,
    /// The env file with the defaults; variables already set win over it.
    #[arg(short = 'e', long, default_value = "dev.env", global = true)]
    env_file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the release phase, then every process type until Ctrl-C or SIGTERM.
    Up {
        /// How many of each type: `web=2,worker=3`; unnamed types run once, `0` not at all.
        #[arg(short = 'm', long, value_parser = dozen::parse_formation, default_value = "")]
        formation: std::collections::BTreeMap<String, usize>,
        /// Instance n (from 0) of the i-th type gets PORT = base + 100·i + n.
        #[arg(long, default_value_t = 8080)]
        port_base: u16,
        /// How long processes may drain after SIGTERM before they are killed.
        #[arg(long, value_parser = humantime_secs, default_value = "30")]
        grace: Duration,
    },
    /// Run a one-off admin process with the environment of a process type or
    /// service, on this terminal; exits with its exit code.
    Run {
        /// A process type of the Procfile, or a service name (for `<SERVICE>_*` variables).
        target: String,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run the schedule's jobs as one-off processes at their times (the
    /// `clock` process type); each slot once, never two runs of a job at once.
    Clock {
        /// The schedule: `<name>: <cron, UTC> | <command>` per line.
        #[arg(long, default_value = "schedule")]
        schedule: PathBuf,
        /// Where the last slot run of each job is kept across restarts.
        #[arg(long, default_value = "data/clock.json")]
        state: PathBuf,
    },
    /// Dead letters of the bus `BUS_URL` names: list, show, redrive, purge.
    Dlq {
        #[command(subcommand)]
        command: Dlq,
    },
    /// Each process of the `dozen up` running here (pid, port, ready,
    /// restarts), and each subscription of the bus (depth, in flight, dead letters).
    Status,
    /// Write the deployment descriptions (compose, Kubernetes, AWS) from the
    /// Procfile, the schedule, each service's `describe` and `deploy/env/`.
    Export {
        /// Which ones; all when none is named.
        #[arg(value_enum)]
        targets: Vec<dozen::export::Target>,
        /// Write nothing; exit 1 if a checked-in file is not what would be written.
        #[arg(long)]
        check: bool,
    },
    /// (internal) What each child runs first; see `dozen::exec`.
    #[command(name = "__exec", hide = true)]
    Exec {
        parent: u32,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

/// Under `cargo run` (which sets `CARGO`), in the workspace: builds the
/// Procfile's programs that are workspace binaries, in the profile dozen
/// itself was built in, so they run what the sources say.
fn build_when_run_by_cargo(bin_dir: &std::path::Path, procfile: &Procfile) -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if !std::path::Path::new("Cargo.toml").exists() {
        return Ok(());
    }
    let metadata = std::process::Command::new(&cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()?;
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let binaries: std::collections::BTreeSet<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    let wanted: std::collections::BTreeSet<String> = procfile
        .types
        .iter()
        .chain(&procfile.release)
        .map(|t| Up::service_of(&t.argv))
        .filter(|program| binaries.contains(program.as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut build = std::process::Command::new(cargo);
    build.arg("build");
    for program in &wanted {
        build.args(["--bin", program]);
    }
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    eprintln!(
        "dozen | building {}",
        wanted.into_iter().collect::<Vec<_>>().join(", ")
    );
    let status = build.status()?;
    anyhow::ensure!(
        status.success(),
        "the build failed ({status}): nothing started"
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
enum Dlq {
    /// Every subscription's dead-letter count, or one subscription's dead letters.
    List {
        subscription: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One dead letter, in full, as JSON.
    Show {
        subscription: String,
        event_id: String,
    },
    /// Move dead letters back to their queue to be handled again (all, or `--event` ones).
    Redrive {
        subscription: String,
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Delete dead letters for good (all, or `--event` ones).
    Purge {
        subscription: String,
        #[arg(long = "event")]
        events: Vec<String>,
    },
}

async fn dlq(bus: &dyn dozen_bus::Bus, command: Dlq) -> anyhow::Result<i32> {
    let mut out = std::io::stdout();
    let chosen = |events: &[String]| (!events.is_empty()).then(|| events.to_vec());
    match command {
        Dlq::List {
            subscription: None, ..
        } => dozen::ops::subscriptions(bus, &mut out).await?,
        Dlq::List {
            subscription: Some(subscription),
            limit,
        } => dozen::ops::list(bus, &subscription, limit, &mut out).await?,
        Dlq::Show {
            subscription,
            event_id,
        } => {
            if !dozen::ops::show(bus, &subscription, &event_id, &mut out).await? {
                eprintln!("dozen: {subscription} has no dead letter {event_id}");
                return Ok(1);
            }
        }
        Dlq::Redrive {
            subscription,
            events,
        } => {
            let moved = bus
                .redrive(&subscription, chosen(&events).as_deref())
                .await?;
            println!("moved {moved} dead letters of {subscription} back to its queue");
        }
        Dlq::Purge {
            subscription,
            events,
        } => {
            let deleted = bus.purge(&subscription, chosen(&events).as_deref()).await?;
            println!("deleted {deleted} dead letters of {subscription}");
        }
    }
    Ok(0)
}

/// `dozen export`: every target's files, written or (with `check`) compared.
fn export(
    root: &Path,
    bin_dirs: &[PathBuf],
    targets: &[dozen::export::Target],
    check: bool,
) -> anyhow::Result<i32> {
    use dozen::export::{self, Target};
    let describe = |program: &str| -> Result<dozen_manifest::Manifest, String> {
        let binary = bin_dirs
            .iter()
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from(program));
        let output = std::process::Command::new(&binary)
            .arg("describe")
            .output()
            .map_err(|e| format!("running `{program} describe`: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`{program} describe` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("`{program} describe` printed no manifest: {e}"))
    };
    let plan = export::plan(root, describe).map_err(anyhow::Error::msg)?;
    let targets = if targets.is_empty() {
        &Target::ALL[..]
    } else {
        targets
    };
    let mut stale = Vec::new();
    for target in targets {
        let artifacts = export::render(root, &plan, *target).map_err(anyhow::Error::msg)?;
        stale.extend(export::write(root, &artifacts, check).map_err(anyhow::Error::msg)?);
    }
    for path in &stale {
        if check {
            eprintln!(
                "dozen: {path} is not what `dozen export` writes: run it and commit the result"
            );
        } else {
            eprintln!("dozen: wrote {path}");
        }
    }
    Ok(i32::from(check && !stale.is_empty()))
}

fn humantime_secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?}: expected seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Exec { parent, command } = &cli.command {
        let command: Vec<String> = command.iter().skip_while(|a| *a == "--").cloned().collect();
        let Err(error) = dozen::exec::trampoline(*parent, &command);
        eprintln!("dozen: {error}");
        return ExitCode::from(127);
    }
    // One thread: a child's death signal follows the thread that started it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("dozen: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&cli.procfile)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", cli.procfile.display()))?;
    let procfile = Procfile::parse(&text)?;
    let env_file = match std::fs::read_to_string(&cli.env_file) {
        Ok(text) => {
            envfile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", cli.env_file.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vars::new(),
        Err(e) => anyhow::bail!("reading {}: {e}", cli.env_file.display()),
    };
    let real_env = dozen::supervisor::real_environment(std::env::vars());
    // The service binaries are built beside this one (target/release or target/debug).
    let here = std::env::current_exe()?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    build_when_run_by_cargo(&here, &procfile)?;
    let mut up = Up {
        procfile,
        formation: Default::default(),
        env_file,
        real_env,
        port_base: 8080,
        grace: Duration::from_secs(30),
        bin_dirs: vec![here],
    };
    match cli.command {
        Command::Up {
            formation,
            port_base,
            grace,
        } => {
            for name in formation.keys() {
                anyhow::ensure!(
                    up.procfile.get(name).is_some(),
                    "-m names {name:?}, which the Procfile does not declare"
                );
            }
            up.formation = formation;
            up.port_base = port_base;
            up.grace = grace;
            up.run().await
        }
        Command::Run { target, command } => dozen::run_one_off(&up, &target, &command).await,
        Command::Dlq { command } => {
            let bus = dozen::ops::connect(up.env_of_service("dozen").get("BUS_URL")).await?;
            dlq(bus.as_ref(), command).await
        }
        Command::Status => {
            let bus = dozen::ops::connect(up.env_of_service("dozen").get("BUS_URL")).await?;
            dozen::ops::status(bus.as_ref(), &mut std::io::stdout()).await?;
            Ok(0)
        }
        Command::Clock { schedule, state } => {
            let text = std::fs::read_to_string(&schedule)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", schedule.display()))?;
            let jobs = dozen::schedule::parse(&text).map_err(anyhow::Error::msg)?;
            let ticker = dozen::clock::Ticker::new(jobs, dozen::clock::SystemClock, up, state)?;
            dozen::clock::run(ticker).await
        }
        Command::Export { targets, check } => {
            // The Procfile's folder holds the schedule and deploy/ too.
            let root = cli.procfile.parent().filter(|p| !p.as_os_str().is_empty());
            export(
                root.unwrap_or(Path::new(".")),
                &up.bin_dirs,
                &targets,
                check,
            )
        }
        Command::Exec { .. } => unreachable!("handled before the runtime starts"),
    }
}

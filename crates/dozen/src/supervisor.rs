//! `dozen up`: the release phase, then every process of the formation, each
//! restarted with backoff when it exits, until Ctrl-C or SIGTERM; then one
//! SIGTERM each, a grace period to drain, and SIGKILL for what is left.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::envfile::{self, Vars};
use crate::exec::{self, Attach};
use crate::ops::ProcessStatus;
use crate::procfile::{ProcessType, Procfile};

/// Everything `dozen up` needs to know.
#[derive(Debug, Clone)]
pub struct Up {
    pub procfile: Procfile,
    /// Instances per type; types not named run once, `0` not at all.
    pub formation: BTreeMap<String, usize>,
    pub env_file: Vars,
    pub real_env: Vars,
    /// Instance `n` (from 0) of the `i`-th type gets `PORT = base + 100·i + n`.
    pub port_base: u16,
    /// How long children may drain after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// Put before `PATH`, so Procfile commands find the service binaries.
    pub bin_dirs: Vec<std::path::PathBuf>,
}

/// Names the variables that were real when `dozen up` started, so a `dozen`
/// it runs (the clock, `dozen run` in a job) tells them from what it added.
pub const REAL_VARS: &str = "DOZEN_REAL_VARS";

/// The real environment: all of it, or under `dozen up`, what was real there.
pub fn real_environment(vars: impl Iterator<Item = (String, String)>) -> Vars {
    let vars: Vars = vars.collect();
    match vars.get(REAL_VARS) {
        Some(names) => {
            let names: std::collections::BTreeSet<&str> = names.split(',').collect();
            vars.iter()
                .filter(|(k, _)| names.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        None => vars,
    }
}

/// Where a running `dozen up` is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Killing,
}

/// The first restart waits this long, each next one twice as long, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long is healthy again: its backoff starts over.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// This many crashes in a row is reported as a process that keeps crashing.
const CRASH_LOOP: u32 = 5;

/// One instance: `web.1`, and what it runs with.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vars,
    pub port: u16,
}

impl Up {
    /// The service a command runs: its program's file name (`chat serve` → `chat`).
    pub fn service_of(argv: &[String]) -> String {
        argv.first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
            .unwrap_or_default()
    }

    pub fn env_for(&self, process: &ProcessType) -> Vars {
        self.env_of_service(&Self::service_of(&process.argv))
    }

    /// What a process of `service` gets: the env file under the real
    /// environment, its `<SERVICE>_` variables, and `PATH` with the bin dirs first.
    pub fn env_of_service(&self, service: &str) -> Vars {
        let mut env = envfile::for_service(&self.env_file, &self.real_env, service);
        let mut path: Vec<std::path::PathBuf> = self.bin_dirs.clone();
        if let Some(existing) = env.get("PATH") {
            path.extend(std::env::split_paths(existing));
        }
        if let Ok(joined) = std::env::join_paths(path) {
            env.insert("PATH".into(), joined.to_string_lossy().into_owned());
        }
        env
    }

    /// `DOZEN_UPSTREAMS` for the web gateway: every `serve` process but the
    /// gateway's own, by service: `accounts=127.0.0.1:8180;chat=127.0.0.1:8280,127.0.0.1:8281`.
    fn upstreams(&self) -> String {
        let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (index, process) in self.procfile.types.iter().enumerate() {
            let service = Self::service_of(&process.argv);
            if process.argv.get(1).map(String::as_str) != Some("serve") || service == "web" {
                continue;
            }
            let count = self.formation.get(&process.name).copied().unwrap_or(1);
            for n in 0..count {
                let port = self.port_base + 100 * index as u16 + n as u16;
                by_service
                    .entry(service.clone())
                    .or_default()
                    .push(format!("127.0.0.1:{port}"));
            }
        }
        by_service
            .into_iter()
            .map(|(service, addresses)| format!("{service}={}", addresses.join(",")))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Every instance of the formation, in Procfile order.
    pub fn instances(&self) -> Vec<Instance> {
        let upstreams = self.upstreams();
        let mut instances = Vec::new();
        for (index, process) in self.procfile.types.iter().enumerate() {
            let count = self.formation.get(&process.name).copied().unwrap_or(1);
            for n in 0..count {
                let port = self.port_base + 100 * index as u16 + n as u16;
                let name = format!("{}.{}", process.name, n + 1);
                let mut env = self.env_for(process);
                env.insert("PORT".into(), port.to_string());
                env.insert("DOZEN_PROCESS".into(), name.clone());
                env.insert("DOZEN_UPSTREAMS".into(), upstreams.clone());
                let real: Vec<&str> = self.real_env.keys().map(String::as_str).collect();
                env.insert(REAL_VARS.into(), real.join(","));
                instances.push(Instance {
                    name,
                    argv: process.argv.clone(),
                    env,
                    port,
                });
            }
        }
        instances
    }

    /// Runs everything until stopped; the exit code of `dozen up`.
    pub async fn run(self) -> anyhow::Result<i32> {
        let out = Output::new(
            self.procfile
                .types
                .iter()
                .map(|t| t.name.len() + 3)
                .max()
                .unwrap_or(8),
        );
        for release in &self.procfile.release {
            let env = self.env_for(release);
            out.note(&format!("release phase: {}", release.argv.join(" ")));
            let mut child = exec::spawn(&release.argv, &env, Attach::Supervised)?;
            let copying = out.forward(&mut child, "release", 0);
            let status = child.wait().await?;
            copying.finish().await;
            if !status.success() {
                out.note(&format!("release phase failed ({status}): nothing started"));
                return Ok(1);
            }
        }
        let (phase_tx, phase) = watch::channel(Phase::Running);
        let mut supervisors = JoinSet::new();
        let instances = self.instances();
        let board = Board::default();
        for (colour, instance) in instances.iter().cloned().enumerate() {
            supervisors.spawn(supervise(
                instance,
                colour,
                out.clone(),
                phase.clone(),
                board.clone(),
            ));
        }
        tokio::spawn(announce_when_ready(instances, out.clone(), phase.clone()));

        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut signals = 0;
        let grace = self.grace;
        loop {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
                done = supervisors.join_next() => {
                    if done.is_none() { break; }
                    continue;
                }
            }
            signals += 1;
            if signals == 1 {
                out.note(&format!(
                    "stopping: SIGTERM to every process, SIGKILL after {grace:?}"
                ));
                let _ = phase_tx.send(Phase::Draining);
                let phase_tx = phase_tx.clone();
                let out = out.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    if *phase_tx.borrow() == Phase::Draining {
                        out.note("grace period over: SIGKILL to what is left");
                        let _ = phase_tx.send(Phase::Killing);
                    }
                });
            } else {
                out.note("second signal: SIGKILL to every process");
                let _ = phase_tx.send(Phase::Killing);
            }
        }
        out.note("every process has stopped");
        let _ = std::fs::remove_file(crate::ops::STATUS_FILE);
        Ok(0)
    }
}

/// Waits until the phase is one `wanted` accepts (or dozen is going away).
async fn until(phase: &mut watch::Receiver<Phase>, wanted: impl FnMut(&Phase) -> bool) {
    let _ = phase.wait_for(wanted).await;
}

/// Each process's pid, port and restarts, written for `dozen status`.
#[derive(Debug, Clone, Default)]
struct Board(std::sync::Arc<std::sync::Mutex<BTreeMap<String, ProcessStatus>>>);

impl Board {
    fn set(&self, instance: &Instance, pid: Option<u32>, restarts: u32) {
        let mut processes = self.0.lock().expect("board lock");
        processes.insert(
            instance.name.clone(),
            ProcessStatus {
                pid,
                port: instance.port,
                restarts,
            },
        );
        crate::ops::write_status(&processes);
    }
}

/// Keeps one instance running until `dozen` stops.
async fn supervise(
    instance: Instance,
    colour: usize,
    out: Output,
    mut phase: watch::Receiver<Phase>,
    board: Board,
) {
    let mut restarts: u32 = 0;
    let mut crashes: u32 = 0;
    loop {
        let started = Instant::now();
        let mut child = match exec::spawn(&instance.argv, &instance.env, Attach::Supervised) {
            Ok(child) => child,
            Err(error) => {
                out.note(&format!("{} cannot start: {error}", instance.name));
                return;
            }
        };
        board.set(&instance, child.id(), restarts);
        let copying = out.forward(&mut child, &instance.name, colour);
        let mut killing = phase.clone();
        let status = tokio::select! {
            status = child.wait() => status,
            _ = until(&mut phase, |p| *p != Phase::Running) => {
                exec::signal_group(&child, Signal::SIGTERM);
                tokio::select! {
                    _ = child.wait() => {}
                    _ = until(&mut killing, |p| *p == Phase::Killing) => {
                        exec::signal_group(&child, Signal::SIGKILL);
                        let _ = child.wait().await;
                    }
                }
                copying.finish().await;
                return;
            }
        };
        copying.finish().await;
        if *phase.borrow() != Phase::Running {
            return;
        }
        let how = match status {
            Ok(status) => status.to_string(),
            Err(error) => error.to_string(),
        };
        if started.elapsed() >= STABLE_AFTER {
            crashes = 0;
        }
        crashes += 1;
        restarts += 1;
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (crashes - 1).min(10))
            .min(MAX_BACKOFF);
        out.note(&format!(
            "{} exited ({how}); restarting in {:.1}s (restart {crashes})",
            instance.name,
            backoff.as_secs_f64()
        ));
        if crashes == CRASH_LOOP {
            out.note(&format!(
                "{} keeps crashing: {CRASH_LOOP} exits in a row; still restarting, look at its log",
                instance.name
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = until(&mut phase, |p| *p != Phase::Running) => return,
        }
    }
}

/// Polls each instance's `/readyz`; once all answer, prints where they are.
async fn announce_when_ready(instances: Vec<Instance>, out: Output, phase: watch::Receiver<Phase>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut waiting: Vec<&Instance> = instances.iter().collect();
    while !waiting.is_empty() && Instant::now() < deadline {
        if *phase.borrow() != Phase::Running {
            return;
        }
        let mut still = Vec::new();
        for instance in waiting {
            if !ready(instance.port).await {
                still.push(instance);
            }
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !waiting.is_empty() {
        let names: Vec<&str> = waiting.iter().map(|i| i.name.as_str()).collect();
        out.note(&format!("not ready after 2 minutes: {}", names.join(", ")));
        return;
    }
    out.note("every process is ready:");
    for instance in &instances {
        out.note(&format!(
            "  {:<14} http://127.0.0.1:{}",
            instance.name, instance.port
        ));
    }
    for gateway in instances.iter().filter(|i| i.name.starts_with("web.")) {
        out.note(&format!(
            "open http://127.0.0.1:{} (the services answer under /api/<service>/)",
            gateway.port
        ));
    }
}

/// `GET /readyz` answered 200, with nothing but a socket (no HTTP client needed).
pub async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut head)).await,
        Ok(Ok(_))
    ) && head.starts_with(b"HTTP/1.1 200")
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Where lines go: prefixed and coloured on a terminal; as they are otherwise
/// (a JSON log line stays one JSON object), other lines prefixed.
#[derive(Debug, Clone)]
pub struct Output {
    terminal: bool,
    width: usize,
}

const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

impl Output {
    fn new(width: usize) -> Self {
        Self {
            terminal: std::io::stdout().is_terminal(),
            width: width.max(7),
        }
    }

    /// A line of dozen's own, on stderr.
    pub fn note(&self, text: &str) {
        eprintln!("{:<width$} | {text}", "dozen", width = self.width);
    }

    fn line(&self, name: &str, colour: usize, text: &str) {
        if self.terminal {
            let code = COLOURS[colour % COLOURS.len()];
            println!(
                "\x1b[{code}m{name:<width$} |\x1b[0m {text}",
                width = self.width
            );
        } else if text.starts_with('{') {
            println!("{text}");
        } else {
            println!("{name:<width$} | {text}", width = self.width);
        }
    }

    /// Copies the child's stdout and stderr, line by line, until both close.
    fn forward(&self, child: &mut tokio::process::Child, name: &str, colour: usize) -> Copying {
        fn copy(
            out: Output,
            name: String,
            colour: usize,
            from: impl AsyncRead + Unpin + Send + 'static,
        ) -> tokio::task::JoinHandle<()> {
            tokio::spawn(async move {
                let mut lines = BufReader::new(from).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    out.line(&name, colour, &line);
                }
            })
        }
        let mut tasks = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            tasks.push(copy(self.clone(), name.to_owned(), colour, stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            tasks.push(copy(self.clone(), name.to_owned(), colour, stderr));
        }
        Copying(tasks)
    }
}

/// The copying of one child's output.
struct Copying(Vec<tokio::task::JoinHandle<()>>);

impl Copying {
    /// Waits for the last lines of an exited child; not forever, since
    /// something it started may still hold its output open.
    async fn finish(self) {
        let all = async {
            for task in self.0 {
                let _ = task.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), all).await;
    }
}

//! The real `dozen` binary against small Procfiles of shell commands, and
//! against the repository's own Procfile: the whole system.

mod clock;
mod dlq;
mod export;
mod system;

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::Command;

pub(crate) use dozen_testing::up::DozenUp as Dozen;

pub(crate) fn dozen(folder: &Path) -> Command {
    dozen_testing::up::command(Path::new(env!("CARGO_BIN_EXE_dozen")), folder)
}

pub(crate) fn folder_with(procfile: &str, env: &str) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("Procfile"), procfile).unwrap();
    std::fs::write(folder.path().join("dev.env"), env).unwrap();
    folder
}

/// `dozen up <args>` in a folder of its own holding `procfile`, `env` (as dev.env) and `files`.
pub(crate) fn start_with(
    procfile: &str,
    env: &str,
    args: &[&str],
    vars: &[(&str, String)],
    files: &[(&str, String)],
) -> Dozen {
    let folder = folder_with(procfile, env);
    for (name, text) in files {
        std::fs::write(folder.path().join(name), text).unwrap();
    }
    Dozen::start(Path::new(env!("CARGO_BIN_EXE_dozen")), folder, args, vars)
}

pub(crate) fn start(procfile: &str, env: &str, args: &[&str]) -> Dozen {
    start_with(procfile, env, args, &[], &[])
}

/// Whether `pid` is a live process (a zombie is not).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The `pid=` each matching line printed.
fn pids(lines: &[(Instant, String)]) -> Vec<i32> {
    lines
        .iter()
        .filter_map(|(_, l)| {
            l.split("pid=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

pub(crate) async fn gone(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "still running: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SLEEPER: &str =
    r#"sh -c 'echo "up port=$PORT name=$DOZEN_PROCESS db=$DATABASE_URL pid=$$"; exec sleep 60'"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_formation_runs_each_type_as_often_as_asked_each_with_its_own_port_and_env() {
    let procfile = format!("web: {SLEEPER}\nworker: {SLEEPER}\nidle: {SLEEPER}\n");
    let env = "DATABASE_URL=sqlite://shared.db\nSH_DATABASE_URL=sqlite://own.db\n";
    let mut dozen = start(
        &procfile,
        env,
        &["-m", "web=2,worker=3,idle=0", "--port-base", "17000"],
    );
    let up = dozen.wait_for("up port=", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen: Vec<String> = dozen
        .lines_with("up port=")
        .iter()
        .map(|(_, l)| {
            l.split("up ")
                .nth(1)
                .unwrap()
                .split(" pid=")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "port=17000 name=web.1 db=sqlite://own.db",
            "port=17001 name=web.2 db=sqlite://own.db",
            "port=17100 name=worker.1 db=sqlite://own.db",
            "port=17101 name=worker.2 db=sqlite://own.db",
            "port=17102 name=worker.3 db=sqlite://own.db",
        ]
    );
    dozen.signal(Signal::SIGTERM);
    assert_eq!(dozen.exit_code().await, 0);
    gone(&pids(&up)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_release_phase_starts_nothing_and_dozen_exits_non_zero() {
    let procfile =
        "release: sh -c 'echo migrating; exit 3'\nweb: sh -c 'echo STARTED; exec sleep 60'\n";
    let mut dozen = start(procfile, "", &[]);
    assert_ne!(dozen.exit_code().await, 0);
    dozen.wait_for("nothing started", 1).await;
    assert!(dozen.lines_with("STARTED").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_phase_runs_before_any_process_starts() {
    let procfile =
        "release: sh -c 'sleep 0.5; echo MIGRATED'\nweb: sh -c 'echo STARTED; exec sleep 60'\n";
    let dozen = start(procfile, "", &[]);
    let started = dozen.wait_for("STARTED", 1).await;
    let migrated = dozen.lines_with("MIGRATED");
    assert!(migrated[0].0 <= started[0].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_process_is_restarted_with_growing_delays_and_reported() {
    let dozen = start("web: sh -c 'echo CRASHING; exit 4'\n", "", &[]);
    let starts = dozen.wait_for("CRASHING", 4).await;
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "delays grow: {gaps:?}"
    );
    assert!(gaps[0] >= Duration::from_millis(400), "{gaps:?}");
    dozen.wait_for("restarting in", 3).await;
    assert!(dozen.lines_with("exit status: 4").len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_every_process_drain_then_dozen_exits_and_leaves_none() {
    let draining = r#"sh -c 'trap "echo DRAINING; sleep 1; echo DRAINED; exit 0" TERM; echo "up pid=$$"; while true; do sleep 0.1; done'"#;
    let mut dozen = start(&format!("web: {draining}\n"), "", &["-m", "web=2"]);
    let up = dozen.wait_for("up pid=", 2).await;
    dozen.signal(Signal::SIGTERM);
    assert_eq!(dozen.exit_code().await, 0);
    assert_eq!(
        dozen.lines_with("DRAINED").len(),
        2,
        "both drained before dozen exited"
    );
    assert_eq!(dozen.lines_with("stopping").len(), 1, "one SIGTERM round");
    gone(&pids(&up)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let stubborn =
        r#"sh -c 'trap "echo IGNORED" TERM; echo "up pid=$$"; while true; do sleep 0.1; done'"#;
    let mut dozen = start(&format!("web: {stubborn}\n"), "", &["--grace", "1"]);
    let up = dozen.wait_for("up pid=", 1).await;
    let stopped = Instant::now();
    dozen.signal(Signal::SIGTERM);
    assert_eq!(dozen.exit_code().await, 0);
    assert!(stopped.elapsed() >= Duration::from_millis(900));
    dozen.wait_for("grace period over", 1).await;
    gone(&pids(&up)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_kills_at_once() {
    let stubborn =
        r#"sh -c 'trap "echo IGNORED" INT TERM; echo "up pid=$$"; while true; do sleep 0.1; done'"#;
    let mut dozen = start(&format!("web: {stubborn}\n"), "", &["--grace", "30"]);
    let up = dozen.wait_for("up pid=", 1).await;
    dozen.signal(Signal::SIGINT);
    dozen.wait_for("stopping", 1).await;
    let second = Instant::now();
    dozen.signal(Signal::SIGINT);
    assert_eq!(dozen.exit_code().await, 0);
    assert!(second.elapsed() < Duration::from_secs(5));
    gone(&pids(&up)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dozen_killed_with_sigkill_leaves_no_child_behind() {
    let mut dozen = start(
        &format!("web: {SLEEPER}\nworker: {SLEEPER}\n"),
        "",
        &["-m", "web=2"],
    );
    let up = dozen.wait_for("up port=", 3).await;
    let children = pids(&up);
    assert!(children.iter().all(|p| alive(*p)));
    dozen.signal(Signal::SIGKILL);
    dozen.child.wait().await.unwrap();
    gone(&children).await;
}

#[tokio::test]
async fn run_passes_the_exit_code_and_gives_the_services_environment() {
    let folder = folder_with(
        &format!("web: {SLEEPER}\nchat: chat serve\n"),
        "DATABASE_URL=sqlite://default.db\nCHAT_DATABASE_URL=sqlite://chat.db\n",
    );
    let failed = dozen(folder.path())
        .args(["run", "web", "sh", "-c", "exit 7"])
        .status()
        .await
        .unwrap();
    assert_eq!(failed.code(), Some(7));
    let printed = dozen(folder.path())
        .args(["run", "chat", "sh", "-c", "echo $DATABASE_URL"])
        .output()
        .await
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        "sqlite://chat.db"
    );
}

#[tokio::test]
async fn a_bad_procfile_line_is_named_and_nothing_runs() {
    let folder = folder_with("web: sh -c 'echo hi'\nthis line is wrong\n", "");
    let output = dozen(folder.path()).arg("up").output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Procfile line 2"), "{stderr}");
}

//! The clock on an injected time: jobs run at their slot, once per slot, and
//! never overlap themselves.

use std::path::Path;
use std::time::Duration;

use dozen::clock::{FakeClock, Outcome, Ticker};
use dozen::procfile::Procfile;
use dozen::schedule;
use dozen::supervisor::Up;
use time::macros::datetime;

fn up() -> Up {
    std::env::set_var("DOZEN_EXE", env!("CARGO_BIN_EXE_dozen"));
    Up {
        procfile: Procfile::parse("web: true").unwrap(),
        formation: Default::default(),
        env_file: Default::default(),
        real_env: std::env::vars().filter(|(k, _)| k == "PATH").collect(),
        port_base: 0,
        grace: Duration::from_secs(1),
        bin_dirs: Vec::new(),
    }
}

fn runs(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |t| t.lines().count())
}

fn started(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Started { .. }))
        .count()
}

#[tokio::test]
async fn a_job_runs_at_its_time_once_per_slot_and_a_missed_stretch_runs_it_once() {
    let folder = tempfile::tempdir().unwrap();
    let ran = folder.path().join("ran.txt");
    let jobs = schedule::parse(&format!(
        "report: 0 6 * * * | sh -c 'echo ran >> {}'",
        ran.display()
    ))
    .unwrap();
    let state = folder.path().join("clock.json");
    let clock = FakeClock::at(datetime!(2026-11-26 05:59:30 UTC));
    let mut ticker = Ticker::new(jobs.clone(), clock.clone(), up(), state.clone()).unwrap();
    assert_eq!(started(&ticker.tick().unwrap()), 0, "not yet");

    clock.set(datetime!(2026-11-26 06:00:01 UTC));
    assert_eq!(
        ticker.tick().unwrap(),
        [Outcome::Started {
            job: "report".into(),
            slot: datetime!(2026-11-26 06:00 UTC)
        }]
    );
    clock.set(datetime!(2026-11-26 06:00:40 UTC));
    assert_eq!(started(&ticker.tick().unwrap()), 0, "one run per slot");
    ticker.wait_for_running().await;
    assert_eq!(runs(&ran), 1);

    // The clock was down for three days: one run, for the latest slot.
    clock.set(datetime!(2026-11-29 07:00 UTC));
    let mut restarted = Ticker::new(jobs.clone(), clock.clone(), up(), state.clone()).unwrap();
    assert_eq!(
        restarted.tick().unwrap(),
        [Outcome::Started {
            job: "report".into(),
            slot: datetime!(2026-11-29 06:00 UTC)
        }]
    );
    restarted.wait_for_running().await;
    // Restarted again within the slot: the state file says it ran.
    let mut again = Ticker::new(jobs, clock, up(), state).unwrap();
    assert_eq!(started(&again.tick().unwrap()), 0);
    assert_eq!(runs(&ran), 2);
}

#[tokio::test]
async fn a_job_still_running_at_its_next_slot_skips_it_instead_of_overlapping() {
    let folder = tempfile::tempdir().unwrap();
    let jobs = schedule::parse("slow: * * * * * | sleep 2").unwrap();
    let clock = FakeClock::at(datetime!(2026-11-26 10:00:30 UTC));
    let mut ticker = Ticker::new(jobs, clock.clone(), up(), folder.path().join("c.json")).unwrap();
    clock.set(datetime!(2026-11-26 10:01:00 UTC));
    assert_eq!(started(&ticker.tick().unwrap()), 1);
    clock.set(datetime!(2026-11-26 10:02:00 UTC));
    assert_eq!(
        ticker.tick().unwrap(),
        [Outcome::Skipped {
            job: "slow".into(),
            slot: datetime!(2026-11-26 10:02 UTC)
        }]
    );
    ticker.wait_for_running().await;
    clock.set(datetime!(2026-11-26 10:03:00 UTC));
    assert_eq!(
        started(&ticker.tick().unwrap()),
        1,
        "free again at the next slot"
    );
    ticker.wait_for_running().await;
}

#[test]
fn the_repositorys_schedule_parses() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schedule")).unwrap();
    let jobs = schedule::parse(&text).unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["archive", "report"]);
}

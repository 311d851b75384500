//! The `clock` process: runs the schedule's jobs as one-off processes at
//! their times. A slot is run once at most — also after the clock was down
//! (several missed slots make one run) or restarted (the last slot run of
//! each job is kept in a state file) — and a job still running when its next
//! slot comes skips that slot instead of overlapping itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};
use tokio::process::Child;

use crate::exec::{self, Attach};
use crate::schedule::Job;
use crate::supervisor::Up;

/// Where the time comes from: the system's, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock a test sets by hand.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<Mutex<OffsetDateTime>>);

impl FakeClock {
    pub fn at(time: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(time)))
    }

    pub fn set(&self, time: OffsetDateTime) {
        *self.0.lock().expect("clock lock") = time;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// What one tick did with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Started {
        job: String,
        slot: OffsetDateTime,
    },
    /// Its previous run was still going.
    Skipped {
        job: String,
        slot: OffsetDateTime,
    },
}

/// Missed slots older than this are not made up for.
const HORIZON: Duration = Duration::days(35);

pub struct Ticker<C: Clock> {
    jobs: Vec<Job>,
    clock: C,
    up: Up,
    state: PathBuf,
    last: BTreeMap<String, i64>,
    running: BTreeMap<String, Child>,
}

impl<C: Clock> std::fmt::Debug for Ticker<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Ticker<C> {
    /// A ticker that remembers in `state` which slot each job last ran.
    /// Jobs it has never seen start with the slots after now.
    pub fn new(jobs: Vec<Job>, clock: C, up: Up, state: PathBuf) -> anyhow::Result<Self> {
        let mut last: BTreeMap<String, i64> = match std::fs::read_to_string(&state) {
            Ok(text) => serde_json::from_str(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let now = clock.now();
        for job in &jobs {
            last.entry(job.name.clone()).or_insert_with(|| {
                job.cron
                    .latest_at_or_before(now, HORIZON)
                    .map_or(i64::MIN, |slot| slot.unix_timestamp())
            });
        }
        let ticker = Self {
            jobs,
            clock,
            up,
            state,
            last,
            running: BTreeMap::new(),
        };
        ticker.save()?;
        Ok(ticker)
    }

    fn save(&self) -> anyhow::Result<()> {
        if let Some(folder) = self.state.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let temporary = self.state.with_extension("tmp");
        std::fs::write(&temporary, serde_json::to_string_pretty(&self.last)?)?;
        std::fs::rename(temporary, &self.state)?;
        Ok(())
    }

    /// Starts each job whose latest slot is newer than the last it ran.
    pub fn tick(&mut self) -> anyhow::Result<Vec<Outcome>> {
        let now = self.clock.now();
        let mut outcomes = Vec::new();
        for job in &self.jobs {
            let Some(slot) = job.cron.latest_at_or_before(now, HORIZON) else {
                continue;
            };
            if self
                .last
                .get(&job.name)
                .is_some_and(|l| *l >= slot.unix_timestamp())
            {
                continue;
            }
            self.last.insert(job.name.clone(), slot.unix_timestamp());
            let still_running = match self.running.get_mut(&job.name) {
                Some(child) => child.try_wait()?.is_none(),
                None => false,
            };
            if still_running {
                outcomes.push(Outcome::Skipped {
                    job: job.name.clone(),
                    slot,
                });
                continue;
            }
            let env = self.up.env_of_service(&Up::service_of(&job.argv));
            let child = exec::spawn(&job.argv, &env, Attach::Terminal)?;
            self.running.insert(job.name.clone(), child);
            outcomes.push(Outcome::Started {
                job: job.name.clone(),
                slot,
            });
        }
        self.save()?;
        Ok(outcomes)
    }

    /// When the next slot of any job comes.
    pub fn next_slot(&self) -> Option<OffsetDateTime> {
        let now = self.clock.now();
        self.jobs
            .iter()
            .filter_map(|j| j.cron.next_after(now))
            .min()
    }

    /// Waits for the jobs still running (a test's, or a clock stopping).
    pub async fn wait_for_running(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.running) {
            let _ = child.wait().await;
        }
    }
}

/// Answers every request on `PORT` with 200, so the clock is "ready" like
/// every other process (it has nothing to check beyond being alive).
async fn answer_health(port: u16) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let body = r#"{"status":"ready"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// `dozen clock`: ticks on the system clock until SIGTERM or Ctrl-C, then
/// lets the jobs in progress finish.
pub async fn run(mut ticker: Ticker<SystemClock>) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    if let Some(port) = std::env::var("PORT").ok().and_then(|p| p.parse().ok()) {
        answer_health(port).await?;
    }
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    eprintln!("clock: {} jobs", ticker.jobs.len());
    loop {
        for outcome in ticker.tick()? {
            match outcome {
                Outcome::Started { job, slot } => eprintln!("clock: {job} started for {slot}"),
                Outcome::Skipped { job, slot } => {
                    eprintln!("clock: {job} skipped the slot {slot}: its last run is still going")
                }
            }
        }
        let wait = ticker
            .next_slot()
            .map(|next| (next - OffsetDateTime::now_utc()).max(Duration::ZERO))
            .unwrap_or(Duration::hours(1));
        let wait = std::time::Duration::try_from(wait).unwrap_or_default()
            + std::time::Duration::from_millis(50);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    ticker.wait_for_running().await;
    Ok(0)
}

//! What every benchmark shares.

pub mod stacks;

/// The machine a result was measured on, for its report: CPUs and kernel.
pub fn machine() -> String {
    format!(
        "{} CPUs, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/version")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The PostgreSQL the benchmarks make their databases in:
/// `BENCH_POSTGRES_URL`, default the local server's `postgres` database.
pub fn postgres_url() -> String {
    std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis chat's cache is on: `BENCH_REDIS_URL`, default the local server.
pub fn redis_url() -> String {
    std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The folder of the running benchmark's binary, where the release build
/// put the services' binaries too.
pub fn binaries() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .map_or_else(|| exe.clone(), std::path::Path::to_owned))
}

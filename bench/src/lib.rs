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

//! Words for the people who read a command's output.

/// `n` with its noun, singular only for one: `counted(1, "event", "events")`
/// is "1 event", `counted(0, "batch", "batches")` is "0 batches".
pub fn counted(n: impl Into<i128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_one_is_singular() {
        assert_eq!(super::counted(1_u64, "event", "events"), "1 event");
        assert_eq!(super::counted(0_i64, "batch", "batches"), "0 batches");
        assert_eq!(super::counted(-1_i64, "room", "rooms"), "-1 rooms");
        assert_eq!(super::counted(2_u64, "room", "rooms"), "2 rooms");
    }
}

//! The eviction policy, pure: given the live sessions and the limits, which to evict.
//!
//! Rules: a busy session is never chosen; every idle session past the idle timeout goes;
//! then, while the count (plus sessions about to start) exceeds the maximum, the least
//! recently used idle session goes.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EntryView<K> {
    pub key: K,
    pub idle_for: Duration,
    pub busy: bool,
}

/// Keys to evict, oldest first.
pub fn select_evictions<K: Clone>(
    entries: &[EntryView<K>],
    idle_timeout: Duration,
    max_sessions: usize,
    incoming: usize,
) -> Vec<K> {
    let mut idle: Vec<&EntryView<K>> = entries.iter().filter(|e| !e.busy).collect();
    idle.sort_by_key(|e| std::cmp::Reverse(e.idle_for));
    let mut remaining = entries.len();
    let mut chosen = Vec::new();
    for entry in idle {
        let expired = entry.idle_for >= idle_timeout;
        let over_limit = remaining + incoming > max_sessions;
        if !(expired || over_limit) {
            break;
        }
        chosen.push(entry.key.clone());
        remaining -= 1;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &'static str, idle_secs: u64, busy: bool) -> EntryView<&'static str> {
        EntryView {
            key,
            idle_for: Duration::from_secs(idle_secs),
            busy,
        }
    }

    fn check(
        entries: &[EntryView<&'static str>],
        timeout: u64,
        max: usize,
        incoming: usize,
        want: &[&str],
    ) {
        assert_eq!(
            select_evictions(entries, Duration::from_secs(timeout), max, incoming),
            want.to_vec()
        );
    }

    #[test]
    fn expired_idle_sessions_go_busy_ones_stay() {
        let entries = [
            entry("a", 100, false),
            entry("b", 100, true),
            entry("c", 5, false),
        ];
        check(&entries, 60, 10, 0, &["a"]);
    }

    #[test]
    fn over_the_limit_the_least_recently_used_idle_goes() {
        let entries = [
            entry("a", 10, false),
            entry("b", 30, false),
            entry("c", 50, true),
        ];
        check(&entries, 60, 3, 1, &["b"]);
        check(&entries, 60, 1, 1, &["b", "a"]);
    }

    #[test]
    fn nothing_to_do_under_the_limit() {
        check(&[entry("a", 1, false)], 60, 10, 1, &[]);
    }
}

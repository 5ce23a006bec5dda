//! The one way async code runs blocking work (file system, git, sled, zip): on tokio's
//! blocking pool with a time limit, so neither a session's thread nor an HTTP worker ever
//! waits on a disk, and a caller is answered even if a descriptor misbehaves.
//!
//! Work that overruns is abandoned: its result is dropped when it finishes. Everything run
//! here opens files non-blocking (see `workspace::open`), so nothing holds a pool thread for
//! good.

use std::time::Duration;

/// Time allowed for one piece of file work (a read, a write, a listing, an upload's rename).
pub const FILE_WORK: Duration = Duration::from_secs(60);
/// Time allowed for store and git work done for one request (a snapshot of a large
/// workspace takes seconds).
pub const STORE_WORK: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockingError {
    #[error("the work did not finish within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("the work failed: {0}")]
    Panicked(String),
}

/// Runs `work` on the blocking pool and waits at most `limit` for it.
pub async fn run<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BlockingError> {
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(join)) => Err(BlockingError::Panicked(join.to_string())),
        Err(_) => Err(BlockingError::TimedOut(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_come_back_and_overruns_are_abandoned() {
        assert_eq!(run(FILE_WORK, || 7).await, Ok(7));
        let slow = run(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500));
        })
        .await;
        assert_eq!(
            slow,
            Err(BlockingError::TimedOut(Duration::from_millis(50)))
        );
    }
}

//! The flusher: one thread that makes the store durable for everyone (group commit) and
//! does the store writes a session's thread must not wait for, in the order asked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Store, StoreError};

/// Group commit: turns ending at the same time share one flush instead of queueing for one
/// each. A dedicated thread waits for requests, takes every one that is queued, flushes once
/// and answers them all. `flush().await` returns once everything written before the call is
/// durable. The same thread writes the checkpoints of running turns, so a session's thread
/// never waits on the store for them.
#[derive(Clone)]
pub struct Flusher {
    requests: std::sync::mpsc::Sender<FlusherJob>,
    /// False once the thread has ended (it only ends by a panic): nothing is made durable
    /// any more, and `/healthz` says so.
    alive: Arc<AtomicBool>,
}

/// Marks the flusher dead when its thread ends, panic included.
struct AliveWhileHeld(Arc<AtomicBool>);

impl Drop for AliveWhileHeld {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

enum FlusherJob {
    Flush(tokio::sync::oneshot::Sender<Result<(), String>>),
    /// A write done on the flusher's thread, in the order asked, then flushed.
    Write(Box<dyn FnOnce(&Store) + Send>),
}

impl Flusher {
    pub fn start(store: Store) -> Result<Self, std::io::Error> {
        let (requests, queue) = std::sync::mpsc::channel::<FlusherJob>();
        let alive = Arc::new(AtomicBool::new(true));
        let held = AliveWhileHeld(alive.clone());
        std::thread::Builder::new()
            .name("okcvm-flusher".into())
            .spawn(move || {
                let _held = held;
                while let Ok(first) = queue.recv() {
                    let mut waiters = Vec::new();
                    for job in std::iter::once(first).chain(queue.try_iter()) {
                        match job {
                            FlusherJob::Flush(waiter) => waiters.push(waiter),
                            FlusherJob::Write(write) => write(&store),
                        }
                    }
                    let result = store.flush().map_err(|e| e.to_string());
                    for waiter in waiters {
                        let _ = waiter.send(result.clone());
                    }
                }
            })?;
        Ok(Self { requests, alive })
    }

    /// Whether the flusher's thread still runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Asks for a flush without waiting for it.
    pub fn flush_soon(&self) {
        let (tx, _ignored) = tokio::sync::oneshot::channel();
        let _ = self.requests.send(FlusherJob::Flush(tx));
    }

    /// Runs `write` on the flusher's thread (in the order asked), then flushes; a failure is
    /// logged as `what`. For writes a session's thread must not wait for.
    pub fn write_soon(
        &self,
        what: &'static str,
        write: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    ) {
        let job = move |store: &Store| {
            if let Err(error) = write(store) {
                tracing::error!(%error, "{what} failed");
            }
        };
        let _ = self.requests.send(FlusherJob::Write(Box::new(job)));
    }

    pub async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(FlusherJob::Flush(tx))
            .map_err(|_| "the store flusher stopped".to_string())?;
        rx.await
            .map_err(|_| "the store flusher stopped".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_flusher_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start(Store::open(&dir.path().join("db")).unwrap()).unwrap();
        assert!(flusher.is_alive());
        flusher.flush().await.unwrap();
        flusher.write_soon("a broken write", |_| panic!("a write job that panics"));
        for _ in 0..100 {
            if !flusher.is_alive() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!flusher.is_alive());
        assert!(flusher.flush().await.is_err());
    }
}

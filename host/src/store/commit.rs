//! Group commit: writers that need durability wait for a flush that started
//! after their write, and one flush (one fsync) serves every writer waiting
//! at that moment. Under load, durability costs one fsync per batch instead
//! of one per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::StoreError;

struct Shared {
    /// Writes announced so far; a write is numbered after it is applied.
    written: AtomicU64,
    /// Woken when there is something to flush, or to stop.
    wake: Condvar,
    state: Mutex<FlusherState>,
}

#[derive(Default)]
struct FlusherState {
    pending: bool,
    stop: bool,
}

/// The flusher thread and the watch that tells writers how far it got.
pub(super) struct GroupCommit {
    shared: Arc<Shared>,
    /// The highest write number known durable; `u64::MAX` after a failed flush.
    durable: watch::Receiver<u64>,
    thread: Option<JoinHandle<()>>,
}

/// A flush failed: nothing written since can be acknowledged.
const FAILED: u64 = u64::MAX;

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            wake: Condvar::new(),
            state: Mutex::new(FlusherState::default()),
        });
        let (tx, durable) = watch::channel(0);
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || flush_loop(&db, &worker, &tx))
            .map_err(|e| StoreError::Storage(format!("cannot start the flusher: {e}")))?;
        Ok(GroupCommit {
            shared,
            durable,
            thread: Some(thread),
        })
    }

    /// Waits until every write applied before this call is on disk.
    pub(super) async fn durable(&self) -> Result<(), StoreError> {
        let mine = self.shared.written.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.pending = true;
        }
        self.shared.wake.notify_one();
        let mut durable = self.durable.clone();
        let reached = durable
            .wait_for(|&done| done >= mine)
            .await
            .map_err(|_| StoreError::Storage("the flusher stopped".to_owned()))?;
        if *reached == FAILED {
            return Err(StoreError::Storage("flushing the store failed".to_owned()));
        }
        Ok(())
    }
}

fn flush_loop(db: &sled::Db, shared: &Shared, durable: &watch::Sender<u64>) {
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            while !state.pending && !state.stop {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stop && !state.pending {
                return;
            }
            state.pending = false;
        }
        // Every write numbered up to `target` was applied before its number
        // was taken, so this flush covers it.
        let target = shared.written.load(Ordering::SeqCst);
        let reached = match db.flush() {
            Ok(_) => target,
            Err(error) => {
                tracing::error!(%error, "store flush failed");
                FAILED
            }
        };
        durable.send_modify(|done| *done = (*done).max(reached));
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

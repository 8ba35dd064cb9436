//! [`LogWriter`]: the request path's only contact with the database.
//!
//! Request tasks hand records to a bounded lock-free queue and return at once;
//! one background task drains the queue in batches, each one transaction of
//! multi-row `INSERT`s plus its usage rollups and captured bodies. When the
//! database is slow or down the queue fills and the oldest records are dropped
//! (and counted) — requests never wait for the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::bodies::CapturedBodies;
use super::{LogEntry, RequestLogRecord, max_rows_per_insert};
use crate::error::{ErrorChain, StoreError};
use crate::store::Store;

/// Pause before the single retry of a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Sizing and timing for a [`LogWriter`].
#[derive(Clone, Debug)]
pub struct LogWriterConfig {
    /// Records the queue holds; beyond that the oldest are dropped. At least 1.
    pub capacity: usize,
    /// Records per `INSERT` (capped by the dialect's bind-parameter limit), and
    /// the queue length that wakes the writer early. At least 1. When larger
    /// than `capacity`, only `flush_interval` triggers writes.
    pub batch_size: usize,
    /// Longest time a record waits in the queue when traffic is light.
    pub flush_interval: Duration,
    /// Longest one batch's write (pool wait included) may take before it
    /// counts as a write error.
    pub write_timeout: Duration,
    /// Longest captured body kept, in bytes; longer ones are cut on a
    /// character boundary when pushed. At most 16 MiB on MySQL (MEDIUMTEXT).
    pub max_body_bytes: usize,
}

impl Default for LogWriterConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch_size: 256,
            flush_interval: Duration::from_millis(200),
            write_timeout: Duration::from_secs(10),
            max_body_bytes: 16 * 1024,
        }
    }
}

/// Counters of a [`LogWriter`], read without locking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogWriterStats {
    /// Records waiting in the queue (not counting a batch being written).
    pub queued: u64,
    /// Records stored in the database.
    pub written: u64,
    /// Records lost: pushed out of a full queue, in a batch that failed twice,
    /// or still unwritten when a shutdown timed out.
    pub dropped: u64,
    /// Failed batch writes (a dropped batch counts two: try and retry).
    pub write_errors: u64,
    /// Batches written, one transaction each.
    pub batches: u64,
}

/// Cloneable handle that request tasks use to log; see the module docs.
#[derive(Clone, Debug)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// State shared by every handle and the background task.
#[derive(Debug)]
struct Shared {
    queue: ArrayQueue<LogEntry>,
    /// [`LogWriterConfig::max_body_bytes`].
    max_body_bytes: usize,
    /// Queue length at which a push wakes the task before the interval elapses.
    wake_threshold: usize,
    wake: Notify,
    /// Set by the push that sends a wake-up, cleared by the task when it wakes,
    /// so a burst of pushes signals the task once instead of once per record.
    wake_pending: AtomicBool,
    /// Records taken off the queue and not yet written or dropped.
    in_flight: AtomicUsize,
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    batches: AtomicU64,
    /// Records are discarded, not queued.
    disabled: AtomicBool,
    /// `Some(deadline)` once shutdown is requested.
    shutdown: watch::Sender<Option<Instant>>,
    /// Its sender lives in the task; `changed()` fails once the task is gone.
    finished: watch::Receiver<()>,
}

impl LogWriter {
    /// Spawns the background writer on the current Tokio runtime.
    ///
    /// The task runs until [`LogWriter::shutdown`] or until every handle is
    /// dropped (it then writes what is queued and exits). The returned handle
    /// is only needed to observe a panic; awaiting `shutdown` is enough.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(store: Store, config: LogWriterConfig) -> (Self, JoinHandle<()>) {
        let batch_size = config.batch_size.max(1);
        let (shutdown, shutdown_rx) = watch::channel(None);
        let (finished_tx, finished) = watch::channel(());
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(config.capacity.max(1)),
            max_body_bytes: config.max_body_bytes,
            wake_threshold: batch_size,
            wake: Notify::new(),
            wake_pending: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            disabled: AtomicBool::new(false),
            shutdown,
            finished,
        });
        let task = BatchTask {
            shared: Arc::clone(&shared),
            rows_per_insert: batch_size.min(max_rows_per_insert(store.dialect())),
            store,
            flush_interval: config.flush_interval.max(Duration::from_millis(1)),
            write_timeout: config.write_timeout,
            failing: AtomicBool::new(false),
        };
        let handle = tokio::spawn(task.run(shutdown_rx, finished_tx));
        (Self { shared }, handle)
    }

    /// Queues `record` for writing. Never blocks, awaits or locks: when the
    /// queue is full the oldest record is dropped (and counted) to make room.
    pub fn push(&self, record: RequestLogRecord) {
        self.push_with_bodies(record, None);
    }

    /// Like [`LogWriter::push`], also storing the request's captured bodies
    /// (if `Some`), cut here to [`LogWriterConfig::max_body_bytes`] so the
    /// queue never holds more. Written in the same transaction as the record.
    pub fn push_with_bodies(&self, record: RequestLogRecord, bodies: Option<CapturedBodies>) {
        let shared = &*self.shared;
        if shared.disabled.load(Ordering::Relaxed) {
            return;
        }
        let bodies = bodies.map(|mut bodies| {
            bodies.truncate(shared.max_body_bytes);
            bodies
        });
        if shared
            .queue
            .force_push(LogEntry { record, bodies })
            .is_some()
        {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if shared.queue.len() >= shared.wake_threshold
            && !shared.wake_pending.swap(true, Ordering::AcqRel)
        {
            shared.wake.notify_one();
        }
    }

    /// Discard every record from now on (`[request_log] enabled = false`).
    pub fn disable(&self) {
        self.shared.disabled.store(true, Ordering::Relaxed);
    }

    /// Current counters.
    pub fn stats(&self) -> LogWriterStats {
        let shared = &*self.shared;
        LogWriterStats {
            queued: shared.queue.len() as u64,
            written: shared.written.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
            write_errors: shared.write_errors.load(Ordering::Relaxed),
            batches: shared.batches.load(Ordering::Relaxed),
        }
    }

    /// Writes what is queued, then stops the background task; returns the
    /// final counters.
    ///
    /// Takes at most about `timeout`: whatever is not written by then — the
    /// batch in flight and the rest of the queue — is counted as dropped.
    /// Other handles may still push afterwards, but nothing more is written.
    pub async fn shutdown(self, timeout: Duration) -> LogWriterStats {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400));
        // With several shutdowns racing, the earliest deadline wins.
        self.shared.shutdown.send_modify(|current| {
            *current = Some(current.map_or(deadline, |earlier| earlier.min(deadline)));
        });
        let mut finished = self.shared.finished.clone();
        while finished.changed().await.is_ok() {}
        self.stats()
    }
}

/// How much of the queue one wake-up writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Only full batches; a remainder waits for more records or the interval.
    FullBatches,
    /// What is queued now, in batches of up to `rows_per_insert`. Records
    /// pushed meanwhile wait for the next wake-up: chasing them under steady
    /// traffic would turn the interval's one write into a stream of tiny
    /// transactions, each costing the database a commit.
    Queued,
    /// Until the queue is empty.
    Everything,
}

/// The background task's state.
struct BatchTask {
    shared: Arc<Shared>,
    store: Store,
    rows_per_insert: usize,
    flush_interval: Duration,
    write_timeout: Duration,
    /// Whether the last batch was dropped; logs only the change of state.
    failing: AtomicBool,
}

impl BatchTask {
    async fn run(self, shutdown: watch::Receiver<Option<Instant>>, _finished: watch::Sender<()>) {
        tokio::select! {
            () = self.work(shutdown.clone()) => {}
            () = shutdown_deadline(shutdown) => self.abandon_unwritten(),
        }
    }

    /// Writes on wake-ups and ticks until shutdown (or until every handle is
    /// gone), then writes everything left.
    async fn work(&self, mut shutdown: watch::Receiver<Option<Instant>>) {
        let mut ticker =
            tokio::time::interval_at(Instant::now() + self.flush_interval, self.flush_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => break,
                () = self.shared.wake.notified() => {
                    // A read-modify-write, so pushes that saw the flag still set
                    // are visible to the drain below.
                    self.shared.wake_pending.swap(false, Ordering::AcqRel);
                    self.drain(Drain::FullBatches).await;
                }
                _ = ticker.tick() => {
                    // Checked before draining: once no handle is left, nothing
                    // can be pushed after this drain.
                    let orphaned = Arc::strong_count(&self.shared) == 1;
                    self.drain(if orphaned { Drain::Everything } else { Drain::Queued }).await;
                    if orphaned {
                        return;
                    }
                }
            }
        }
        self.drain(Drain::Everything).await;
    }

    async fn drain(&self, mode: Drain) {
        let mut left = match mode {
            Drain::Queued => self.shared.queue.len(),
            Drain::FullBatches | Drain::Everything => usize::MAX,
        };
        loop {
            let queued = self.shared.queue.len();
            let worth_writing = match mode {
                Drain::FullBatches => queued >= self.rows_per_insert,
                Drain::Queued | Drain::Everything => queued > 0 && left > 0,
            };
            if !worth_writing {
                return;
            }
            let size = self.rows_per_insert.min(left);
            let mut batch = Vec::with_capacity(queued.min(size));
            while batch.len() < size {
                match self.shared.queue.pop() {
                    Some(record) => batch.push(record),
                    None => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            left -= batch.len();
            self.shared.in_flight.store(batch.len(), Ordering::Release);
            self.write(&batch).await;
            self.shared.in_flight.store(0, Ordering::Release);
        }
    }

    /// Writes one batch, retrying once; counts it as written or dropped.
    async fn write(&self, batch: &[LogEntry]) {
        let rows = batch.len() as u64;
        let result = match self.attempt(batch).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %ErrorChain(&error), rows, "request log write failed; retrying once");
                tokio::time::sleep(RETRY_DELAY).await;
                self.attempt(batch).await
            }
        };
        match result {
            Ok(()) => {
                self.shared.written.fetch_add(rows, Ordering::Relaxed);
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("request log writes recovered");
                }
            }
            Err(error) => {
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                self.shared.dropped.fetch_add(rows, Ordering::Relaxed);
                if self.failing.swap(true, Ordering::Relaxed) {
                    tracing::debug!(error = %ErrorChain(&error), rows, "request log batch dropped");
                } else {
                    tracing::error!(
                        error = %ErrorChain(&error),
                        rows,
                        "request log writes failing; dropping batches until the database recovers"
                    );
                }
            }
        }
    }

    /// One transaction writing the batch's rows, rollups and bodies; a
    /// timed-out attempt is rolled back when its transaction is dropped.
    async fn attempt(&self, batch: &[LogEntry]) -> Result<(), StoreError> {
        tokio::time::timeout(self.write_timeout, self.store.insert_log_entries(batch))
            .await
            .unwrap_or(Err(StoreError::Timeout(self.write_timeout)))
    }

    /// Shutdown ran out of time: count the batch in flight and the queue as dropped.
    fn abandon_unwritten(&self) {
        let mut lost = self.shared.in_flight.swap(0, Ordering::AcqRel) as u64;
        while self.shared.queue.pop().is_some() {
            lost += 1;
        }
        self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(
                dropped = lost,
                "request log shutdown timed out; unwritten records dropped"
            );
        }
    }
}

/// Resolves once shutdown is requested.
async fn shutdown_requested(shutdown: &mut watch::Receiver<Option<Instant>>) {
    // The sender lives in `Shared`, which this task keeps alive: no error here.
    let _ = shutdown.wait_for(Option::is_some).await;
}

/// Resolves at the shutdown deadline; never before shutdown is requested.
async fn shutdown_deadline(mut shutdown: watch::Receiver<Option<Instant>>) {
    let deadline = shutdown
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|requested| *requested);
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

//! A small, runtime-agnostic pool of worker threads for CPU-heavy credential work.
//!
//! Password hashing takes tens of milliseconds of pure CPU; running it on an async executor
//! thread would stall every other task scheduled there. The pool runs it on its own
//! `std::thread`s instead and hands the result back through a [`oneshot`] future that any
//! executor (or none: it is a plain [`Future`]) can await.
//!
//! Memory stays bounded under a flood: at most `workers` tasks run at once and at most
//! `max_queued` wait; a submission beyond that is refused at once with [`SubmitError::Busy`]
//! instead of growing a queue.
//!
//! Dropping the pool stops it: tasks still queued are discarded (their futures resolve to
//! [`oneshot::Canceled`]) and each worker exits after finishing the task it is running.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A unit of work for a worker thread.
type Task = Box<dyn FnOnce() + Send + 'static>;

/// Why a task could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// Every worker is busy and the queue is full.
    Busy,
    /// The workers are gone (the pool is shutting down).
    Closed,
}

/// State shared by the pool handle and its workers.
struct Shared {
    queue: Mutex<Receiver<Task>>,
    shutting_down: AtomicBool,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    completed: AtomicU64,
    live_workers: AtomicUsize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Receiver<Task>> {
        // The lock only guards `recv`; a poisoned lock holds no broken invariant.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixed set of worker threads fed from a bounded queue.
pub(crate) struct WorkerPool {
    sender: Option<SyncSender<Task>>,
    shared: Arc<Shared>,
}

impl WorkerPool {
    /// Starts `workers` threads (named `{name}-{i}`) behind a queue of `max_queued` slots.
    pub(crate) fn start(name: &str, workers: usize, max_queued: usize) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel::<Task>(max_queued);
        let shared = Arc::new(Shared {
            queue: Mutex::new(receiver),
            shutting_down: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            live_workers: AtomicUsize::new(0),
        });
        let pool = Self {
            sender: Some(sender),
            shared,
        };
        for index in 0..workers {
            let shared = Arc::clone(&pool.shared);
            shared.live_workers.fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || worker_loop(&shared));
            if let Err(error) = spawned {
                pool.shared.live_workers.fetch_sub(1, Ordering::SeqCst);
                // Dropping `pool` stops the workers already started.
                return Err(error);
            }
        }
        Ok(pool)
    }

    /// Queues `work` and returns a future for its result, or refuses at once when the queue
    /// is full. `work` (and everything it captured) is dropped without running if the pool
    /// shuts down or the returned future is dropped before a worker picks it up.
    pub(crate) fn submit<T, F>(&self, work: F) -> Result<oneshot::Receiver<T>, SubmitError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        let (reply, receiver) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let task: Task = Box::new(move || {
            if reply.is_canceled() {
                // Nobody is waiting any more: skip the work.
                return;
            }
            // Account before replying, so a caller that sees the result sees the counters.
            let running = RunningGuard::enter(&shared);
            let value = work();
            drop(running);
            shared.completed.fetch_add(1, Ordering::SeqCst);
            reply.send(value);
        });
        match sender.try_send(task) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => Err(SubmitError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Closed),
        }
    }

    /// Most tasks observed running at the same moment since the pool started.
    #[cfg(test)]
    pub(crate) fn peak_running(&self) -> usize {
        self.shared.peak_running.load(Ordering::SeqCst)
    }

    /// Tasks that finished running (skipped ones are not counted).
    #[cfg(test)]
    pub(crate) fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// A handle that can observe the workers after the pool is dropped.
    #[cfg(test)]
    pub(crate) fn watch(&self) -> PoolWatch {
        PoolWatch(Arc::clone(&self.shared))
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        // Closing the channel wakes every idle worker with an error, so they exit.
        self.sender = None;
    }
}

/// Observes a pool's workers from a test, even after the pool is dropped.
#[cfg(test)]
pub(crate) struct PoolWatch(Arc<Shared>);

#[cfg(test)]
impl PoolWatch {
    /// Worker threads that have not exited yet.
    pub(crate) fn live_workers(&self) -> usize {
        self.0.live_workers.load(Ordering::SeqCst)
    }
}

/// Counts a task as running while alive (also when the task unwinds).
struct RunningGuard<'a>(&'a Shared);

impl<'a> RunningGuard<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now_running = shared.running.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_running.fetch_max(now_running, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worker_loop(shared: &Shared) {
    loop {
        // Hold the queue lock only while waiting for the next task.
        let next = shared.queue().recv();
        let Ok(task) = next else {
            break;
        };
        if shared.shutting_down.load(Ordering::SeqCst) {
            // Drop queued work without running it; its future resolves to `Canceled`.
            drop(task);
            continue;
        }
        // A panicking task must not take the worker down with it; its future resolves to
        // `Canceled` because the reply sender is dropped while unwinding.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(task));
    }
    shared.live_workers.fetch_sub(1, Ordering::SeqCst);
}

/// A single-value channel whose receiving half is a [`Future`], built on `Mutex` + `Waker`.
pub(crate) mod oneshot {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::task::{Context, Poll, Waker};

    /// The sending half was dropped without sending a value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Canceled;

    struct State<T> {
        value: Option<T>,
        waker: Option<Waker>,
        sender_gone: bool,
        receiver_gone: bool,
    }

    struct Inner<T> {
        state: Mutex<State<T>>,
    }

    impl<T> Inner<T> {
        fn lock(&self) -> MutexGuard<'_, State<T>> {
            // Every critical section is a few field writes that cannot panic halfway.
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// Creates a connected sender and receiver.
    pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                value: None,
                waker: None,
                sender_gone: false,
                receiver_gone: false,
            }),
        });
        (
            Sender {
                inner: Some(Arc::clone(&inner)),
            },
            Receiver { inner },
        )
    }

    /// Sends one value; dropping it unsent resolves the receiver to [`Canceled`].
    pub(crate) struct Sender<T> {
        inner: Option<Arc<Inner<T>>>,
    }

    impl<T> Sender<T> {
        /// Delivers the value and wakes the receiver.
        pub(crate) fn send(mut self, value: T) {
            if let Some(inner) = self.inner.take() {
                let waker = {
                    let mut state = inner.lock();
                    state.value = Some(value);
                    state.sender_gone = true;
                    state.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }

        /// Whether the receiver was dropped (the result is no longer wanted).
        pub(crate) fn is_canceled(&self) -> bool {
            self.inner
                .as_ref()
                .is_none_or(|inner| inner.lock().receiver_gone)
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            if let Some(inner) = self.inner.take() {
                let waker = {
                    let mut state = inner.lock();
                    state.sender_gone = true;
                    state.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }
    }

    /// Resolves to the sent value, or to [`Canceled`] if the sender was dropped unsent.
    pub(crate) struct Receiver<T> {
        inner: Arc<Inner<T>>,
    }

    impl<T> Future for Receiver<T> {
        type Output = Result<T, Canceled>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut state = self.inner.lock();
            if let Some(value) = state.value.take() {
                return Poll::Ready(Ok(value));
            }
            if state.sender_gone {
                return Poll::Ready(Err(Canceled));
            }
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            let mut state = self.inner.lock();
            state.receiver_gone = true;
            state.waker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    #[tokio::test]
    async fn delivers_results() {
        let pool = WorkerPool::start("test", 2, 4).unwrap();
        let a = pool.submit(|| 2 + 2).unwrap();
        let b = pool.submit(|| "done").unwrap();
        assert_eq!(a.await, Ok(4));
        assert_eq!(b.await, Ok("done"));
        assert_eq!(pool.completed(), 2);
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_one_worker_runs_one_task() {
        let pool = WorkerPool::start("test", 1, 1).unwrap();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let (started_tx, started_rx) = std_mpsc::channel::<()>();
        // Occupy the only worker until released.
        let first = pool
            .submit(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                1
            })
            .unwrap();
        started_rx.recv().unwrap();
        // One slot in the queue.
        let second = pool.submit(|| 2).unwrap();
        // Everything else is refused without waiting.
        for _ in 0..10 {
            let started = Instant::now();
            assert_eq!(pool.submit(|| 3).err(), Some(SubmitError::Busy));
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        release_tx.send(()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(first), Ok(1));
        assert_eq!(runtime.block_on(second), Ok(2));
        assert_eq!(pool.peak_running(), 1);
    }

    #[test]
    fn a_panicking_task_cancels_its_future_but_keeps_the_worker() {
        let pool = WorkerPool::start("test", 1, 2).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let boom = pool.submit(|| -> u8 { panic!("boom") }).unwrap();
        assert_eq!(runtime.block_on(boom), Err(oneshot::Canceled));
        let fine = pool.submit(|| 7u8).unwrap();
        assert_eq!(runtime.block_on(fine), Ok(7));
    }

    #[test]
    fn dropping_the_pool_stops_the_workers_and_cancels_queued_work() {
        let pool = WorkerPool::start("test", 2, 8).unwrap();
        let watch = pool.watch();
        assert!(wait_until(|| watch.live_workers() == 2));
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let (started_tx, started_rx) = std_mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut busy = Vec::new();
        for _ in 0..2 {
            let release_rx = Arc::clone(&release_rx);
            let started_tx = started_tx.clone();
            busy.push(
                pool.submit(move || {
                    started_tx.send(()).unwrap();
                    release_rx.lock().unwrap().recv().unwrap();
                })
                .unwrap(),
            );
        }
        started_rx.recv().unwrap();
        started_rx.recv().unwrap();
        let queued = pool.submit(|| 5).unwrap();
        drop(pool);
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for done in busy {
            assert_eq!(runtime.block_on(done), Ok(()));
        }
        assert_eq!(runtime.block_on(queued), Err(oneshot::Canceled));
        assert!(wait_until(|| watch.live_workers() == 0));
    }

    #[test]
    fn work_whose_future_was_dropped_is_skipped() {
        let pool = WorkerPool::start("test", 1, 4).unwrap();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let (started_tx, started_rx) = std_mpsc::channel::<()>();
        let blocker = pool
            .submit(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
            .unwrap();
        started_rx.recv().unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let abandoned = pool
            .submit(move || flag.store(true, Ordering::SeqCst))
            .unwrap();
        drop(abandoned);
        release_tx.send(()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(blocker).unwrap();
        let after = pool.submit(|| ()).unwrap();
        runtime.block_on(after).unwrap();
        assert!(!ran.load(Ordering::SeqCst));
    }
}

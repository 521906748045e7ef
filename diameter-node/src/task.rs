//! Running a future on the caller's task until it has to wait.
//!
//! Most of the node's work (a handler that answers at once, a forward to an open peer) is
//! done by the time it is first polled, and a task of its own would only cost a hand-off.
//! The rest waits — for a peer's answer, a timer, a store — and then needs a task. Spawned
//! as soon as it waits, that task is scheduled at once only to find nothing ready: tokio
//! puts it in the worker's next-task slot, pushes out what was there (often the writer that
//! is to send the very request the future waits on) and, on a multi-thread runtime, wakes
//! an idle worker to take that. On a two-CPU virtual machine such a wake-up costs tens of
//! microseconds of the request's latency. [`run_here`] instead spawns the future when it
//! is woken, from the waking thread: by then it is ready to go on, and the worker that woke
//! it (usually the reader that received the answer) runs it next, with no other worker
//! woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// A future with nothing to return, boxed to be parked.
pub type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Polls `task` here; if it waits, it is spawned on the current tokio runtime when it is
/// first woken (from the thread that wakes it), and runs as a task of its own from then on.
///
/// Must be called from within a tokio runtime (it keeps the runtime's handle to spawn on).
/// A future that waits on something never woken is never spawned and never dropped (as a
/// task never woken would stay in the runtime until it shuts down): the node's own waits
/// all end, with an answer or a deadline.
pub fn run_here(mut task: BoxedTask) {
    let parked = Arc::new(Parked {
        runtime: tokio::runtime::Handle::current(),
        state: Mutex::new(State::Polling),
    });
    let waker = Waker::from(parked.clone());
    if task
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready()
    {
        return;
    }
    let mut state = parked.lock();
    match std::mem::replace(&mut *state, State::Spawned) {
        // Woken while it was being polled: it can go on now.
        State::Woken => {
            drop(state);
            parked.runtime.spawn(task);
        }
        _ => *state = State::Waiting(task),
    }
}

/// The waker of a future [`run_here`] parked.
struct Parked {
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
}

enum State {
    /// Being polled by [`run_here`].
    Polling,
    /// Woken during that poll.
    Woken,
    /// Parked: the first wake spawns it.
    Waiting(BoxedTask),
    /// Handed to the runtime: later wakes through this waker (registrations the task has
    /// not renewed yet) are the task's own business.
    Spawned,
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing runs under the lock that can panic; a poisoned lock still holds a state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, State::Spawned) {
            State::Waiting(task) => {
                drop(state);
                self.runtime.spawn(task);
            }
            State::Polling | State::Woken => *state = State::Woken,
            State::Spawned => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;
    use std::time::Duration;

    #[tokio::test]
    async fn a_ready_future_runs_here() {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        run_here(Box::pin(async move {
            d.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_future_goes_on_when_woken() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        run_here(Box::pin(async move {
            let v = rx.await.unwrap_or(0);
            // Waits again, now as a task of its own.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let _ = done_tx.send(v + 1);
        }));
        // Woken from a thread outside the runtime.
        std::thread::spawn(move || tx.send(41).unwrap())
            .join()
            .unwrap();
        assert_eq!(done_rx.await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_future_woken_while_polled_is_spawned() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let mut once = false;
        run_here(Box::pin(async move {
            std::future::poll_fn(|cx| {
                if once {
                    return Poll::Ready(());
                }
                once = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            let _ = done_tx.send(());
        }));
        tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .expect("spawned")
            .unwrap();
    }
}

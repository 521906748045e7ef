//! Opt-in busy polling for a current-thread tokio runtime: after each burst of work the
//! runtime keeps asking the kernel for socket events without sleeping, for a window,
//! before it blocks in `epoll_wait` again.
//!
//! Why: on a virtual machine a thread that blocks lets its vCPU halt, and waking a halted
//! vCPU costs tens of microseconds (a hypervisor exit) — on this project's 2-vCPU host the
//! loopback round trip is 15–80 µs, almost all of it wake-ups. A relay at low load pays two
//! of them per relayed transaction. Polling through the short gaps between messages removes
//! them, at the price of one CPU kept busy while traffic flows. It is the user-space
//! counterpart of the kernel's `SO_BUSY_POLL`, which polls a network card's receive queue
//! and so does nothing for loopback.
//!
//! The window ends when the node has read no message for `window`; the poller then sleeps
//! until the runtime next wakes from a blocking park (an I/O event or a timer), so an idle
//! node costs nothing but a window's polling per timer tick. Off unless configured: an
//! operator chooses to trade a CPU for latency.
//!
//! ```no_run
//! # use std::time::Duration;
//! let busy = diameter_node::busy_poll::BusyPoll::new(Duration::from_micros(200));
//! let mut builder = tokio::runtime::Builder::new_current_thread();
//! busy.install(&mut builder);
//! let rt = builder.enable_all().build().unwrap();
//! rt.block_on(async {
//!     busy.spawn();
//!     // … start the node …
//! });
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Messages read by any node in this process; the poller watches it to know the node
/// still has traffic. A time gap between polls would be a poor sign of work on a virtual
/// machine, where a single empty poll now and then takes several microseconds.
static ACTIVITY: AtomicU64 = AtomicU64::new(0);

/// Tells the poller there is traffic. The node calls it for every message it reads; an
/// application polling sockets of its own calls it for what it reads.
#[inline]
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// Busy polling for one current-thread runtime. See the module documentation.
#[derive(Clone, Debug)]
pub struct BusyPoll {
    window: Duration,
    woken: Arc<Notify>,
}

impl BusyPoll {
    /// Poll for `window` after the last message read before sleeping.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            woken: Arc::new(Notify::new()),
        }
    }

    /// The polling window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Hooks the runtime's wake-ups so a sleeping poller restarts with whatever woke the
    /// runtime (it goes back to sleep after a window if that was not traffic). Call on the
    /// builder of the runtime the poller will run on.
    pub fn install<'b>(
        &self,
        builder: &'b mut tokio::runtime::Builder,
    ) -> &'b mut tokio::runtime::Builder {
        let woken = self.woken.clone();
        // Runs only after a blocking park, never between the poller's zero-timeout polls.
        builder.on_thread_unpark(move || woken.notify_one())
    }

    /// Starts the poller on the current runtime (call from inside it).
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }

    async fn run(self) {
        loop {
            self.poll_until_quiet().await;
            // No message for a whole window: sleep until the runtime is woken by an event.
            self.woken.notified().await;
        }
    }

    /// Yields to the runtime until no message has been read for `window`. Each yield
    /// makes the current-thread scheduler poll its I/O driver with a zero timeout (tokio
    /// defers a yielded task until after that poll), so readers see new data at once.
    async fn poll_until_quiet(&self) {
        let mut seen = ACTIVITY.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        loop {
            tokio::task::yield_now().await;
            // Let another process waiting for this CPU run first: the client and server of
            // a small machine may share it, and they are what brings the next message.
            std::thread::yield_now();
            let now_seen = ACTIVITY.load(Ordering::Relaxed);
            if now_seen != seen {
                seen = now_seen;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= self.window {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// CPU time of the calling thread (Linux: first field of schedstat, in ns).
    fn thread_cpu() -> Duration {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
    }

    #[test]
    fn polls_through_the_window_then_sleeps_then_carries_traffic() {
        let busy = BusyPoll::new(Duration::from_millis(50));
        let mut builder = tokio::runtime::Builder::new_current_thread();
        busy.install(&mut builder);
        let rt = builder.enable_all().build().unwrap();
        rt.block_on(async {
            busy.spawn();
            // Inside the window the thread polls instead of sleeping: a 30 ms timer wait
            // costs CPU. A sleeping thread spends some tens of microseconds on it; the bound
            // is ten times that, lenient because a loaded host (CI runs test binaries beside
            // each other, and builds) deschedules us: 1.9 ms was seen at load 10.
            let t0 = thread_cpu();
            tokio::time::sleep(Duration::from_millis(30)).await;
            let polling = thread_cpu() - t0;
            assert!(
                polling >= Duration::from_micros(500),
                "polled only {polling:?}"
            );

            // After a quiet window it sleeps: over 300 ms idle at most one more window
            // (the timer's own wake-up starts one) is spent polling.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let t1 = thread_cpu();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let idle = thread_cpu() - t1;
            assert!(
                idle < Duration::from_millis(120),
                "idle runtime used {idle:?}"
            );

            // Traffic still flows while it polls: a socket-pair ping-pong.
            let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
            let echo = tokio::spawn(async move {
                let mut buf = [0u8; 8];
                let mut n = 0u64;
                while b.read_exact(&mut buf).await.is_ok() {
                    note_activity();
                    b.write_all(&buf).await.unwrap();
                    n += 1;
                }
                n
            });
            let mut buf = [0u8; 8];
            for i in 0..1000u64 {
                a.write_all(&i.to_be_bytes()).await.unwrap();
                a.read_exact(&mut buf).await.unwrap();
                assert_eq!(u64::from_be_bytes(buf), i);
            }
            drop(a);
            assert_eq!(echo.await.unwrap(), 1000);
        });
    }
}

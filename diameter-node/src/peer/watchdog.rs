//! The transport failure detection of RFC 3539 §3.4 (Diameter's DWR/DWA, RFC 6733 §5.5):
//! states INITIAL, OKAY, SUSPECT, DOWN and REOPEN, with a jittered Tw timer.
//!
//! This type only decides; the [`Peer`](super::Peer) sends the DWRs and closes connections.

use std::time::{Duration, Instant};

/// Watchdog states (RFC 3539 §3.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchdogState {
    /// No connection has been open yet (or the last one was closed on purpose, by DPR).
    Initial,
    /// The connection works.
    Okay,
    /// No answer to a DWR within Tw: requests fail over, the connection stays.
    Suspect,
    /// The connection failed; after a reconnect it must prove itself in REOPEN.
    Down,
    /// Reconnected after a failure: three DWAs are needed before OKAY.
    Reopen,
}

/// What the watchdog asks the peer to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WdAction {
    /// SendWatchdog(): send a DWR.
    SendDwr,
    /// Failover(): OKAY → SUSPECT.
    Failover,
    /// Failback(): SUSPECT → OKAY, or REOPEN → OKAY after the third DWA; the first open
    /// (INITIAL → OKAY) reports this too.
    Failback,
    /// CloseConnection(): SUSPECT or REOPEN timed out → DOWN.
    Close,
}

/// A small deterministic generator (SplitMix64) for the jitter, seeded by the configuration
/// so that tests are reproducible.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// RFC 3539 §3.4.1: the timer is Tw plus a jitter of up to ±2 s.
const JITTER_MS: u64 = 2000;

#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    state: WatchdogState,
    /// A DWR is outstanding.
    pending: bool,
    /// DWAs received in REOPEN; −1 after one silent Tw.
    num_dwa: i8,
    deadline: Option<Instant>,
    /// When the timer was last set: traffic older than this is already accounted for.
    set_at: Option<Instant>,
    tw: Duration,
    rng: SplitMix64,
}

impl Watchdog {
    /// `tw` must already be clamped to at least 6 s.
    pub(crate) fn new(tw: Duration, seed: u64) -> Self {
        Self {
            state: WatchdogState::Initial,
            pending: false,
            num_dwa: 0,
            deadline: None,
            set_at: None,
            tw,
            rng: SplitMix64::new(seed),
        }
    }

    pub(crate) fn state(&self) -> WatchdogState {
        self.state
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// SetWatchdog(): Tw ± 2 s from now.
    fn set_watchdog(&mut self, now: Instant) {
        self.set_at = Some(now);
        let j = self.rng.next_u64() % (2 * JITTER_MS + 1);
        let t = self.tw + Duration::from_millis(j);
        // `tw` ≥ 6 s, so subtracting 2 s never underflows.
        self.deadline = Some(now + t.saturating_sub(Duration::from_millis(JITTER_MS)));
    }

    /// The peer restarted (its Origin-State-Id changed): what we knew of its old connection's
    /// health says nothing about the new one, so the next "Connection up" starts as a first
    /// one (INITIAL → OKAY) instead of proving itself with three DWAs in REOPEN.
    pub(crate) fn forget(&mut self) {
        self.state = WatchdogState::Initial;
        self.pending = false;
        self.num_dwa = 0;
        self.deadline = None;
        self.set_at = None;
    }

    /// The capabilities exchange completed on a new connection ("Connection up").
    pub(crate) fn on_open(&mut self, now: Instant) -> Option<WdAction> {
        self.pending = false;
        self.set_watchdog(now);
        match self.state {
            // RFC 3539 §3.4.1: DOWN, "Connection up" → NumDWA = 0, SendWatchdog(),
            // Pending = TRUE, REOPEN.
            WatchdogState::Down | WatchdogState::Reopen | WatchdogState::Suspect => {
                self.state = WatchdogState::Reopen;
                self.num_dwa = 0;
                self.pending = true;
                Some(WdAction::SendDwr)
            }
            // INITIAL, "Connection up" → SetWatchdog(), OKAY.
            WatchdogState::Initial | WatchdogState::Okay => {
                self.state = WatchdogState::Okay;
                Some(WdAction::Failback)
            }
        }
    }

    /// Application messages arrived on the open connection without passing through the state
    /// machine (the driver's express lane), the latest at `at`. Counts as a non-DWA receive
    /// unless the timer was set since.
    pub(crate) fn on_traffic(&mut self, at: Instant) -> Option<WdAction> {
        let fresh = self.set_at.is_none_or(|s| at > s);
        match self.state {
            WatchdogState::Okay | WatchdogState::Suspect if fresh => self.on_receive(at, false),
            _ => None,
        }
    }

    /// A message arrived on the open connection; `is_dwa` when it answers our outstanding DWR.
    pub(crate) fn on_receive(&mut self, now: Instant, is_dwa: bool) -> Option<WdAction> {
        match self.state {
            WatchdogState::Okay => {
                // RFC 3539 §3.4.1: OKAY, receive DWA or non-DWA → SetWatchdog(). Any traffic
                // also clears Pending here: it proves the peer is alive as well as a DWA
                // does, so a lost DWA while traffic flows causes no failover (faults.md).
                self.pending = false;
                self.set_watchdog(now);
                None
            }
            WatchdogState::Suspect => {
                // SUSPECT, receive DWA or non-DWA → Failback(), SetWatchdog(), OKAY.
                self.pending = false;
                self.state = WatchdogState::Okay;
                self.set_watchdog(now);
                Some(WdAction::Failback)
            }
            WatchdogState::Reopen if is_dwa => {
                // REOPEN, receive DWA → Pending = FALSE, NumDWA++; the third one → OKAY.
                self.pending = false;
                self.num_dwa += 1;
                if self.num_dwa >= 3 {
                    self.state = WatchdogState::Okay;
                    self.set_watchdog(now);
                    Some(WdAction::Failback)
                } else {
                    // Our one deviation from RFC 3539's timing: the next DWR goes as soon as
                    // a DWA arrives instead of a Tw later. Three consecutive exchanges still
                    // prove the connection, but a reconnected peer is back in service after
                    // three round trips rather than about 3·Tw (90 s by default), during
                    // which its requests would be thrown away.
                    self.pending = true;
                    self.set_watchdog(now);
                    Some(WdAction::SendDwr)
                }
            }
            // REOPEN, non-DWA → Throwaway() (the peer decides whether to deliver it).
            WatchdogState::Reopen | WatchdogState::Initial | WatchdogState::Down => None,
        }
    }

    /// The Tw timer, if due.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Option<WdAction> {
        if self.deadline.is_none_or(|d| d > now) {
            return None;
        }
        self.deadline = None;
        match self.state {
            WatchdogState::Okay if !self.pending => {
                // OKAY, timer expires && !Pending → SendWatchdog(), SetWatchdog(), Pending.
                self.pending = true;
                self.set_watchdog(now);
                Some(WdAction::SendDwr)
            }
            WatchdogState::Okay => {
                // OKAY, timer expires && Pending → Failover(), SetWatchdog(), SUSPECT.
                self.state = WatchdogState::Suspect;
                self.set_watchdog(now);
                Some(WdAction::Failover)
            }
            WatchdogState::Suspect => {
                // SUSPECT, timer expires → CloseConnection(), DOWN.
                self.state = WatchdogState::Down;
                Some(WdAction::Close)
            }
            WatchdogState::Reopen if !self.pending => {
                // REOPEN, timer expires && !Pending → SendWatchdog(), SetWatchdog(), Pending.
                self.pending = true;
                self.set_watchdog(now);
                Some(WdAction::SendDwr)
            }
            WatchdogState::Reopen if self.num_dwa < 0 => {
                // REOPEN, timer expires && Pending && NumDWA < 0 → CloseConnection(), DOWN.
                self.state = WatchdogState::Down;
                Some(WdAction::Close)
            }
            WatchdogState::Reopen => {
                // REOPEN, timer expires && Pending && NumDWA ≥ 0 → NumDWA = −1, SetWatchdog().
                self.num_dwa = -1;
                self.set_watchdog(now);
                None
            }
            // Reconnection in DOWN is driven by the peer's Tc timer.
            WatchdogState::Initial | WatchdogState::Down => None,
        }
    }

    /// The connection is gone. `graceful` for a DPR/DPA exchange or a local stop: the next
    /// connection starts from INITIAL. Otherwise RFC 3539 §3.4.1 "Connection down" → DOWN,
    /// and the next connection must pass REOPEN.
    pub(crate) fn on_conn_down(&mut self, graceful: bool) {
        self.deadline = None;
        self.pending = false;
        self.state = match (graceful, self.state) {
            (true, _) => WatchdogState::Initial,
            (false, WatchdogState::Initial) => WatchdogState::Initial,
            (false, _) => WatchdogState::Down,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_two_seconds() {
        let now = Instant::now();
        let mut wd = Watchdog::new(Duration::from_secs(6), 42);
        let mut seen = (Duration::MAX, Duration::ZERO);
        for _ in 0..1000 {
            wd.set_watchdog(now);
            let d = wd.deadline().unwrap() - now;
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
            seen = (seen.0.min(d), seen.1.max(d));
        }
        // The jitter really varies.
        assert!(seen.0 < Duration::from_millis(4500) && seen.1 > Duration::from_millis(7500));
    }

    #[test]
    fn reopen_needs_three_dwas() {
        let t0 = Instant::now();
        let mut wd = Watchdog::new(Duration::from_secs(30), 1);
        wd.state = WatchdogState::Down;
        assert_eq!(wd.on_open(t0), Some(WdAction::SendDwr));
        assert_eq!(wd.on_receive(t0, false), None, "non-DWA does not count");
        // Each of the first two DWAs is followed at once by the next DWR.
        assert_eq!(wd.on_receive(t0, true), Some(WdAction::SendDwr));
        assert_eq!(wd.on_receive(t0, true), Some(WdAction::SendDwr));
        assert_eq!(wd.state(), WatchdogState::Reopen);
        assert_eq!(wd.on_receive(t0, true), Some(WdAction::Failback));
        assert_eq!(wd.state(), WatchdogState::Okay);
    }
}

//! The express lane of a peer: while the peer is open with its watchdog OKAY, application
//! messages skip the peer task. A connection's reader hands received requests and answers
//! straight to the node, and the node writes requests and answers straight to the open
//! connection's writer. Each skipped task hand-off is a wake-up, often a context switch, on
//! every message.
//!
//! The sans-IO peer stays the authority: its driver opens the lane when the state machine says
//! the peer takes traffic and closes it on any other state, and base-protocol messages (CER,
//! DWR, DPR and their answers) always go through it. Traffic that took the lane still counts
//! as liveness for the watchdog (RFC 3539 §3.4.1): the reader stamps the time here and the
//! driver gives it to the state machine before it looks at its timers.

use super::conn::{ConnHandle, Refused};
use crate::peer::ConnId;
use crate::peer::codes::{CMD_CER, CMD_DPR, CMD_DWR};
use bytes::Bytes;
use diameter_codec::Message;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Base-protocol commands the peer state machine must see (RFC 6733 §5): CER/CEA, DWR/DWA
/// and DPR/DPA.
const PSM_COMMANDS: [u32; 3] = [CMD_CER, CMD_DWR, CMD_DPR];

/// Shared by a peer's driver, its connections' readers and the node.
#[derive(Debug)]
pub(crate) struct ExpressLane {
    epoch: Instant,
    /// `ConnId + 1` of the connection the lane carries; 0 while closed.
    conn: AtomicU64,
    writer: RwLock<Option<ConnHandle>>,
    /// When the last message took the lane, in nanoseconds after `epoch`.
    last_rx: AtomicU64,
}

impl ExpressLane {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            conn: AtomicU64::new(0),
            writer: RwLock::new(None),
            last_rx: AtomicU64::new(0),
        }
    }

    /// Carry application messages of `conn`, written with `writer`.
    pub(crate) fn open(&self, conn: ConnId, writer: ConnHandle) {
        *self.writer.write().expect("lane lock") = Some(writer);
        self.conn.store(conn.0 + 1, Ordering::Release);
    }

    /// Everything goes through the peer task again.
    pub(crate) fn close(&self) {
        self.conn.store(0, Ordering::Release);
        *self.writer.write().expect("lane lock") = None;
    }

    /// The connection the lane carries, while open.
    pub(crate) fn conn(&self) -> Option<ConnId> {
        self.conn.load(Ordering::Acquire).checked_sub(1).map(ConnId)
    }

    /// Whether `msg`, read on `conn`, takes the lane; if so its arrival is stamped.
    pub(crate) fn admit(&self, conn: ConnId, msg: &Message) -> bool {
        if self.conn.load(Ordering::Acquire) != conn.0 + 1
            || PSM_COMMANDS.contains(&msg.header().command_code)
        {
            return false;
        }
        let t = self.epoch.elapsed().as_nanos() as u64;
        self.last_rx.fetch_max(t, Ordering::Release);
        true
    }

    /// When a message last took the lane, if one ever did.
    pub(crate) fn last_rx(&self) -> Option<Instant> {
        match self.last_rx.load(Ordering::Acquire) {
            0 => None,
            t => Some(self.epoch + Duration::from_nanos(t)),
        }
    }

    /// Writes `bytes` on the open connection. They come back when the lane is closed, and a
    /// request also when the connection's write queue is over its budget (answers are
    /// queued whatever the budget: see `conn`).
    pub(crate) fn send(&self, bytes: Bytes) -> Result<(), Refused> {
        let writer = self.writer.read().expect("lane lock");
        match writer.as_ref() {
            Some(w) if is_request(&bytes) => w.send_request(bytes),
            Some(w) => w.send(bytes).map_err(Refused::Closed),
            None => Err(Refused::Closed(bytes)),
        }
    }
}

/// The R bit of an encoded message's header (RFC 6733 §3).
pub(crate) fn is_request(bytes: &[u8]) -> bool {
    bytes.get(4).is_some_and(|flags| flags & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::conn::WriteCmd;
    use bytes::BytesMut;
    use diameter_codec::{CommandFlags, MessageWriter};

    fn msg_flags(code: u32, flags: u8) -> Message {
        let mut buf = BytesMut::new();
        let w = MessageWriter::new(&mut buf, CommandFlags(flags), code, 4, 1, 1);
        let len = w.finish().unwrap();
        Message::from_bytes(buf.split_to(len).freeze()).unwrap()
    }

    fn msg(code: u32) -> Message {
        msg_flags(code, 0x80)
    }

    fn sent(r: Result<(), Refused>) -> Option<Bytes> {
        match r {
            Ok(()) => None,
            Err(Refused::Full(b) | Refused::Closed(b)) => Some(b),
        }
    }

    #[test]
    fn carries_only_application_messages_of_its_connection() {
        let lane = ExpressLane::new();
        let (h, mut rx) = ConnHandle::detached(1 << 20);
        let req = msg(272).as_bytes().clone();
        assert!(!lane.admit(ConnId(3), &msg(272)));
        assert!(lane.send(req.clone()).is_err());
        assert_eq!(lane.last_rx(), None);

        assert_eq!(lane.conn(), None);
        lane.open(ConnId(3), h);
        assert_eq!(lane.conn(), Some(ConnId(3)));
        assert!(lane.admit(ConnId(3), &msg(272)));
        assert!(lane.last_rx().is_some());
        assert!(!lane.admit(ConnId(4), &msg(272)));
        for base in PSM_COMMANDS {
            assert!(!lane.admit(ConnId(3), &msg(base)));
        }
        assert_eq!(sent(lane.send(req.clone())), None);
        assert!(matches!(rx.try_recv(), Ok(WriteCmd::Data(b)) if b == req));

        lane.close();
        assert_eq!(lane.conn(), None);
        assert!(!lane.admit(ConnId(3), &msg(272)));
        assert!(matches!(lane.send(req.clone()), Err(Refused::Closed(b)) if b == req));
    }

    #[test]
    fn over_budget_refuses_requests_and_queues_answers() {
        let lane = ExpressLane::new();
        let (h, _rx) = ConnHandle::detached(100);
        let queue = h.queue().clone();
        lane.open(ConnId(1), h);
        let req = msg(272).as_bytes().clone();
        let ans = msg_flags(272, 0).as_bytes().clone();
        // Within budget until more than 100 bytes are queued.
        let mut queued = 0;
        while queued <= 100 {
            assert_eq!(sent(lane.send(req.clone())), None);
            queued += req.len();
        }
        assert_eq!(queue.queued(), queued);
        assert!(queue.is_full());
        assert!(matches!(lane.send(req.clone()), Err(Refused::Full(_))));
        assert_eq!(sent(lane.send(ans.clone())), None);
        assert_eq!(queue.queued(), queued + ans.len());
    }
}

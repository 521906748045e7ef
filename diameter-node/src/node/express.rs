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

use super::conn::WriteCmd;
use crate::peer::ConnId;
use crate::peer::codes::{CMD_CER, CMD_DPR, CMD_DWR};
use bytes::Bytes;
use diameter_codec::Message;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Base-protocol commands the peer state machine must see (RFC 6733 §5): CER/CEA, DWR/DWA
/// and DPR/DPA.
const PSM_COMMANDS: [u32; 3] = [CMD_CER, CMD_DWR, CMD_DPR];

/// Shared by a peer's driver, its connections' readers and the node.
#[derive(Debug)]
pub(crate) struct ExpressLane {
    epoch: Instant,
    /// `ConnId + 1` of the connection the lane carries; 0 while closed.
    conn: AtomicU64,
    writer: RwLock<Option<mpsc::UnboundedSender<WriteCmd>>>,
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
    pub(crate) fn open(&self, conn: ConnId, writer: mpsc::UnboundedSender<WriteCmd>) {
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

    /// Writes `bytes` on the open connection, or gives them back when the lane is closed.
    pub(crate) fn send(&self, bytes: Bytes) -> Result<(), Bytes> {
        let writer = self.writer.read().expect("lane lock");
        match writer.as_ref() {
            Some(w) => w.send(WriteCmd::Data(bytes)).map_err(|e| match e.0 {
                WriteCmd::Data(b) => b,
                WriteCmd::Close => unreachable!("only data is sent here"),
            }),
            None => Err(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use diameter_codec::{CommandFlags, MessageWriter};

    fn msg(code: u32) -> Message {
        let mut buf = BytesMut::new();
        let w = MessageWriter::new(&mut buf, CommandFlags(0x80), code, 4, 1, 1);
        let len = w.finish().unwrap();
        Message::from_bytes(buf.split_to(len).freeze()).unwrap()
    }

    #[test]
    fn carries_only_application_messages_of_its_connection() {
        let lane = ExpressLane::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert!(!lane.admit(ConnId(3), &msg(272)));
        assert!(lane.send(Bytes::from_static(b"x")).is_err());
        assert_eq!(lane.last_rx(), None);

        assert_eq!(lane.conn(), None);
        lane.open(ConnId(3), tx);
        assert_eq!(lane.conn(), Some(ConnId(3)));
        assert!(lane.admit(ConnId(3), &msg(272)));
        assert!(lane.last_rx().is_some());
        assert!(!lane.admit(ConnId(4), &msg(272)));
        for base in PSM_COMMANDS {
            assert!(!lane.admit(ConnId(3), &msg(base)));
        }
        lane.send(Bytes::from_static(b"y")).unwrap();
        assert!(matches!(rx.try_recv(), Ok(WriteCmd::Data(b)) if &b[..] == b"y"));

        lane.close();
        assert_eq!(lane.conn(), None);
        assert!(!lane.admit(ConnId(3), &msg(272)));
        assert_eq!(
            lane.send(Bytes::from_static(b"z")),
            Err(Bytes::from_static(b"z"))
        );
    }
}

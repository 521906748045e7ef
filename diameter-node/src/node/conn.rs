//! One transport connection: a reader task that frames messages and hands them to the peer
//! task, and a writer task that batches queued messages into few writes.
//!
//! What is queued for writing is bounded in bytes ([`NodeConfig::write_queue_bytes`]): over
//! the budget, the reader stops reading (the peer meets TCP backpressure instead of our
//! memory), requests we would send on the connection are refused with 3004, and answers are
//! queued all the same (they are what the backpressure holds back). A writer that cannot
//! write a byte for [`NodeConfig::write_stall_timeout`] closes the connection, and the
//! reader goes with it.
//!
//! [`NodeConfig::write_queue_bytes`]: super::NodeConfig::write_queue_bytes
//! [`NodeConfig::write_stall_timeout`]: super::NodeConfig::write_stall_timeout

use super::Shared;
use super::express::ExpressLane;
use crate::capture::{CaptureConn, Direction};
use crate::framing::{DiameterCodec, Inbound, read_frame};
use crate::peer::ConnId;
use crate::transport::Stream;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

/// What a connection tells its peer task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// A framed message.
    Message(ConnId, diameter_codec::Message),
    /// The connection ended (EOF, error, or a framing violation).
    Closed(ConnId),
}

/// Commands to a connection's writer.
#[derive(Debug)]
pub(crate) enum WriteCmd {
    /// Write a whole message.
    Data(Bytes),
    /// Flush what is queued, then close.
    Close,
}

/// Most bytes the writer gathers for one write: enough to batch many small messages, while
/// a copy of the whole queue is never made at once.
const WRITE_CHUNK: usize = 256 * 1024;

/// What a connection has queued for writing and not yet written, against its budget. Shared
/// by whoever queues (the express lane, the peer task, the reader for error answers), the
/// writer, which drains it, and the reader, which waits on it.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    bytes: AtomicUsize,
    budget: usize,
    /// The writer ended (closed, failed or stalled): nothing more is written.
    closed: AtomicBool,
    /// The connection's reader, waiting for room or for the writer's end.
    reader: AtomicWaker,
}

impl WriteQueue {
    fn new(budget: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            budget,
            closed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        }
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Over the budget: the reader waits and requests are refused.
    pub(crate) fn is_full(&self) -> bool {
        self.queued() > self.budget
    }

    /// `n` queued bytes were written or dropped.
    fn drained(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::AcqRel);
        if before > self.budget && before - n <= self.budget {
            self.reader.wake();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// Whether the writer ended; if not, the reader is woken when it does.
    fn poll_closed(&self, cx: &Context<'_>) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return true;
        }
        self.reader.register(cx.waker());
        self.closed.load(Ordering::Acquire)
    }

    /// Waits until the queue is within its budget (true) or the writer ended (false).
    async fn room(&self) -> bool {
        std::future::poll_fn(|cx| {
            if self.poll_closed(cx) {
                return Poll::Ready(false);
            }
            // Registered above: a drain from here on wakes us.
            if !self.is_full() {
                return Poll::Ready(true);
            }
            Poll::Pending
        })
        .await
    }
}

/// Why a message was not queued.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue is over its budget (requests only).
    Full(Bytes),
    /// The connection's writer is gone.
    Closed(Bytes),
}

/// A handle on a connection's writer.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    tx: mpsc::UnboundedSender<WriteCmd>,
    queue: Arc<WriteQueue>,
}

impl ConnHandle {
    /// Queues a whole message whatever the budget: answers (held back by stopping the
    /// reader, never dropped) and base-protocol messages.
    pub(crate) fn send(&self, bytes: Bytes) -> Result<(), Bytes> {
        let n = bytes.len();
        self.queue.bytes.fetch_add(n, Ordering::AcqRel);
        self.tx.send(WriteCmd::Data(bytes)).map_err(|e| {
            self.queue.drained(n);
            match e.0 {
                WriteCmd::Data(b) => b,
                WriteCmd::Close => unreachable!("only data is sent here"),
            }
        })
    }

    /// Queues a request unless the queue is over its budget (the caller answers 3004,
    /// RFC 6733 §7.1.3).
    pub(crate) fn send_request(&self, bytes: Bytes) -> Result<(), Refused> {
        if self.queue.is_full() {
            return Err(Refused::Full(bytes));
        }
        self.send(bytes).map_err(Refused::Closed)
    }

    /// Asks the writer to write what is queued, then close.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(WriteCmd::Close);
    }

    /// The connection's queue.
    pub(crate) fn queue(&self) -> &Arc<WriteQueue> {
        &self.queue
    }

    /// A handle whose writer is the returned receiver (unit tests).
    #[cfg(test)]
    pub(crate) fn detached(budget: usize) -> (Self, mpsc::UnboundedReceiver<WriteCmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(WriteQueue::new(budget));
        (Self { tx, queue }, rx)
    }
}

/// Whose connection it is: the peer's host name, its task's event queue and its express lane.
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) host: Arc<str>,
    pub(crate) events: mpsc::Sender<ConnEvent>,
    pub(crate) lane: Arc<ExpressLane>,
}

/// Splits `stream` and starts its reader and writer tasks. Frames go to the owner.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    id: ConnId,
    stream: Stream,
    local_is_server: bool,
    owner: Owner,
) -> ConnHandle {
    let cap = capture_conn(shared, &stream, local_is_server);
    let (r, w) = tokio::io::split(stream);
    let rd = FramedRead::new(r, DiameterCodec::new(shared.cfg.limits));
    spawn_split(shared, id, rd, w, cap, owner)
}

/// The capture description of a connection, when capture is on.
pub(crate) fn capture_conn(
    shared: &Shared,
    stream: &Stream,
    local_is_server: bool,
) -> Option<CaptureConn> {
    shared
        .capture
        .as_ref()
        .and_then(|_| CaptureConn::from_stream(stream, local_is_server).ok())
}

/// As [`spawn`] for a connection already split (accepted connections, whose first frame the
/// acceptor read).
pub(crate) fn spawn_split(
    shared: &Arc<Shared>,
    id: ConnId,
    rd: FramedRead<ReadHalf<Stream>, DiameterCodec>,
    wr: WriteHalf<Stream>,
    cap: Option<CaptureConn>,
    owner: Owner,
) -> ConnHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = ConnHandle {
        tx,
        queue: Arc::new(WriteQueue::new(shared.cfg.write_queue_bytes)),
    };
    tokio::spawn(write_loop(
        shared.clone(),
        wr,
        rx,
        handle.queue.clone(),
        cap,
    ));
    tokio::spawn(read_loop(
        shared.clone(),
        id,
        rd,
        owner,
        handle.clone(),
        cap,
    ));
    handle
}

async fn read_loop(
    shared: Arc<Shared>,
    id: ConnId,
    mut rd: FramedRead<ReadHalf<Stream>, DiameterCodec>,
    owner: Owner,
    writer: ConnHandle,
    cap: Option<CaptureConn>,
) {
    let Owner { host, events, lane } = owner;
    let queue = writer.queue.clone();
    loop {
        // Backpressure: while what we queued for the peer is over budget, read nothing more
        // from it (its answers are not drained, so its requests wait in TCP, not here).
        if queue.is_full() && !queue.room().await {
            break;
        }
        // Whether this frame is the first of a burst (the read had to wait for it).
        let mut waited = false;
        let next = {
            let fut = read_frame(&mut rd, shared.cfg.frame_timeout);
            tokio::pin!(fut);
            std::future::poll_fn(|cx| {
                let p = fut.as_mut().poll(cx);
                if p.is_pending() {
                    waited = true;
                    // The writer ended (stalled, failed, closed): so does the connection.
                    if queue.poll_closed(cx) {
                        return Poll::Ready(None);
                    }
                }
                p.map(Some)
            })
            .await
        };
        let Some(next) = next else {
            tracing::debug!(conn = id.0, "connection writer ended");
            break;
        };
        match next {
            Ok(Some(Inbound::Message(m))) => {
                crate::busy_poll::note_activity();
                shared.record(cap.as_ref(), Direction::Received, m.as_bytes());
                if lane.admit(id, &m) {
                    // Straight to the node, on this task (see `express`).
                    if m.header().is_request() {
                        shared.on_request(&host, m);
                    } else {
                        shared.on_answer(&host, m);
                    }
                    if waited {
                        // Let the writer send what this first message produced (its
                        // answer, or the relayed copy) before the rest of the burst is
                        // handled: the peer starts waking up for it now instead of after
                        // the whole burst, which at a few requests in flight nearly
                        // doubled an echo server's throughput (BENCHMARKS.md, "Node echo").
                        tokio::task::yield_now().await;
                    }
                } else if events.send(ConnEvent::Message(id, m)).await.is_err() {
                    break;
                }
            }
            Ok(Some(Inbound::Malformed {
                header,
                bytes,
                error,
            })) => {
                shared.record(cap.as_ref(), Direction::Received, &bytes);
                // RFC 6733 §7.1.5: the frame is delimited, so the stream stays in sync; a
                // request gets its error answer here (5014 and friends), an answer is
                // dropped (answers are never answered).
                if header.is_request() {
                    let ans = crate::framing::malformed_answer(
                        &header,
                        &bytes,
                        &error,
                        &shared.identity,
                        shared.dict,
                    );
                    let _ = writer.send(ans.to_bytes());
                }
            }
            // Skipped, not fatal: the connection may carry others' traffic (see `size`).
            Ok(Some(Inbound::Oversize { header })) => shared.on_oversize(&host, &header, &writer),
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(conn = id.0, error = %e, "connection read ended");
                break;
            }
        }
    }
    writer.close();
    let _ = events.send(ConnEvent::Closed(id)).await;
}

async fn write_loop(
    shared: Arc<Shared>,
    mut wr: WriteHalf<Stream>,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    queue: Arc<WriteQueue>,
    cap: Option<CaptureConn>,
) {
    let stall = shared.cfg.write_stall_timeout;
    let mut batch = Vec::with_capacity(64);
    let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
    let mut end = Ok(());
    let mut close = false;
    'outer: while !close && rx.recv_many(&mut batch, 256).await > 0 {
        let mut cmds = batch.drain(..);
        loop {
            buf.clear();
            for cmd in cmds.by_ref() {
                match cmd {
                    WriteCmd::Data(b) => {
                        shared.record(cap.as_ref(), Direction::Sent, &b);
                        buf.extend_from_slice(&b);
                        if buf.len() >= WRITE_CHUNK {
                            break;
                        }
                    }
                    WriteCmd::Close => {
                        close = true;
                        break;
                    }
                }
            }
            if buf.is_empty() {
                break;
            }
            // Several messages, one write: what brings a node near the loopback limit
            // (performance.md).
            end = write_within(&mut wr, &buf, stall, &queue).await;
            if end.is_err() {
                for cmd in cmds {
                    if let WriteCmd::Data(b) = cmd {
                        queue.drained(b.len());
                    }
                }
                break 'outer;
            }
            if close {
                break;
            }
        }
        // A message larger than a chunk grew the buffer: give that memory back.
        if buf.capacity() > 4 * WRITE_CHUNK {
            buf = BytesMut::with_capacity(WRITE_CHUNK);
        }
    }
    // Nothing more is written: the reader ends the connection, senders are refused, and
    // what was still queued is dropped (requests on it are failed over by the peer task).
    queue.close();
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let WriteCmd::Data(b) = cmd {
            queue.drained(b.len());
        }
    }
    drop(rx);
    if let (Some(c), Some(capture)) = (cap, shared.capture.as_ref()) {
        let _ = capture.close(&c, Direction::Sent, SystemTime::now());
    }
    match end {
        // A TLS close_notify waits on the socket too: bounded like any write.
        Ok(()) => {
            let _ = tokio::time::timeout(stall, wr.shutdown()).await;
        }
        Err(WriteEnd::Stalled) => {
            tracing::warn!(
                after = ?stall,
                queued = queue.queued(),
                "peer not reading: nothing written for the write stall timeout, connection closed"
            );
        }
        Err(WriteEnd::Failed) => {}
    }
}

/// Why the writer stopped before it was asked to.
#[derive(Debug)]
enum WriteEnd {
    /// The socket failed.
    Failed,
    /// Not one byte was taken for the stall timeout.
    Stalled,
}

/// Writes all of `buf`, or gives up when the socket fails or takes nothing for `stall`.
/// Each byte written, or given up on, leaves the queue.
async fn write_within(
    wr: &mut WriteHalf<Stream>,
    buf: &[u8],
    stall: Duration,
    queue: &WriteQueue,
) -> Result<(), WriteEnd> {
    let mut done = 0;
    while done < buf.len() {
        // Most writes are taken at once: the stall timer is armed only for one that waits
        // (a write that returns Pending took nothing, so it can be retried).
        let r = match wr.write(&buf[done..]).now_or_never() {
            Some(r) => Ok(r),
            None => tokio::time::timeout(stall, wr.write(&buf[done..])).await,
        };
        let end = match r {
            Ok(Ok(n)) if n > 0 => {
                done += n;
                queue.drained(n);
                continue;
            }
            Ok(_) => WriteEnd::Failed,
            Err(_) => WriteEnd::Stalled,
        };
        queue.drained(buf.len() - done);
        return Err(end);
    }
    Ok(())
}

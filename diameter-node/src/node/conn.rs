//! One transport connection: a reader task that frames messages and hands them to the peer
//! task, and a writer task that batches queued messages into few writes.

use super::Shared;
use super::express::ExpressLane;
use crate::capture::{CaptureConn, Direction};
use crate::framing::{DiameterCodec, Inbound, read_frame};
use crate::peer::ConnId;
use crate::transport::Stream;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::SystemTime;
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

/// The peer task's handle on a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub(crate) writer: mpsc::UnboundedSender<WriteCmd>,
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
    tokio::spawn(write_loop(shared.clone(), wr, rx, cap));
    tokio::spawn(read_loop(shared.clone(), id, rd, owner, tx.clone(), cap));
    ConnHandle { writer: tx }
}

async fn read_loop(
    shared: Arc<Shared>,
    id: ConnId,
    mut rd: FramedRead<ReadHalf<Stream>, DiameterCodec>,
    owner: Owner,
    writer: mpsc::UnboundedSender<WriteCmd>,
    cap: Option<CaptureConn>,
) {
    let Owner { host, events, lane } = owner;
    loop {
        // Whether this frame is the first of a burst (the read had to wait for it).
        let mut waited = false;
        let next = {
            let fut = read_frame(&mut rd, shared.cfg.frame_timeout);
            tokio::pin!(fut);
            std::future::poll_fn(|cx| {
                let p = fut.as_mut().poll(cx);
                waited |= p.is_pending();
                p
            })
            .await
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
                    let _ = writer.send(WriteCmd::Data(ans.to_bytes()));
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
    let _ = writer.send(WriteCmd::Close);
    let _ = events.send(ConnEvent::Closed(id)).await;
}

async fn write_loop(
    shared: Arc<Shared>,
    mut wr: WriteHalf<Stream>,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    cap: Option<CaptureConn>,
) {
    let mut batch = Vec::with_capacity(64);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'outer: while rx.recv_many(&mut batch, 256).await > 0 {
        let mut close = false;
        buf.clear();
        for cmd in batch.drain(..) {
            match cmd {
                WriteCmd::Data(b) => {
                    shared.record(cap.as_ref(), Direction::Sent, &b);
                    buf.extend_from_slice(&b);
                }
                WriteCmd::Close => {
                    close = true;
                    break;
                }
            }
        }
        // Several messages, one write: what brings a node near the loopback limit
        // (performance.md).
        if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
            break 'outer;
        }
        if close {
            break;
        }
    }
    if let (Some(c), Some(capture)) = (cap, shared.capture.as_ref()) {
        let _ = capture.close(&c, Direction::Sent, SystemTime::now());
    }
    let _ = wr.shutdown().await;
}

//! The accept loop: incoming connections up to their CER, handed to their peer's task.

use super::peer_task::{IncomingConn, PeerCmd};
use super::{Shared, conn};
use crate::capture::Direction;
use crate::framing::{DiameterCodec, Inbound, read_frame};
use crate::peer::{
    FirstMessage, Timers, UnknownPeerPolicy, screen_first_message, unknown_peer_answer,
};
use crate::transport::Listener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::ReadHalf;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    loop {
        // Shutdown ends the loop at once, not at the next connection: the listener is
        // dropped with it and the address is free again.
        let acc = tokio::select! {
            biased;
            () = shared.stop_accepting.cancelled() => break,
            acc = listener.accept() => acc,
        };
        let Ok(acc) = acc else {
            continue;
        };
        if shared.stopped.load(Ordering::Acquire) {
            break;
        }
        // Bounded handshakes: a flood of connections that never send CER cannot hold more
        // than `max_handshaking` tasks (bad-inputs 43); the rest are closed at once.
        let Ok(permit) = shared.handshaking.clone().try_acquire_owned() else {
            continue;
        };
        let s = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = accept_one(&s, acc).await {
                tracing::debug!(error = %e, "incoming connection refused");
            }
        });
    }
}

pub(super) async fn accept_one(
    s: &Arc<Shared>,
    acc: crate::transport::Accepted,
) -> Result<(), String> {
    let stream = acc
        .handshake(s.cfg.handshake_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let cap = conn::capture_conn(s, &stream, true);
    let certs = stream.peer_certificates().map(<[_]>::to_vec);
    let (r, mut w) = tokio::io::split(stream);
    let mut rd: FramedRead<ReadHalf<crate::transport::Stream>, DiameterCodec> =
        FramedRead::new(r, DiameterCodec::new(s.cfg.limits));
    // RFC 6733 §5.6.1: the first message must be a CER, within the handshake deadline.
    let first = tokio::time::timeout(
        s.cfg.handshake_timeout,
        read_frame(&mut rd, s.cfg.frame_timeout),
    )
    .await;
    let Ok(Ok(Some(Inbound::Message(msg)))) = first else {
        return Err("no CER".into());
    };
    s.record(cap.as_ref(), Direction::Received, msg.as_bytes());
    use tokio::io::AsyncWriteExt;
    let host = match screen_first_message(&s.local, &msg) {
        FirstMessage::Cer { origin_host } => origin_host,
        FirstMessage::Answer(b) => {
            let b = s.bounded_bytes(b);
            s.record(cap.as_ref(), Direction::Sent, &b);
            let _ = w.write_all(&b).await;
            return Err("CER refused".into());
        }
        FirstMessage::Close => return Err("first message is not a CER".into()),
    };
    // TLS: the certificate must vouch for the Origin-Host the CER claims (bad-inputs 40).
    if let Some(certs) = certs {
        crate::transport::verify_peer_identity(&certs, &host).map_err(|e| e.to_string())?;
    }
    let known = s.peer(&host).is_some() || s.local.unknown_peer == UnknownPeerPolicy::Accept;
    if !known {
        if let Some(b) = unknown_peer_answer(&s.local, &msg) {
            let b = s.bounded_bytes(b);
            s.record(cap.as_ref(), Direction::Sent, &b);
            let _ = w.write_all(&b).await;
        }
        return Err(format!("unknown peer {host}"));
    }
    s.adopt_incoming(
        &host,
        Box::new(IncomingConn {
            rd,
            wr: w,
            cap,
            cer: msg,
        }),
    );
    Ok(())
}

impl Shared {
    /// Hands a connection and its CER to the task of the peer it names, starting one for an
    /// unknown peer accepted by policy. A task that is ending (an unknown peer that just
    /// left) hands back what it had not taken, so a peer reconnecting at once is served.
    pub(super) fn adopt_incoming(&self, host: &str, inc: Box<IncomingConn>) {
        let mut inc = inc;
        for _ in 0..2 {
            let handle = match self.peer(host) {
                Some(h) => h,
                None => self.spawn_peer(host, None, Timers::default(), false),
            };
            match handle.cmd.try_send(PeerCmd::Incoming(inc)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(PeerCmd::Incoming(back))) => {
                    // A busy peer task: wait for room on a task of our own.
                    tokio::spawn(async move {
                        let _ = handle.cmd.send(PeerCmd::Incoming(back)).await;
                    });
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(PeerCmd::Incoming(back))) => {
                    self.forget_peer(host, &handle);
                    inc = back;
                }
                Err(_) => return,
            }
        }
        tracing::debug!(peer = host, "connection dropped: its peer task ended twice");
    }
}

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
    let handle = match s.peer(&host) {
        Some(h) => h,
        None => match s.local.unknown_peer {
            UnknownPeerPolicy::Accept => s.spawn_peer(&host, None, Timers::default()),
            _ => {
                if let Some(b) = unknown_peer_answer(&s.local, &msg) {
                    let b = s.bounded_bytes(b);
                    s.record(cap.as_ref(), Direction::Sent, &b);
                    let _ = w.write_all(&b).await;
                }
                return Err(format!("unknown peer {host}"));
            }
        },
    };
    handle
        .cmd
        .send(PeerCmd::Incoming(Box::new(IncomingConn {
            rd,
            wr: w,
            cap,
            cer: msg,
        })))
        .await
        .map_err(|_| "peer task gone".to_string())
}

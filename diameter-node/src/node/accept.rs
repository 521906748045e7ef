//! The accept loop: incoming connections up to their CER, handed to their peer's task.
//!
//! Connections that have not sent their CER are bounded (bad-inputs 43): at most
//! `max_handshaking` from anonymous addresses at once, at most `max_handshaking_per_source`
//! from any one address, each for `cer_timeout`. Connections from a configured peer's known
//! addresses have their own per-address allowance outside the anonymous pool, so a flood
//! from elsewhere cannot keep the peer out. When accept(2) fails for want of descriptors or
//! memory, the loop backs off instead of retrying at once.

use super::peer_task::{IncomingConn, PeerCmd};
use super::{Shared, conn};
use crate::capture::Direction;
use crate::framing::{DiameterCodec, Inbound, read_frame};
use crate::peer::{
    FirstMessage, Timers, UnknownPeerPolicy, screen_first_message, unknown_peer_answer,
};
use crate::transport::Listener;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::ReadHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::FramedRead;

/// Connections waiting for their CER, by source.
pub(super) struct Handshakes {
    /// The anonymous pool.
    pool: Arc<Semaphore>,
    /// Connections per source address (entries only while non-zero, so at most the pool
    /// plus the known addresses' allowances).
    by_source: Mutex<HashMap<IpAddr, usize>>,
    max_per_source: usize,
    /// Configured peers' addresses.
    known: HashSet<IpAddr>,
}

/// One connection's place among the handshaking ones; released when dropped.
pub(super) struct Slot {
    handshakes: Arc<Handshakes>,
    source: IpAddr,
    _pool: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_source = self.handshakes.by_source.lock().expect("handshakes lock");
        if let Some(n) = by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                by_source.remove(&self.source);
            }
        }
    }
}

impl Handshakes {
    pub(super) fn new(cfg: &super::NodeConfig) -> Self {
        let known = cfg
            .peers
            .iter()
            .flat_map(|p| {
                p.connect
                    .map(|a| a.ip())
                    .into_iter()
                    .chain(p.addresses.clone())
            })
            .map(|ip| ip.to_canonical())
            .collect();
        Self {
            pool: Arc::new(Semaphore::new(cfg.max_handshaking)),
            by_source: Mutex::new(HashMap::new()),
            max_per_source: cfg.max_handshaking_per_source,
            known,
        }
    }

    /// A place for a connection from `source`, or `None` when its source or the anonymous
    /// pool is full.
    fn admit(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let source = source.to_canonical();
        let mut by_source = self.by_source.lock().expect("handshakes lock");
        let n = by_source.get(&source).copied().unwrap_or(0);
        if n >= self.max_per_source {
            return None;
        }
        let pool = if self.known.contains(&source) {
            None
        } else {
            Some(self.pool.clone().try_acquire_owned().ok()?)
        };
        by_source.insert(source, n + 1);
        Some(Slot {
            handshakes: self.clone(),
            source,
            _pool: pool,
        })
    }
}

/// The back-off of the accept loop. accept(2) failing for want of descriptors (EMFILE,
/// ENFILE) or memory (ENOBUFS, ENOMEM) fails again at once until some are freed, while
/// the connection waits in the backlog: retrying at once spins a core. The pause doubles
/// from 10 ms to 1 s and the first failure of a run is logged.
#[derive(Default)]
struct Backoff {
    pause: Option<Duration>,
    failures: u64,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Backoff {
    /// How long to wait after `e` (none for errors of one connection only).
    fn on_error(
        &mut self,
        node: &crate::metrics::NodeLabel,
        e: &std::io::Error,
    ) -> Option<Duration> {
        let kind = match e.raw_os_error() {
            Some(libc::EMFILE) => "emfile",
            Some(libc::ENFILE) => "enfile",
            Some(libc::ENOBUFS) => "enobufs",
            Some(libc::ENOMEM) => "enomem",
            _ => {
                crate::metrics::record_accept_error(node, "other");
                tracing::debug!(error = %e, "accept failed");
                return None;
            }
        };
        crate::metrics::record_accept_error(node, kind);
        self.failures += 1;
        let pause = match self.pause {
            None => {
                tracing::warn!(error = %e, "accept failed, backing off until resources are free");
                BACKOFF_FIRST
            }
            Some(p) => (p * 2).min(BACKOFF_MAX),
        };
        self.pause = Some(pause);
        Some(pause)
    }

    fn on_success(&mut self) {
        if self.pause.take().is_some() {
            tracing::info!(failures = self.failures, "accepting again");
            self.failures = 0;
        }
    }
}

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    let mut backoff = Backoff::default();
    loop {
        // Shutdown ends the loop at once, not at the next connection: the listener is
        // dropped with it and the address is free again.
        let acc = tokio::select! {
            biased;
            () = shared.stop_accepting.cancelled() => break,
            acc = listener.accept() => acc,
        };
        let acc = match acc {
            Ok(acc) => {
                backoff.on_success();
                acc
            }
            Err(e) => {
                if let Some(pause) = backoff.on_error(&shared.metrics, &e) {
                    tokio::select! {
                        () = shared.stop_accepting.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        if shared.stopped.load(Ordering::Acquire) {
            break;
        }
        // Bounded handshakes: beyond the bounds, connections are closed at once.
        let Some(slot) = shared.handshakes.admit(acc.peer_addr().ip()) else {
            continue;
        };
        let s = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
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
    // RFC 6733 §5.6.1: the first message must be a CER; it must come, TLS handshake
    // included, within `cer_timeout`.
    let deadline = Instant::now() + s.cfg.cer_timeout;
    let stream = acc
        .handshake(s.cfg.cer_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let cap = conn::capture_conn(s, &stream, true);
    let certs = stream.peer_certificates().map(<[_]>::to_vec);
    let (r, mut w) = tokio::io::split(stream);
    let mut rd: FramedRead<ReadHalf<crate::transport::Stream>, DiameterCodec> =
        FramedRead::new(r, DiameterCodec::new(s.cfg.limits));
    let first =
        tokio::time::timeout_at(deadline.into(), read_frame(&mut rd, s.cfg.frame_timeout)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{NodeConfig, PeerSpec};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pool_per_source_and_known_addresses() {
        let mut cfg = NodeConfig::new("server.example", "example");
        cfg.max_handshaking = 3;
        cfg.max_handshaking_per_source = 2;
        cfg.peers.push(PeerSpec::connect_tcp(
            "a.example",
            "192.0.2.1:3868".parse().unwrap(),
        ));
        let mut b = PeerSpec::accept_only("b.example");
        b.addresses.push(ip("2001:db8::2"));
        cfg.peers.push(b);
        let h = Arc::new(Handshakes::new(&cfg));

        // Per source: two from one address, the third refused.
        let s1 = h.admit(ip("198.51.100.1")).unwrap();
        let s2 = h.admit(ip("198.51.100.1")).unwrap();
        assert!(h.admit(ip("198.51.100.1")).is_none());
        // The pool: one more from elsewhere fills it.
        let s3 = h.admit(ip("198.51.100.2")).unwrap();
        assert!(h.admit(ip("198.51.100.3")).is_none());
        // Known addresses (also as IPv4-mapped IPv6) get in beside the full pool, within
        // their own per-source allowance.
        let k1 = h.admit(ip("192.0.2.1")).unwrap();
        let k2 = h.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert!(h.admit(ip("192.0.2.1")).is_none());
        let k3 = h.admit(ip("2001:db8::2")).unwrap();
        // Released places are reusable, and the map forgets sources with none.
        drop((s1, s2, k1, k2, k3));
        assert!(h.admit(ip("198.51.100.3")).is_some());
        drop(s3);
        assert!(h.by_source.lock().unwrap().is_empty());
    }

    #[test]
    fn backoff_only_for_resource_errors_and_doubles_to_a_second() {
        let mut b = Backoff::default();
        let node = crate::metrics::NodeLabel::new("test.example");
        let reset = std::io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(b.on_error(&node, &reset), None);
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<_> = (0..10)
            .map(|_| b.on_error(&node, &emfile).unwrap())
            .collect();
        assert_eq!(pauses[0], BACKOFF_FIRST);
        assert_eq!(pauses[1], BACKOFF_FIRST * 2);
        assert_eq!(*pauses.last().unwrap(), BACKOFF_MAX);
        b.on_success();
        assert_eq!(b.on_error(&node, &emfile), Some(BACKOFF_FIRST));
    }
}

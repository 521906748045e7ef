//! A raw Diameter client over TCP: hand-built bytes out, whole messages in, DWRs answered
//! as a live peer would.

use super::{CLIENT, DCCA, T};
use bytes::BytesMut;
use diameter_codec::dict::base;
use diameter_codec::{LocalIdentity, Message, MessageBuilder, ResultCode};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw connection speaking hand-built Diameter bytes.
pub(crate) struct Raw {
    pub(crate) s: TcpStream,
}

/// What a read found.
#[derive(Debug)]
pub(crate) enum Read {
    Msg(Message),
    Closed,
    Silence,
}

impl Raw {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        Self {
            s: TcpStream::connect(addr).await.expect("connect"),
        }
    }

    pub(crate) async fn send(&mut self, b: &MessageBuilder) {
        self.send_bytes(&b.to_bytes()).await;
    }

    pub(crate) async fn send_bytes(&mut self, b: &[u8]) {
        // The server may already have closed: a failed write shows up as Closed on read.
        let _ = self.s.write_all(b).await;
    }

    /// The next message other than a DWR (DWRs are answered, as a live peer does: the
    /// server's watchdog sends one at once on a reconnection, RFC 3539 REOPEN).
    pub(crate) async fn read(&mut self, t: Duration) -> Read {
        loop {
            let r = self.read_one(t).await;
            match r {
                Read::Msg(m)
                    if m.header().is_request()
                        && m.header().command_code == base::CMD_DEVICE_WATCHDOG =>
                {
                    let mut dwa =
                        MessageBuilder::answer_to(&m, &LocalIdentity::new(CLIENT, "client.realm"));
                    dwa.result_code(ResultCode::DIAMETER_SUCCESS);
                    self.send(&dwa).await;
                }
                r => return r,
            }
        }
    }

    pub(crate) async fn read_one(&mut self, t: Duration) -> Read {
        let mut hdr = [0u8; 20];
        match tokio::time::timeout(t, self.s.read_exact(&mut hdr)).await {
            Err(_) => return Read::Silence,
            Ok(Err(_)) => return Read::Closed, // EOF or reset
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
        assert!(len >= 20, "server sent a bad length {len}");
        let mut buf = BytesMut::with_capacity(len);
        buf.extend_from_slice(&hdr);
        buf.resize(len, 0);
        match tokio::time::timeout(t, self.s.read_exact(&mut buf[20..])).await {
            Ok(Ok(_)) => Read::Msg(Message::from_bytes(buf.freeze()).expect("server frames")),
            _ => panic!("server sent a truncated message"),
        }
    }

    /// The next message; panics on silence or close.
    pub(crate) async fn recv(&mut self) -> Message {
        match self.read(T).await {
            Read::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The connection must close (EOF or reset) within `t` with no message before.
    pub(crate) async fn expect_closed(&mut self, t: Duration) {
        match self.read(t).await {
            Read::Closed => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    /// Nothing must arrive within `t` (and the connection stays up).
    pub(crate) async fn expect_silence(&mut self, t: Duration) {
        match self.read(t).await {
            Read::Silence => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

/// A CER as a well-behaved client sends it.
pub(crate) fn cer(host: &str) -> MessageBuilder {
    MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false)
        .ids(0x1000, 0x2000)
        .with(base::ORIGIN_HOST.with(host.to_string()))
        .with(base::ORIGIN_REALM.with("client.realm"))
        .with(base::HOST_IP_ADDRESS.with(IpAddr::from([127, 0, 0, 1])))
        .with(base::VENDOR_ID.with(0u32))
        .with(base::PRODUCT_NAME.with("raw-test"))
        .with(base::AUTH_APPLICATION_ID.with(DCCA))
}

//! Byte-level edits of encoded messages on the forwarding path: cheaper than decoding into
//! an owned tree, and they leave every other byte (unknown AVPs included) untouched.

use bytes::{BufMut, Bytes, BytesMut};
use diameter_codec::{AvpFlags, CommandFlags, Message};

/// The Hop-by-Hop Identifier of an encoded message.
pub(crate) fn hop_by_hop(msg: &[u8]) -> Option<u32> {
    msg.get(12..16)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A copy with another Hop-by-Hop Identifier and, optionally, the T bit set (RFC 6733
/// §5.5.4: a request re-sent after failover "MUST set the T flag"). Also how a stored answer
/// goes back on a duplicate's hop, and a relayed answer on the request's original hop (RFC
/// 6733 §6.2: the answer carries the request's Hop-by-Hop Identifier).
pub(crate) fn retarget(msg: &Bytes, hop_by_hop: u32, set_t: bool) -> Bytes {
    let mut b = BytesMut::from(&msg[..]);
    if b.len() >= 20 {
        b[12..16].copy_from_slice(&hop_by_hop.to_be_bytes());
        if set_t {
            b[4] |= CommandFlags::RETRANSMIT;
        }
    }
    b.freeze()
}

/// A copy of a request being relayed: new Hop-by-Hop Identifier and a Route-Record AVP
/// appended (RFC 6733 §6.7.1: relay and proxy agents "MUST append a Route-Record AVP to all
/// requests forwarded. The AVP contains the identity of the peer from which the request was
/// received").
pub(crate) fn for_relay(msg: &Message, hop_by_hop: u32, received_from: &str) -> Bytes {
    let src = msg.as_bytes();
    let avp_len = 8 + received_from.len();
    let padded = (avp_len + 3) & !3;
    let total = src.len() + padded;
    let mut b = BytesMut::with_capacity(total);
    b.extend_from_slice(src);
    b[1..4].copy_from_slice(&(total as u32).to_be_bytes()[1..]);
    b[12..16].copy_from_slice(&hop_by_hop.to_be_bytes());
    b.put_u32(282); // Route-Record
    b.put_u32((u32::from(AvpFlags::MANDATORY) << 24) | avp_len as u32);
    b.put_slice(received_from.as_bytes());
    b.put_bytes(0, padded - avp_len);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diameter_codec::MessageBuilder;
    use diameter_codec::dict::base;

    #[test]
    fn relay_copy_appends_route_record() {
        let mut b = MessageBuilder::request(272, 4, true).ids(1, 2);
        b.push(base::SESSION_ID.with("s;1"));
        let msg = b.build().unwrap();
        let out = Message::from_bytes(for_relay(&msg, 99, "pcef.example")).unwrap();
        assert_eq!(out.header().hop_by_hop, 99);
        assert_eq!(out.header().end_to_end, 2);
        let rr: Vec<_> = out
            .find_all(base::ROUTE_RECORD.key())
            .map(|a| a.data.to_vec())
            .collect();
        assert_eq!(rr, vec![b"pcef.example".to_vec()]);
        let t = retarget(out.as_bytes(), 5, true);
        let t = Message::from_bytes(t).unwrap();
        assert!(t.header().flags.is_retransmit());
        assert_eq!(t.header().hop_by_hop, 5);
        assert_eq!(hop_by_hop(t.as_bytes()), Some(5));
        // An answer sent back on another hop: only the identifier changes.
        let a = retarget(out.as_bytes(), 0x0102_0304, false);
        assert_eq!(&a[12..16], &[1, 2, 3, 4]);
        assert_eq!(a[4], out.as_bytes()[4]);
        assert_eq!(a[16..], out.as_bytes()[16..]);
    }
}

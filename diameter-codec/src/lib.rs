//! # diameter-codec
//!
//! A zero-copy codec for Diameter (RFC 6733) with dictionaries for the base protocol, Credit
//! Control (RFC 4006/8506), Gy (TS 32.299), Gx and Gxx (TS 29.212), Rx (TS 29.214), S9
//! (TS 29.215) and this project's roaming AVPs.
//!
//! The crate is pure: no I/O, no clock, no async runtime. It never panics on input and never
//! allocates more than a small constant times the input it is given.
//!
//! ```
//! use diameter_codec::{Message, MessageBuilder, dict::base, validate};
//!
//! let mut cer = MessageBuilder::request(257, 0, false).ids(1, 1);
//! cer.push(base::ORIGIN_HOST.with("pcef.example.net"));
//! cer.push(base::ORIGIN_REALM.with("example.net"));
//! cer.push(base::HOST_IP_ADDRESS.with(std::net::IpAddr::from([127, 0, 0, 1])));
//! cer.push(base::VENDOR_ID.with(0u32));
//! cer.push(base::PRODUCT_NAME.with("example"));
//! let msg = Message::from_bytes(cer.to_bytes()).unwrap();
//! assert_eq!(msg.get(base::ORIGIN_HOST).unwrap().unwrap(), "pcef.example.net");
//! validate(&msg).unwrap();
//! ```
//!
//! # Layout
//!
//! - [`header`]: the 20-byte message header, and stream framing checks.
//! - [`avp`]: AVP flags, keys, the borrowed [`AvpRef`] view and [`AvpIter`].
//! - [`message`]: [`Message`], decoded from `bytes::Bytes` without copying, and [`Limits`].
//! - [`types`]: every RFC 6733 data type, and the typed markers behind generated accessors.
//! - [`dict`]: the runtime [`Dictionary`] loaded from `dictionaries/*.toml`, and the
//!   generated constants (`dict::base::ORIGIN_HOST`, `dict::gx::EventTrigger`, …).
//! - [`validate`](mod@validate): grammar and value validation yielding Result-Code and Failed-AVP,
//!   at a liberal (default) or strict level, with every deviation it accepted.
//! - [`encode`]: owned AVPs, [`MessageBuilder`], answers and error answers.
//! - [`writer`]: [`MessageWriter`], which encodes AVPs as they are added (no tree).
//! - [`render`]: text and JSON with dictionary names.
//! - [`session_id`]: Session-Id values that stay unique across restarts (RFC 6733 §8.8).

#![warn(missing_docs)]

pub mod avp;
pub mod dict;
pub mod encode;
pub mod error;
#[allow(missing_docs, clippy::all)]
mod generated;
pub mod header;
pub mod hex_text;
pub mod message;
pub mod render;
pub mod result_code;
pub mod session_id;
pub mod types;
pub mod validate;
pub mod writer;

pub use avp::{AvpFlags, AvpIter, AvpKey, AvpRef, Framed};
pub use dict::Dictionary;
pub use encode::{AvpValue, ErrorReport, LocalIdentity, MessageBuilder, OwnedAvp};
pub use error::{AvpError, AvpErrorKind, FrameError, ValueError};
pub use header::{CommandFlags, HEADER_LEN, Header, frame_length};
pub use message::{DecodeError, Limits, Message};
pub use render::Renderer;
pub use result_code::ResultCode;
pub use session_id::SessionIdGenerator;
pub use types::{AvpType, DataType, Payload, TypedAvp};
pub use validate::{
    Finding, FindingKind, Severity, ValidateOptions, Validation, ValidationLevel, Validator,
    validate,
};
pub use writer::{MessageWriter, WriteError};

/// Entry points shared by the fuzz targets (`fuzz/`) and the tests that replay their corpus.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{
        AvpIter, Dictionary, Limits, Message, MessageBuilder, Renderer, ValidateOptions, Validator,
    };
    use bytes::Bytes;

    fn walk(avps: AvpIter<'_>, depth: usize) -> usize {
        let mut n = 0;
        for a in avps.flatten() {
            n += 1;
            if depth < Limits::DEFAULT.max_depth {
                n += walk(a.children(), depth + 1);
            }
        }
        n
    }

    /// Decodes, validates, walks and renders arbitrary bytes. Must never panic.
    pub fn decode(data: &[u8]) {
        let dict = Dictionary::embedded();
        let Ok(msg) = Message::decode(Bytes::copy_from_slice(data), &Limits::DEFAULT) else {
            return;
        };
        let _ = Validator::new(dict, ValidateOptions::default()).validate(&msg);
        // Both levels, with every finding built (names, paths, rule text, reports).
        for opts in [ValidateOptions::default(), ValidateOptions::strict()] {
            let v = Validator::new(dict, opts).check(&msg);
            for f in v.findings() {
                let _ = f.to_string();
            }
        }
        let _ = walk(msg.avps(), 1);
        let r = Renderer::new(dict);
        let _ = r.text(&msg);
        let _ = r.json(&msg);
    }

    /// Decodes, copies into an owned tree, encodes, decodes again: the two decodings must
    /// render identically and a second encode must reproduce the first byte for byte.
    pub fn roundtrip(data: &[u8]) {
        let dict = Dictionary::embedded();
        let Ok(msg) = Message::decode(Bytes::copy_from_slice(data), &Limits::DEFAULT) else {
            return;
        };
        let once = MessageBuilder::from_message(&msg, dict).to_bytes();
        // Padding restored inside groups may make the copy a few bytes longer than the original.
        let roomy = Limits {
            max_message_len: 0x00ff_fffc,
            ..Limits::DEFAULT
        };
        let again = Message::decode(once.clone(), &roomy).expect("re-encoded message decodes");
        let r = Renderer::new(dict);
        assert_eq!(
            r.json(&msg)["avps"],
            r.json(&again)["avps"],
            "round trip changed the AVPs"
        );
        assert_eq!(
            MessageBuilder::from_message(&again, dict).to_bytes(),
            once,
            "encode is not stable"
        );
    }
}

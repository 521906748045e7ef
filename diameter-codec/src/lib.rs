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
//! - [`validate`](mod@validate): grammar and value validation yielding Result-Code and Failed-AVP.
//! - [`encode`]: owned AVPs, [`MessageBuilder`], answers and error answers.
//! - [`render`]: text and JSON with dictionary names.

#![warn(missing_docs)]

pub mod avp;
pub mod dict;
pub mod encode;
pub mod error;
#[allow(missing_docs, clippy::all)]
mod generated;
pub mod header;
pub mod message;
pub mod render;
pub mod result_code;
pub mod types;
pub mod validate;

pub use avp::{AvpFlags, AvpIter, AvpKey, AvpRef};
pub use dict::Dictionary;
pub use encode::{AvpValue, ErrorReport, LocalIdentity, MessageBuilder, OwnedAvp};
pub use error::{AvpError, AvpErrorKind, FrameError, ValueError};
pub use header::{CommandFlags, HEADER_LEN, Header, frame_length};
pub use message::{DecodeError, Limits, Message};
pub use render::Renderer;
pub use result_code::ResultCode;
pub use types::{AvpType, DataType, TypedAvp};
pub use validate::{ValidateOptions, Validator, validate};

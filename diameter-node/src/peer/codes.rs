//! RFC 6733 command and AVP codes used by the peer state machine.
//!
//! Raw numbers rather than `diameter_codec::dict::base` constants, so that this module does not
//! depend on generated code that is still being produced; the values are fixed by the RFC.

/// Capabilities-Exchange (RFC 6733 §5.3).
pub(crate) const CMD_CER: u32 = 257;
/// Device-Watchdog (RFC 6733 §5.5).
pub(crate) const CMD_DWR: u32 = 280;
/// Disconnect-Peer (RFC 6733 §5.4).
pub(crate) const CMD_DPR: u32 = 282;

pub(crate) const HOST_IP_ADDRESS: u32 = 257;
pub(crate) const AUTH_APPLICATION_ID: u32 = 258;
pub(crate) const ACCT_APPLICATION_ID: u32 = 259;
pub(crate) const VENDOR_SPECIFIC_APPLICATION_ID: u32 = 260;
pub(crate) const ORIGIN_HOST: u32 = 264;
pub(crate) const SUPPORTED_VENDOR_ID: u32 = 265;
pub(crate) const VENDOR_ID: u32 = 266;
pub(crate) const FIRMWARE_REVISION: u32 = 267;
pub(crate) const RESULT_CODE: u32 = 268;
pub(crate) const PRODUCT_NAME: u32 = 269;
pub(crate) const DISCONNECT_CAUSE: u32 = 273;
pub(crate) const ORIGIN_STATE_ID: u32 = 278;
pub(crate) const ORIGIN_REALM: u32 = 296;
pub(crate) const INBAND_SECURITY_ID: u32 = 299;

//! RFC 6733 command and AVP codes used by the peer state machine, taken from the generated
//! dictionary constants (the single source of truth) under short local names.

use diameter_codec::dict::base;

/// Capabilities-Exchange (RFC 6733 §5.3).
pub(crate) const CMD_CER: u32 = base::CMD_CAPABILITIES_EXCHANGE;
/// Device-Watchdog (RFC 6733 §5.5).
pub(crate) const CMD_DWR: u32 = base::CMD_DEVICE_WATCHDOG;
/// Disconnect-Peer (RFC 6733 §5.4).
pub(crate) const CMD_DPR: u32 = base::CMD_DISCONNECT_PEER;

pub(crate) const HOST_IP_ADDRESS: u32 = base::HOST_IP_ADDRESS.code();
pub(crate) const AUTH_APPLICATION_ID: u32 = base::AUTH_APPLICATION_ID.code();
pub(crate) const ACCT_APPLICATION_ID: u32 = base::ACCT_APPLICATION_ID.code();
pub(crate) const VENDOR_SPECIFIC_APPLICATION_ID: u32 = base::VENDOR_SPECIFIC_APPLICATION_ID.code();
pub(crate) const ORIGIN_HOST: u32 = base::ORIGIN_HOST.code();
pub(crate) const SUPPORTED_VENDOR_ID: u32 = base::SUPPORTED_VENDOR_ID.code();
pub(crate) const VENDOR_ID: u32 = base::VENDOR_ID.code();
pub(crate) const FIRMWARE_REVISION: u32 = base::FIRMWARE_REVISION.code();
pub(crate) const RESULT_CODE: u32 = base::RESULT_CODE.code();
pub(crate) const PRODUCT_NAME: u32 = base::PRODUCT_NAME.code();
pub(crate) const DISCONNECT_CAUSE: u32 = base::DISCONNECT_CAUSE.code();
pub(crate) const ORIGIN_STATE_ID: u32 = base::ORIGIN_STATE_ID.code();
pub(crate) const ORIGIN_REALM: u32 = base::ORIGIN_REALM.code();
pub(crate) const INBAND_SECURITY_ID: u32 = base::INBAND_SECURITY_ID.code();

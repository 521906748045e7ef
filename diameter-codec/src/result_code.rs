//! Result-Code values (RFC 6733 §7.1, RFC 4006 §9) as an open newtype: unknown codes decode
//! and print as numbers.

use std::fmt;

/// A Result-Code (AVP 268) or Experimental-Result-Code (AVP 298) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultCode(pub u32);

/// The class of a Result-Code: its thousands digit (RFC 6733 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultClass {
    /// 1xxx: informational.
    Informational,
    /// 2xxx: success.
    Success,
    /// 3xxx: protocol error; the answer carries the E bit (RFC 6733 §7.1.3).
    ProtocolError,
    /// 4xxx: transient failure.
    TransientFailure,
    /// 5xxx: permanent failure.
    PermanentFailure,
    /// Anything else.
    Unknown,
}

macro_rules! result_codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        impl ResultCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The RFC name of a known code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

result_codes! {
    /// RFC 6733 §7.1.1
    DIAMETER_MULTI_ROUND_AUTH = 1001;
    /// RFC 6733 §7.1.2
    DIAMETER_SUCCESS = 2001;
    /// RFC 6733 §7.1.2
    DIAMETER_LIMITED_SUCCESS = 2002;
    /// RFC 6733 §7.1.3
    DIAMETER_COMMAND_UNSUPPORTED = 3001;
    /// RFC 6733 §7.1.3
    DIAMETER_UNABLE_TO_DELIVER = 3002;
    /// RFC 6733 §7.1.3
    DIAMETER_REALM_NOT_SERVED = 3003;
    /// RFC 6733 §7.1.3
    DIAMETER_TOO_BUSY = 3004;
    /// RFC 6733 §7.1.3
    DIAMETER_LOOP_DETECTED = 3005;
    /// RFC 6733 §7.1.3
    DIAMETER_REDIRECT_INDICATION = 3006;
    /// RFC 6733 §7.1.3
    DIAMETER_APPLICATION_UNSUPPORTED = 3007;
    /// RFC 6733 §7.1.3
    DIAMETER_INVALID_HDR_BITS = 3008;
    /// RFC 6733 §7.1.3
    DIAMETER_INVALID_AVP_BITS = 3009;
    /// RFC 6733 §7.1.3
    DIAMETER_UNKNOWN_PEER = 3010;
    /// RFC 6733 §7.1.4
    DIAMETER_AUTHENTICATION_REJECTED = 4001;
    /// RFC 6733 §7.1.4
    DIAMETER_OUT_OF_SPACE = 4002;
    /// RFC 6733 §7.1.4
    ELECTION_LOST = 4003;
    /// RFC 4006 §9.1
    DIAMETER_END_USER_SERVICE_DENIED = 4010;
    /// RFC 4006 §9.1
    DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE = 4011;
    /// RFC 4006 §9.1
    DIAMETER_CREDIT_LIMIT_REACHED = 4012;
    /// RFC 6733 §7.1.5
    DIAMETER_AVP_UNSUPPORTED = 5001;
    /// RFC 6733 §7.1.5
    DIAMETER_UNKNOWN_SESSION_ID = 5002;
    /// RFC 6733 §7.1.5
    DIAMETER_AUTHORIZATION_REJECTED = 5003;
    /// RFC 6733 §7.1.5
    DIAMETER_INVALID_AVP_VALUE = 5004;
    /// RFC 6733 §7.1.5
    DIAMETER_MISSING_AVP = 5005;
    /// RFC 6733 §7.1.5
    DIAMETER_RESOURCES_EXCEEDED = 5006;
    /// RFC 6733 §7.1.5
    DIAMETER_CONTRADICTING_AVPS = 5007;
    /// RFC 6733 §7.1.5
    DIAMETER_AVP_NOT_ALLOWED = 5008;
    /// RFC 6733 §7.1.5
    DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = 5009;
    /// RFC 6733 §7.1.5
    DIAMETER_NO_COMMON_APPLICATION = 5010;
    /// RFC 6733 §7.1.5
    DIAMETER_UNSUPPORTED_VERSION = 5011;
    /// RFC 6733 §7.1.5
    DIAMETER_UNABLE_TO_COMPLY = 5012;
    /// RFC 6733 §7.1.5
    DIAMETER_INVALID_BIT_IN_HEADER = 5013;
    /// RFC 6733 §7.1.5
    DIAMETER_INVALID_AVP_LENGTH = 5014;
    /// RFC 6733 §7.1.5
    DIAMETER_INVALID_MESSAGE_LENGTH = 5015;
    /// RFC 6733 §7.1.5
    DIAMETER_INVALID_AVP_BIT_COMBO = 5016;
    /// RFC 6733 §7.1.5
    DIAMETER_NO_COMMON_SECURITY = 5017;
    /// RFC 4006 §9.1
    DIAMETER_USER_UNKNOWN = 5030;
    /// RFC 4006 §9.1
    DIAMETER_RATING_FAILED = 5031;
}

impl ResultCode {
    /// The class of this code.
    pub fn class(self) -> ResultClass {
        match self.0 / 1000 {
            1 => ResultClass::Informational,
            2 => ResultClass::Success,
            3 => ResultClass::ProtocolError,
            4 => ResultClass::TransientFailure,
            5 => ResultClass::PermanentFailure,
            _ => ResultClass::Unknown,
        }
    }

    /// RFC 6733 §7.1.3: protocol errors are answered with the E bit set.
    pub fn is_protocol_error(self) -> bool {
        self.class() == ResultClass::ProtocolError
    }

    /// 2xxx.
    pub fn is_success(self) -> bool {
        self.class() == ResultClass::Success
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} ({n})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u32> for ResultCode {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

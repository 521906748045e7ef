//! The Time type (RFC 6733 §4.3.1): 4 octets of NTP seconds since 1900-01-01 UTC, with the
//! RFC 4330 §3 rule for the 2036 wrap ("This procedure MUST be supported by all Diameter
//! nodes"): a value whose top bit is 0 counts from 2036-02-07T06:28:16Z.

use crate::error::ValueError;
use std::fmt;

/// Seconds between 1900-01-01 and 1970-01-01.
pub const NTP_UNIX_OFFSET: i64 = 2_208_988_800;

/// A Time value as it travels on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct DiameterTime(pub u32);

impl DiameterTime {
    /// Reads a 4-octet Time payload.
    pub fn parse(data: &[u8]) -> Result<Self, ValueError> {
        <[u8; 4]>::try_from(data)
            .map(|b| Self(u32::from_be_bytes(b)))
            .map_err(|_| ValueError::WrongLength {
                expected: 4,
                actual: data.len(),
            })
    }

    /// Seconds since the Unix epoch, applying the 2036 wrap: values with the top bit clear
    /// are in 2036–2104.
    pub fn to_unix(self) -> i64 {
        let ntp = i64::from(self.0);
        if self.0 & 0x8000_0000 != 0 {
            ntp - NTP_UNIX_OFFSET
        } else {
            ntp + (1i64 << 32) - NTP_UNIX_OFFSET
        }
    }

    /// The wire value for a Unix time; `None` outside the representable range
    /// (1968-01-20T03:14:08Z to 2104-02-26T09:42:23Z).
    pub fn from_unix(secs: i64) -> Option<Self> {
        let ntp = secs + NTP_UNIX_OFFSET;
        let lo = 1i64 << 31; // 1968-01-20: the earliest value with the top bit set
        let hi = (1i64 << 32) + (1i64 << 31); // the first second that no longer fits
        if !(lo..hi).contains(&ntp) {
            return None;
        }
        Some(Self((ntp & 0xffff_ffff) as u32))
    }
}

impl fmt::Display for DiameterTime {
    /// ISO 8601 UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.to_unix();
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_2036() {
        // 2036-02-07T06:28:15Z is the last second of era 0; the next one wraps to 0.
        let last = DiameterTime(0xffff_ffff);
        assert_eq!(last.to_string(), "2036-02-07T06:28:15Z");
        assert_eq!(DiameterTime(0).to_string(), "2036-02-07T06:28:16Z");
        assert_eq!(
            DiameterTime::from_unix(DiameterTime(0).to_unix()),
            Some(DiameterTime(0))
        );
        // 2000-01-01T00:00:00Z
        let t = DiameterTime::from_unix(946_684_800).unwrap();
        assert_eq!(t.0, 3_155_673_600);
        assert_eq!(t.to_string(), "2000-01-01T00:00:00Z");
        assert_eq!(DiameterTime::from_unix(-(1i64 << 40)), None);
    }
}

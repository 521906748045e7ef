//! Where the user is, from 3GPP-User-Location-Info (TS 29.061 §16.4.7.2; the location is
//! coded as in TS 29.274 §8.21 for a P-GW and TS 29.060 §7.7.51 for a GGSN), and the
//! location trigger types in their precision order (protocol.md: MCC → MNC → LAC → RAC →
//! CellId for GERAN/UTRAN, TAC → ECGI for E-UTRAN; the numeric order is not the precision
//! order).

use serde::{Deserialize, Serialize};

/// CHANGE_IN_LOCATION (3): any location change, no precision named.
pub const CHANGE_IN_LOCATION: i32 = 3;
/// CHANGE_IN_RAT (4).
pub const CHANGE_IN_RAT: i32 = 4;

/// The location as far as a User-Location-Info tells it; absent parts are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// MCC and MNC, three octets in TBCD as sent.
    pub plmn: Option<[u8; 3]>,
    /// Location Area Code (CGI, SAI, RAI).
    pub lac: Option<u16>,
    /// Routing Area Code (RAI).
    pub rac: Option<u8>,
    /// Cell Identity (CGI).
    pub ci: Option<u16>,
    /// Tracking Area Code (TAI).
    pub tac: Option<u16>,
    /// E-UTRAN Cell Identifier, 28 bits (ECGI).
    pub eci: Option<u32>,
}

fn plmn(b: &[u8]) -> Option<[u8; 3]> {
    b.get(..3).and_then(|p| p.try_into().ok())
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2).map(|x| u16::from_be_bytes([x[0], x[1]]))
}

impl Location {
    /// Reads a 3GPP-User-Location-Info value: the Geographic Location Type octet (0 CGI,
    /// 1 SAI, 2 RAI, 128 TAI, 129 ECGI, 130 TAI and ECGI), then the location. `None` for a
    /// type not listed or a value too short.
    pub fn from_uli(v: &[u8]) -> Option<Self> {
        let (&kind, b) = v.split_first()?;
        let mut l = Self {
            plmn: Some(plmn(b)?),
            ..Self::default()
        };
        match kind {
            // CGI: PLMN, LAC, CI.
            0 => {
                l.lac = Some(u16_at(b, 3)?);
                l.ci = Some(u16_at(b, 5)?);
            }
            // SAI: PLMN, LAC, SAC (no trigger type names the SAC).
            1 => l.lac = Some(u16_at(b, 3)?),
            // RAI: PLMN, LAC, RAC; the RAC field is two octets, the second 0xFF (TS 29.274
            // §8.21.3), which is not required here.
            2 => {
                l.lac = Some(u16_at(b, 3)?);
                l.rac = Some(*b.get(5)?);
            }
            // TAI: PLMN, TAC.
            128 => l.tac = Some(u16_at(b, 3)?),
            // ECGI: PLMN, 4 spare bits and the 28-bit ECI.
            129 => l.eci = Some(u32::from_be_bytes(b.get(3..7)?.try_into().ok()?) & 0x0fff_ffff),
            // TAI then ECGI, each with its PLMN.
            130 => {
                l.tac = Some(u16_at(b, 3)?);
                let e = b.get(5..12)?;
                l.eci = Some(u32::from_be_bytes(e.get(3..7)?.try_into().ok()?) & 0x0fff_ffff);
            }
            _ => return None,
        }
        Some(l)
    }

    /// This location updated by a newer report: a CGI carries no RAC and an RAI no cell, so
    /// those are kept from the older report while the location area is the same.
    pub fn updated_by(&self, new: &Self) -> Self {
        let mut l = new.clone();
        let same_la = self.plmn.is_some() && self.plmn == new.plmn && self.lac == new.lac;
        if same_la && new.lac.is_some() {
            if l.rac.is_none() {
                l.rac = self.rac;
            }
            if l.ci.is_none() {
                l.ci = self.ci;
            }
        }
        l
    }

    /// Whether `other` is in the same area at the precision of location trigger type `t`.
    /// A part that either side lacks counts as a change (the home OCS is asked rather than
    /// credit given on a guess).
    pub fn same_area(&self, other: &Self, t: i32) -> bool {
        fn eq<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
            a.is_some() && a == b
        }
        // MCC: digits 1 and 2 in octet 1, digit 3 in the low nibble of octet 2 (TS 24.008
        // §10.5.1.3).
        let mcc = |l: &Self| l.plmn.map(|p| (p[0], p[1] & 0x0f));
        let same_plmn = eq(self.plmn, other.plmn);
        match t {
            30 => eq(mcc(self), mcc(other)),
            31 => same_plmn,
            33 => same_plmn && eq(self.lac, other.lac),
            32 => same_plmn && eq(self.lac, other.lac) && eq(self.rac, other.rac),
            34 => same_plmn && eq(self.lac, other.lac) && eq(self.ci, other.ci),
            35 => same_plmn && eq(self.tac, other.tac),
            36 => same_plmn && eq(self.eci, other.eci),
            _ => self == other,
        }
    }
}

/// The access a location trigger type belongs to, for comparing precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// MCC, MNC: both accesses.
    Both,
    /// GERAN/UTRAN: LAC, RAC, CellId.
    Utran,
    /// E-UTRAN: TAC, ECGI.
    Eutran,
}

/// Precision rank of a location trigger type (TS 23.003 §4.1, §4.2: LAI = MCC+MNC+LAC,
/// RAI = LAI+RAC, so a routing area lies inside a location area).
fn rank(t: i32) -> Option<(Chain, u8)> {
    Some(match t {
        30 => (Chain::Both, 0),
        31 => (Chain::Both, 1),
        33 => (Chain::Utran, 2),
        32 => (Chain::Utran, 3),
        34 => (Chain::Utran, 4),
        35 => (Chain::Eutran, 2),
        36 => (Chain::Eutran, 3),
        _ => return None,
    })
}

/// Whether `t` is a specific location type (30–36).
pub fn is_specific_location(t: i32) -> bool {
    rank(t).is_some()
}

/// Whether `t` is any location type (3 or 30–36).
pub fn is_location(t: i32) -> bool {
    t == CHANGE_IN_LOCATION || is_specific_location(t)
}

/// Whether `fine` is a finer location type than `coarse` on the same access (a type that
/// covers both accesses is coarser than every type of either).
pub fn finer(fine: i32, coarse: i32) -> bool {
    match (rank(fine), rank(coarse)) {
        (Some((cf, rf)), Some((cc, rc))) => {
            (cf == cc || cc == Chain::Both || cf == Chain::Both) && rf > rc
        }
        _ => false,
    }
}

/// Whether `a` and `b` can be compared (same access, or one covering both).
pub fn comparable(a: i32, b: i32) -> bool {
    finer(a, b) || finer(b, a) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    // MCC 001, MNC 01: octets 00 F1 10.
    const PLMN: [u8; 3] = [0x00, 0xf1, 0x10];

    fn cgi(lac: u16, ci: u16) -> Vec<u8> {
        let mut v = vec![0];
        v.extend(PLMN);
        v.extend(lac.to_be_bytes());
        v.extend(ci.to_be_bytes());
        v
    }

    #[test]
    fn eutran_tai_and_ecgi() {
        let mut v = vec![130];
        v.extend(PLMN);
        v.extend(0x1234u16.to_be_bytes());
        v.extend(PLMN);
        v.extend(0xf123_4567u32.to_be_bytes());
        let l = Location::from_uli(&v).unwrap();
        assert_eq!(l.tac, Some(0x1234));
        assert_eq!(l.eci, Some(0x0123_4567));
        let mut other = l.clone();
        other.eci = Some(7);
        assert!(l.same_area(&other, 35));
        assert!(!l.same_area(&other, 36));
        assert!(Location::from_uli(&v[..10]).is_none());
    }

    #[test]
    fn utran_lai_rai_cell() {
        let a = Location::from_uli(&cgi(10, 1)).unwrap();
        let b = Location::from_uli(&cgi(10, 2)).unwrap();
        let c = Location::from_uli(&cgi(11, 1)).unwrap();
        assert!(a.same_area(&b, 33) && !a.same_area(&b, 34));
        assert!(!a.same_area(&c, 33) && a.same_area(&c, 31) && a.same_area(&c, 30));
        let mut rai = vec![2];
        rai.extend(PLMN);
        rai.extend(10u16.to_be_bytes());
        rai.extend([5, 0xff]);
        let r = Location::from_uli(&rai).unwrap();
        let merged = a.updated_by(&r);
        assert_eq!(
            (merged.lac, merged.rac, merged.ci),
            (Some(10), Some(5), Some(1))
        );
        assert!(!a.same_area(&merged, 32), "RAC unknown before: a change");
    }

    #[test]
    fn precision_order_is_not_numeric() {
        assert!(finer(32, 33), "RAC is finer than LAC");
        assert!(finer(34, 32) && finer(33, 31) && finer(31, 30));
        assert!(finer(36, 35) && finer(36, 31));
        assert!(!finer(36, 33) && !finer(34, 35));
        assert!(!finer(3, 30) && !finer(30, 3));
    }
}

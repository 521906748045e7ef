//! Side-by-side codec benchmarks: `diameter-codec` against freeDiameter's parser (C, through
//! the small harness in `csrc/fd_harness.c`, linked with Debian's libfreediameter-dev) and
//! against the Rust `diameter` crate, on the very same bytes, in one run.
//!
//! Results and the commands that reproduce them are in `BENCHMARKS.md` at the workspace root.
//!
//! # Layout
//!
//! - [`vectors`]: the benchmark messages, read from the golden vectors of
//!   `diameter-codec/tests/vectors/` (hex text), with equivalent built messages as a fallback.
//! - [`freediameter`]: the FFI to the C harness (`fd_bench_init`, `fd_bench_parse`), or a stub
//!   that reports why it is unavailable when the crate was built without the headers.
//! - [`diameter_crate_dictionary_xml`]: a dictionary in the `diameter` crate's XML format,
//!   generated from ours, so that crate knows every AVP of the benchmark messages.

use diameter_codec::{DataType, Dictionary};
use std::fmt::Write as _;

pub mod vectors {
    //! The three benchmark messages.

    use super::build;
    use std::path::PathBuf;

    /// One benchmark message.
    #[derive(Debug, Clone)]
    pub struct Vector {
        /// Short name, used as the criterion group name.
        pub name: &'static str,
        /// Where the bytes came from: the vector file, or "built" for the fallback.
        pub source: String,
        /// The whole message.
        pub bytes: Vec<u8>,
    }

    /// Builds the fallback message.
    type Builder = fn() -> Vec<u8>;

    /// (name, vector file stem, fallback builder).
    const SET: [(&str, &str, Builder); 3] = [
        ("gy_ccr_u_3mscc", "gy_ccr_u", build::gy_ccr_u),
        ("gx_cca_5_rules", "gx_cca_5_rules", build::gx_cca_5_rules),
        ("cer", "cer", build::cer),
    ];

    /// The directory of the golden vectors.
    pub fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../diameter-codec/tests/vectors")
    }

    /// The benchmark messages: the golden vectors where the files exist, else the built
    /// equivalents (`source == "built"`).
    ///
    /// # Panics
    /// If a vector file exists but is not valid hex.
    pub fn all() -> Vec<Vector> {
        SET.iter()
            .map(|&(name, stem, build)| {
                let path = dir().join(format!("{stem}.hex"));
                match std::fs::read_to_string(&path) {
                    Ok(text) => Vector {
                        name,
                        source: path.display().to_string(),
                        bytes: diameter_codec::hex_text::parse(&text)
                            .unwrap_or_else(|| panic!("{}: not hex", path.display())),
                    },
                    Err(_) => Vector {
                        name,
                        source: "built".to_string(),
                        bytes: build(),
                    },
                }
            })
            .collect()
    }
}

pub mod build {
    //! Messages equivalent to the golden vectors, for when the files are absent.

    use bytes::Bytes;
    use diameter_codec::{AvpValue, MessageBuilder, OwnedAvp};

    const M: u8 = 0x40;
    const TGPP: u32 = 10415;

    fn u32_avp(code: u32, vendor: u32, flags: u8, v: u32) -> OwnedAvp {
        OwnedAvp::new(code, vendor, flags, AvpValue::U32(v))
    }
    fn i32_avp(code: u32, vendor: u32, flags: u8, v: i32) -> OwnedAvp {
        OwnedAvp::new(code, vendor, flags, AvpValue::I32(v))
    }
    fn u64_avp(code: u32, v: u64) -> OwnedAvp {
        OwnedAvp::new(code, 0, M, AvpValue::U64(v))
    }
    fn text(code: u32, vendor: u32, flags: u8, s: &'static str) -> OwnedAvp {
        OwnedAvp::new(
            code,
            vendor,
            flags,
            AvpValue::Bytes(Bytes::from_static(s.as_bytes())),
        )
    }
    fn group(code: u32, vendor: u32, flags: u8, children: Vec<OwnedAvp>) -> OwnedAvp {
        OwnedAvp::new(code, vendor, flags, AvpValue::Grouped(children))
    }
    fn subscription_id(kind: i32, data: &'static str) -> OwnedAvp {
        group(
            443,
            0,
            M,
            vec![i32_avp(450, 0, M, kind), text(444, 0, M, data)],
        )
    }
    fn mscc(rating_group: u32, service_id: u32, time: u32, input: u64, output: u64) -> OwnedAvp {
        let usu = vec![
            u32_avp(420, 0, M, time),
            u64_avp(421, input + output),
            u64_avp(412, input),
            u64_avp(414, output),
            i32_avp(872, TGPP, M, 0), // Reporting-Reason THRESHOLD
        ];
        group(
            456,
            0,
            M,
            vec![
                group(437, 0, M, Vec::new()),
                group(446, 0, M, usu),
                u32_avp(439, 0, M, service_id),
                u32_avp(432, 0, M, rating_group),
            ],
        )
    }

    /// A Gy CCR-UPDATE (TS 32.299) with three Multiple-Services-Credit-Control: 768 bytes,
    /// 48 AVPs.
    pub fn gy_ccr_u() -> Vec<u8> {
        let mut b = MessageBuilder::request(272, 4, true).ids(0x1234_5678, 0x9abc_def0);
        b.avps = vec![
            text(
                263,
                0,
                M,
                "pcef-01.gw.operator.example.net;1700000000;42;gy-0001",
            ),
            text(264, 0, M, "pcef-01.gw.operator.example.net"),
            text(296, 0, M, "operator.example.net"),
            text(283, 0, M, "operator.example.net"),
            u32_avp(258, 0, M, 4),
            text(461, 0, M, "32251@3gpp.org"),
            i32_avp(416, 0, M, 2),
            u32_avp(415, 0, M, 3),
            text(293, 0, M, "ocs-01.operator.example.net"),
            u32_avp(278, 0, M, 1_700_000_000),
            u32_avp(55, 0, M, 3_909_000_000),
            subscription_id(1, "001010000012345"),
            subscription_id(0, "33612345678"),
            u32_avp(455, 0, M, 1),
            mscc(100, 1000, 300, 1_048_576, 8_388_608),
            mscc(200, 2000, 120, 65_536, 262_144),
            mscc(300, 3000, 60, 4_096, 16_384),
        ];
        b.to_bytes().to_vec()
    }

    fn rule(
        name: &'static str,
        rating_group: u32,
        precedence: u32,
        out: &'static str,
        inb: &'static str,
    ) -> OwnedAvp {
        let flow = |desc, dir| {
            group(
                1058,
                TGPP,
                0,
                vec![text(507, TGPP, M, desc), i32_avp(1080, TGPP, 0, dir)],
            )
        };
        let crd = group(
            1003,
            TGPP,
            M,
            vec![
                text(1005, TGPP, M, name),
                u32_avp(432, 0, M, rating_group),
                flow(out, 1),
                flow(inb, 2),
                u32_avp(1010, TGPP, M, precedence),
            ],
        );
        group(1001, TGPP, M, vec![crd])
    }

    /// A Gx CCA-INITIAL (TS 29.212) installing five dynamic PCC rules.
    pub fn gx_cca_5_rules() -> Vec<u8> {
        let mut b = MessageBuilder::request(272, 16_777_238, true).ids(0x0102_0304, 0x0506_0708);
        b.flags = diameter_codec::CommandFlags(diameter_codec::CommandFlags::PROXIABLE);
        b.avps = vec![
            text(
                263,
                0,
                M,
                "pcef-01.gw.operator.example.net;1700000000;7;gx-0001",
            ),
            u32_avp(258, 0, M, 16_777_238),
            text(264, 0, M, "pcrf-01.operator.example.net"),
            text(296, 0, M, "operator.example.net"),
            u32_avp(268, 0, M, 2001),
            i32_avp(416, 0, M, 1),
            u32_avp(415, 0, M, 0),
            i32_avp(1023, TGPP, M, 2),
            rule(
                "internet",
                100,
                100,
                "permit out ip from any to assigned",
                "permit in ip from assigned to any",
            ),
            rule(
                "video",
                200,
                200,
                "permit out 17 from 198.51.100.0/24 to assigned",
                "permit in 17 from assigned to 198.51.100.0/24",
            ),
            rule(
                "voip",
                300,
                50,
                "permit out 17 from 203.0.113.10 5060 to assigned",
                "permit in 17 from assigned to 203.0.113.10 5060",
            ),
            rule(
                "dns",
                400,
                10,
                "permit out 17 from any 53 to assigned",
                "permit in 17 from assigned to any 53",
            ),
            rule(
                "zero-rated",
                500,
                300,
                "permit out 6 from 192.0.2.0/24 443 to assigned",
                "permit in 6 from assigned to 192.0.2.0/24 443",
            ),
        ];
        b.to_bytes().to_vec()
    }

    /// A CER from a PCEF supporting Gy and Gx.
    pub fn cer() -> Vec<u8> {
        let mut b = MessageBuilder::request(257, 0, false).ids(1, 1);
        b.avps = vec![
            text(264, 0, M, "pcef-01.gw.operator.example.net"),
            text(296, 0, M, "operator.example.net"),
            OwnedAvp::new(
                257,
                0,
                M,
                AvpValue::Address(std::net::IpAddr::from([192, 0, 2, 10])),
            ),
            u32_avp(266, 0, M, 0),
            text(269, 0, 0, "bench-pcef"),
            u32_avp(278, 0, M, 1_700_000_000),
            u32_avp(265, 0, M, TGPP),
            u32_avp(258, 0, M, 4),
            group(
                260,
                0,
                M,
                vec![u32_avp(266, 0, M, TGPP), u32_avp(258, 0, M, 16_777_238)],
            ),
            u32_avp(267, 0, 0, 1),
        ];
        b.to_bytes().to_vec()
    }
}

/// A dictionary in the `diameter` crate's XML format listing every AVP of `dict` (that crate
/// refuses to decode an AVP it does not know). All AVPs go under application 4, which that
/// crate knows; it looks AVPs up by (code, vendor) whatever the application. Types it lacks
/// (IPFilterRule, QoSFilterRule) are declared OctetString.
pub fn diameter_crate_dictionary_xml(dict: &Dictionary) -> String {
    let mut x =
        String::from("<diameter>\n<application id=\"4\" type=\"auth\" name=\"generated\">\n");
    for a in dict.avps() {
        let ty = match a.data_type {
            DataType::OctetString | DataType::IPFilterRule => "OctetString",
            DataType::Integer32 => "Integer32",
            DataType::Integer64 => "Integer64",
            DataType::Unsigned32 => "Unsigned32",
            DataType::Unsigned64 => "Unsigned64",
            DataType::Float32 => "Float32",
            DataType::Float64 => "Float64",
            DataType::Grouped => "Grouped",
            DataType::Address => "Address",
            DataType::Time => "Time",
            DataType::UTF8String => "UTF8String",
            DataType::DiameterIdentity => "DiameterIdentity",
            DataType::DiameterURI => "DiameterURI",
            DataType::Enumerated => "Enumerated",
        };
        let must = if a.m_send { "M" } else { "" };
        let name: String = a
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let _ = write!(
            x,
            "<avp name=\"{name}\" code=\"{}\" must=\"{must}\"",
            a.key.code
        );
        if a.key.vendor != 0 {
            let _ = write!(x, " vendor-id=\"{}\"", a.key.vendor);
        }
        let _ = writeln!(x, "><data type=\"{ty}\"/></avp>");
    }
    x.push_str("</application>\n</diameter>\n");
    x
}

pub mod freediameter {
    //! freeDiameter's receive-side parse (fd_msg_parse_buffer + fd_msg_parse_dict + fd_msg_free)
    //! through `csrc/fd_harness.c`.

    /// Whether the crate was built with the harness (the headers were found).
    pub const BUILT: bool = cfg!(have_freediameter);

    #[cfg(have_freediameter)]
    #[allow(unsafe_code)]
    mod ffi {
        use std::os::raw::{c_int, c_uchar};
        unsafe extern "C" {
            pub(super) fn fd_bench_init() -> c_int;
            pub(super) fn fd_bench_parse(buf: *const c_uchar, len: usize) -> c_int;
            pub(super) fn fd_bench_check(
                buf: *const c_uchar,
                len: usize,
                known: *mut c_int,
                unknown: *mut c_int,
            ) -> c_int;
        }
    }

    /// A handle proving the freeDiameter core is initialised with the DCCA and 3GPP
    /// dictionaries loaded.
    #[derive(Debug, Clone, Copy)]
    pub struct FreeDiameter(());

    impl FreeDiameter {
        /// Initialises the core (once per process) and loads `dict_nasreq`, `dict_dcca` and
        /// `dict_dcca_3gpp`. Fails with a reason when the harness was not built or the
        /// extensions cannot be loaded.
        pub fn init() -> Result<Self, String> {
            #[cfg(have_freediameter)]
            {
                static INIT: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
                // SAFETY: fd_bench_init takes no arguments and is idempotent; OnceLock runs it once.
                #[allow(unsafe_code)]
                let rc = *INIT.get_or_init(|| unsafe { ffi::fd_bench_init() });
                if rc == 0 {
                    Ok(Self(()))
                } else {
                    Err(format!(
                        "freeDiameter initialisation failed ({rc}); are the dictionary extensions \
                         installed (Debian package freediameter-extensions)?"
                    ))
                }
            }
            #[cfg(not(have_freediameter))]
            {
                Err(
                    "built without the freeDiameter headers (Debian package libfreediameter-dev)"
                        .to_string(),
                )
            }
        }

        /// One parse: copy into a buffer freeDiameter owns, fd_msg_parse_buffer,
        /// fd_msg_parse_dict, fd_msg_free. Returns freeDiameter's error code on failure.
        pub fn parse(&self, bytes: &[u8]) -> Result<(), i32> {
            #[cfg(have_freediameter)]
            {
                // SAFETY: `bytes` is valid for `len` bytes; the harness copies it before use.
                #[allow(unsafe_code)]
                let rc = unsafe { ffi::fd_bench_parse(bytes.as_ptr(), bytes.len()) };
                if rc == 0 { Ok(()) } else { Err(rc) }
            }
            #[cfg(not(have_freediameter))]
            {
                let _ = bytes;
                Err(-1)
            }
        }

        /// As [`FreeDiameter::parse`], returning how many AVPs (nested ones included) the
        /// dictionary resolved and how many it did not.
        pub fn check(&self, bytes: &[u8]) -> Result<(u32, u32), i32> {
            #[cfg(have_freediameter)]
            {
                let (mut known, mut unknown) = (0, 0);
                // SAFETY: as in `parse`; the two out-pointers are valid for the call.
                #[allow(unsafe_code)]
                let rc = unsafe {
                    ffi::fd_bench_check(bytes.as_ptr(), bytes.len(), &mut known, &mut unknown)
                };
                if rc == 0 {
                    Ok((known as u32, unknown as u32))
                } else {
                    Err(rc)
                }
            }
            #[cfg(not(have_freediameter))]
            {
                let _ = bytes;
                Err(-1)
            }
        }
    }

    /// Whether the environment demands that freeDiameter runs (CI sets
    /// `DIAMETER_REQUIRE_FREEDIAMETER=1`): then unavailability is an error, not a SKIP.
    pub fn required() -> bool {
        std::env::var("DIAMETER_REQUIRE_FREEDIAMETER").is_ok_and(|v| v == "1")
    }
}

/// Counts the AVPs of a message, nested ones included (Grouped per `dict`).
pub fn count_avps(msg: &diameter_codec::Message, dict: &Dictionary) -> usize {
    fn walk(avps: diameter_codec::AvpIter<'_>, dict: &Dictionary) -> usize {
        avps.flatten()
            .map(|a| {
                1 + if dict
                    .avp(a.key())
                    .is_some_and(|d| d.data_type == DataType::Grouped)
                {
                    walk(a.children(), dict)
                } else {
                    0
                }
            })
            .sum()
    }
    walk(msg.avps(), dict)
}

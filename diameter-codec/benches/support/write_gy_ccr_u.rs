//! The Gy CCR-U of `tests/vectors/gy_ccr_u.hex` written with [`MessageWriter`], shared by the
//! codec benchmark and `examples/instructions.rs` so both measure the same code.

use bytes::{Bytes, BytesMut};
use diameter_codec::dict::{base, dcca, gi, gy};
use diameter_codec::{CommandFlags, MessageWriter};

/// The CCR-U of `tests/vectors/gy_ccr_u.hex`, written AVP by AVP with [`MessageWriter`] from
/// typed values (the way a sender builds and encodes in one pass). Checked against the
/// vector before it is measured.
pub(crate) fn write_gy_ccr_u(buf: &mut BytesMut) -> usize {
    const HOME_REALM: &str = "epc.mnc001.mcc001.3gppnetwork.org";
    const ULI_TAI_ECGI: [u8; 13] = [
        0x82, 0x00, 0xf1, 0x10, 0x00, 0x01, 0x00, 0xf1, 0x10, 0x00, 0x00, 0x01, 0x01,
    ];
    let hbh = 0x6100_0002;
    let flags = CommandFlags(CommandFlags::REQUEST | CommandFlags::PROXIABLE);
    let mut w = MessageWriter::new(buf, flags, 272, 4, hbh, hbh ^ 0x7e57_0000);
    w.avp(base::SESSION_ID, "pcef1.example.net;1234;5679")
        .avp(base::ORIGIN_HOST, "pcef1.example.net")
        .avp(base::ORIGIN_REALM, HOME_REALM)
        .avp(base::DESTINATION_REALM, HOME_REALM)
        .avp(base::AUTH_APPLICATION_ID, 4u32)
        .avp(dcca::SERVICE_CONTEXT_ID, "32251@3gpp.org")
        .avp(dcca::CC_REQUEST_TYPE, dcca::CcRequestType::UPDATE_REQUEST)
        .avp(dcca::CC_REQUEST_NUMBER, 1u32)
        .begin(dcca::SUBSCRIPTION_ID)
        .avp(
            dcca::SUBSCRIPTION_ID_TYPE,
            dcca::SubscriptionIdType::END_USER_IMSI,
        )
        .avp(dcca::SUBSCRIPTION_ID_DATA, "001010123456789")
        .end()
        .avp(
            dcca::MULTIPLE_SERVICES_INDICATOR,
            dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED,
        );
    let reports = [
        (
            100u32,
            1000u32,
            300u32,
            1_048_576u64,
            9_437_184u64,
            gy::ReportingReason::QUOTA_EXHAUSTED,
        ),
        (
            200,
            2000,
            120,
            262_144,
            2_097_152,
            gy::ReportingReason::RATING_CONDITION_CHANGE,
        ),
        (
            300,
            3000,
            45,
            16_384,
            65_536,
            gy::ReportingReason::VALIDITY_TIME,
        ),
    ];
    for (rg, service, secs, input, output, reason) in reports {
        w.begin(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL)
            .begin(dcca::REQUESTED_SERVICE_UNIT)
            .end()
            .begin(dcca::USED_SERVICE_UNIT)
            .avp(dcca::CC_TIME, secs)
            .avp(dcca::CC_TOTAL_OCTETS, input + output)
            .avp(dcca::CC_INPUT_OCTETS, input)
            .avp(dcca::CC_OUTPUT_OCTETS, output)
            .end()
            .avp(dcca::SERVICE_IDENTIFIER, service)
            .avp(dcca::RATING_GROUP, rg)
            .avp(gy::REPORTING_REASON, reason)
            .end();
    }
    w.begin(dcca::USER_EQUIPMENT_INFO)
        .avp(
            dcca::USER_EQUIPMENT_INFO_TYPE,
            dcca::UserEquipmentInfoType::IMEISV,
        )
        .avp(
            dcca::USER_EQUIPMENT_INFO_VALUE,
            Bytes::from_static(b"3569190100012301"),
        )
        .end()
        .begin(gy::SERVICE_INFORMATION)
        .begin(gy::PS_INFORMATION)
        .avp(gi::TGPP_CHARGING_ID, 0x1a2b_3c4du32)
        .avp(
            gi::TGPP_USER_LOCATION_INFO,
            Bytes::from_static(&ULI_TAI_ECGI),
        )
        .avp(gi::TGPP_RAT_TYPE, Bytes::from_static(&[0x06]))
        .end()
        .end();
    w.finish().expect("balanced")
}

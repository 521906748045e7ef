//! Golden vectors, checked in both directions.
//!
//! Each vector in `tests/vectors/` is a pair of files:
//!
//! - `NAME.hex`: the message bytes as hex (whitespace ignored), after `#` comment lines that say
//!   what the message is;
//! - `NAME.json`: the expected decoded form, the `Renderer` JSON of the message.
//!
//! For each vector a function below builds the message with the typed constants. The test
//! checks that the builder encodes to exactly the bytes of the `.hex` file, that the file's
//! bytes decode to exactly the `.json` file, validate against the dictionary grammar, and
//! frame correctly (Message Length a multiple of 4 and equal to the file length); and the
//! per-vector tests read the key values back through the typed accessors.
//!
//! To change a vector deliberately, edit its builder and run
//! `UPDATE_GOLDEN=1 cargo test -p diameter-codec --test golden`, which rewrites the `.hex`
//! and `.json` files from the builders; review the diff before committing it.
//!
//! Other suites use these files too: the benchmarks (`gx_cca_5_rules`, `gy_ccr_u`) and the
//! Wireshark agreement test in `tests/tests/wireshark.rs`.

use bytes::Bytes;
use diameter_codec::dict::{base, dcca, gi, gx, gy, nasreq, roaming, rx, s6a, s9, ts29229};
use diameter_codec::types::DiameterTime;
use diameter_codec::{
    AvpIter, AvpKey, AvpRef, DataType, Dictionary, LocalIdentity, Message, MessageBuilder,
    OwnedAvp, Renderer, ResultCode, validate,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// Identities and values shared by the vectors.
// ---------------------------------------------------------------------------------------------

const PCEF_HOST: &str = "pcef1.example.net";
const PCRF_HOST: &str = "pcrf1.example.net";
const OCS_HOST: &str = "ocs1.example.net";
const AF_HOST: &str = "af1.example.net";
const VPCRF_HOST: &str = "vpcrf1.example.net";
const HPCRF_HOST: &str = "hpcrf1.example.net";
/// The home network: IMSI 001010123456789 belongs to MCC 001 / MNC 01.
const HOME_REALM: &str = "epc.mnc001.mcc001.3gppnetwork.org";
/// The visited network of the roaming vectors.
const VISITED_REALM: &str = "epc.mnc002.mcc002.3gppnetwork.org";
const IMS_REALM: &str = "ims.mnc001.mcc001.3gppnetwork.org";

const GX_SESSION: &str = "pcef1.example.net;1234;5678";
const GY_SESSION: &str = "pcef1.example.net;1234;5679";
const RX_SESSION: &str = "af1.example.net;2345;6789";
const S9_SESSION: &str = "vpcrf1.example.net;3456;7890";
const S6A_SESSION: &str = "mme1.example.net;4567;8901";
const CX_SESSION: &str = "scscf1.ims.example.net;5678;9012";
const MME_HOST: &str = "mme1.example.net";
const HSS_HOST: &str = "hss1.example.net";
const SCSCF_HOST: &str = "scscf1.ims.example.net";
const HSS_IMS_HOST: &str = "hss1.ims.example.net";
/// MCC 001 / MNC 01 as a PLMN identity (TS 24.008 §10.5.1.13: MCC digit 2|1, MNC digit 3|MCC 3,
/// MNC 2|1).
const HOME_PLMN: [u8; 3] = [0x00, 0xf1, 0x10];
const IMPI: &str = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org";
const IMPU: &str = "sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org";

const IMSI: &str = "001010123456789";
const MSISDN: &str = "15555550123";
const IMEISV: &str = "3569190100012301";
const APN: &str = "internet";
const TGPP: u32 = 10415;
const OUR_VENDOR: u32 = 32473;
/// Gy Service-Context-Id for PS charging (TS 32.299 §7.1.12).
const PS_CHARGING_CONTEXT: &str = "32251@3gpp.org";

/// 2025-06-01T12:00:00Z, used for every Time AVP.
const UNIX_T0: i64 = 1_748_779_200;

fn time(offset_secs: i64) -> DiameterTime {
    DiameterTime::from_unix(UNIX_T0 + offset_secs).expect("representable time")
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// The UE's IPv4 address.
const UE_IPV4: [u8; 4] = [192, 0, 2, 100];
/// The SGW / AN-GW.
const SGW_IPV4: [u8; 4] = [192, 0, 2, 20];
/// The PGW / PCEF.
const PGW_IPV4: [u8; 4] = [192, 0, 2, 10];

/// 3GPP-User-Location-Info (TS 29.061 §16.4.7.2): type 130 = TAI + ECGI, MCC 001 / MNC 01,
/// TAC 0x0001, ECI 0x0000101.
const ULI_TAI_ECGI: [u8; 13] = [
    0x82, 0x00, 0xf1, 0x10, 0x00, 0x01, 0x00, 0xf1, 0x10, 0x00, 0x00, 0x01, 0x01,
];
/// 3GPP-User-Location-Info type 1 = SAI: MCC 001 / MNC 01, LAC 0x002a, SAC 0x0102.
const ULI_SAI: [u8; 8] = [0x01, 0x00, 0xf1, 0x10, 0x00, 0x2a, 0x01, 0x02];
/// 3GPP-MS-TimeZone: GMT+1 (4 quarter hours, semi-octets swapped), no DST adjustment.
const MS_TIMEZONE: [u8; 2] = [0x40, 0x00];

fn bytes(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

fn ident(host: &str, realm: &str) -> LocalIdentity {
    LocalIdentity::new(host, realm)
}

fn subscription_imsi() -> OwnedAvp {
    dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_IMSI),
        dcca::SUBSCRIPTION_ID_DATA.with(IMSI),
    ])
}

fn subscription_msisdn() -> OwnedAvp {
    dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_E164),
        dcca::SUBSCRIPTION_ID_DATA.with(MSISDN),
    ])
}

fn user_equipment_info() -> OwnedAvp {
    dcca::USER_EQUIPMENT_INFO.with(vec![
        dcca::USER_EQUIPMENT_INFO_TYPE.with(dcca::UserEquipmentInfoType::IMEISV),
        dcca::USER_EQUIPMENT_INFO_VALUE.with(bytes(IMEISV.as_bytes())),
    ])
}

fn supported_features(list: u32) -> OwnedAvp {
    ts29229::SUPPORTED_FEATURES.with(vec![
        base::VENDOR_ID.with(TGPP),
        ts29229::FEATURE_LIST_ID.with(1u32),
        ts29229::FEATURE_LIST.with(list),
    ])
}

fn arp(level: u32) -> OwnedAvp {
    gx::ALLOCATION_RETENTION_PRIORITY.with(vec![
        gx::PRIORITY_LEVEL.with(level),
        gx::PRE_EMPTION_CAPABILITY.with(gx::PreEmptionCapability::PRE_EMPTION_CAPABILITY_DISABLED),
        gx::PRE_EMPTION_VULNERABILITY
            .with(gx::PreEmptionVulnerability::PRE_EMPTION_VULNERABILITY_ENABLED),
    ])
}

fn default_bearer_qos() -> OwnedAvp {
    gx::DEFAULT_EPS_BEARER_QOS.with(vec![
        gx::QOS_CLASS_IDENTIFIER.with(gx::QosClassIdentifier::QCI_9),
        arp(8),
    ])
}

fn apn_ambr(ul: u32, dl: u32) -> OwnedAvp {
    gx::QOS_INFORMATION.with(vec![
        gx::APN_AGGREGATE_MAX_BITRATE_UL.with(ul),
        gx::APN_AGGREGATE_MAX_BITRATE_DL.with(dl),
    ])
}

fn flow(description: &'static str) -> OwnedAvp {
    gx::FLOW_INFORMATION.with(vec![rx::FLOW_DESCRIPTION.with(description)])
}

// ---------------------------------------------------------------------------------------------
// Base protocol.
// ---------------------------------------------------------------------------------------------

fn cer() -> MessageBuilder {
    let mut m = MessageBuilder::request(
        base::CMD_CAPABILITIES_EXCHANGE,
        base::APP_DIAMETER_COMMON_MESSAGES,
        false,
    )
    .ids(0x5ca1_0001, 0x7e57_0001);
    m.push(base::ORIGIN_HOST.with(PCEF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::HOST_IP_ADDRESS.with(IpAddr::from(PGW_IPV4)));
    m.push(base::HOST_IP_ADDRESS.with(v6(0x10)));
    m.push(base::VENDOR_ID.with(OUR_VENDOR));
    m.push(base::PRODUCT_NAME.with("diameter-stack pcef-sim"));
    m.push(base::ORIGIN_STATE_ID.with(1_748_779_200u32));
    m.push(base::SUPPORTED_VENDOR_ID.with(TGPP));
    m.push(base::SUPPORTED_VENDOR_ID.with(OUR_VENDOR));
    m.push(base::AUTH_APPLICATION_ID.with(dcca::APP_DIAMETER_CREDIT_CONTROL));
    m.push(base::INBAND_SECURITY_ID.with(0u32));
    m.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(TGPP),
        base::AUTH_APPLICATION_ID.with(gx::APP_GX),
    ]));
    m.push(base::FIRMWARE_REVISION.with(100u32));
    m
}

fn cea() -> MessageBuilder {
    let req = cer().build().expect("CER decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(PCRF_HOST, HOME_REALM));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(base::HOST_IP_ADDRESS.with(v4(192, 0, 2, 30)));
    m.push(base::VENDOR_ID.with(OUR_VENDOR));
    m.push(base::PRODUCT_NAME.with("diameter-stack pcrf"));
    m.push(base::ORIGIN_STATE_ID.with(1_748_770_000u32));
    m.push(base::SUPPORTED_VENDOR_ID.with(TGPP));
    m.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(TGPP),
        base::AUTH_APPLICATION_ID.with(gx::APP_GX),
    ]));
    m.push(base::FIRMWARE_REVISION.with(100u32));
    m
}

fn dwr() -> MessageBuilder {
    let mut m = MessageBuilder::request(
        base::CMD_DEVICE_WATCHDOG,
        base::APP_DIAMETER_COMMON_MESSAGES,
        false,
    )
    .ids(0x5ca1_0002, 0x7e57_0002);
    m.push(base::ORIGIN_HOST.with(PCEF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::ORIGIN_STATE_ID.with(1_748_779_200u32));
    m
}

fn dwa() -> MessageBuilder {
    let req = dwr().build().expect("DWR decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(PCRF_HOST, HOME_REALM));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(base::ORIGIN_STATE_ID.with(1_748_770_000u32));
    m
}

fn dpr() -> MessageBuilder {
    let mut m = MessageBuilder::request(
        base::CMD_DISCONNECT_PEER,
        base::APP_DIAMETER_COMMON_MESSAGES,
        false,
    )
    .ids(0x5ca1_0003, 0x7e57_0003);
    m.push(base::ORIGIN_HOST.with(PCEF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DISCONNECT_CAUSE.with(base::DisconnectCause::REBOOTING));
    m
}

fn dpa() -> MessageBuilder {
    let req = dpr().build().expect("DPR decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(PCRF_HOST, HOME_REALM));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m
}

// ---------------------------------------------------------------------------------------------
// Gx (TS 29.212).
// ---------------------------------------------------------------------------------------------

fn gx_request(cmd: u32, hbh: u32) -> MessageBuilder {
    MessageBuilder::request(cmd, gx::APP_GX, true).ids(hbh, hbh ^ 0x7e57_0000)
}

fn gx_ccr_i() -> MessageBuilder {
    let mut m = gx_request(gx::CMD_CREDIT_CONTROL, 0x6700_0001);
    m.push(base::SESSION_ID.with(GX_SESSION));
    m.push(base::AUTH_APPLICATION_ID.with(gx::APP_GX));
    m.push(base::ORIGIN_HOST.with(PCEF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(0u32));
    m.push(subscription_imsi());
    m.push(subscription_msisdn());
    m.push(supported_features(0x0000_000b));
    m.push(gx::NETWORK_REQUEST_SUPPORT.with(gx::NetworkRequestSupport::NETWORK_REQUEST_SUPPORTED));
    m.push(nasreq::FRAMED_IP_ADDRESS.with(bytes(&UE_IPV4)));
    m.push(gx::IP_CAN_TYPE.with(gx::IpCanType::TGPP_EPS));
    m.push(gx::RAT_TYPE.with(gx::RatType::EUTRAN));
    m.push(user_equipment_info());
    m.push(apn_ambr(50_000_000, 150_000_000));
    m.push(default_bearer_qos());
    m.push(gx::AN_GW_ADDRESS.with(IpAddr::from(SGW_IPV4)));
    m.push(gi::TGPP_SGSN_MCC_MNC.with("00101"));
    m.push(gi::TGPP_SELECTION_MODE.with("0"));
    m.push(gi::TGPP_USER_LOCATION_INFO.with(bytes(&ULI_TAI_ECGI)));
    m.push(gi::TGPP_MS_TIMEZONE.with(bytes(&MS_TIMEZONE)));
    m.push(gi::TGPP_CHARGING_CHARACTERISTICS.with("0800"));
    m.push(nasreq::CALLED_STATION_ID.with(APN));
    m.push(gx::BEARER_USAGE.with(gx::BearerUsage::GENERAL));
    m.push(rx::ACCESS_NETWORK_CHARGING_ADDRESS.with(IpAddr::from(PGW_IPV4)));
    m
}

fn gx_cca_i() -> MessageBuilder {
    let req = gx_ccr_i().build().expect("CCR-I decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(PCRF_HOST, HOME_REALM));
    m.push(base::AUTH_APPLICATION_ID.with(gx::APP_GX));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(0u32));
    m.push(supported_features(0x0000_000b));
    m.push(gx::BEARER_CONTROL_MODE.with(gx::BearerControlMode::UE_NW));
    m.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::RAT_CHANGE));
    m.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::USER_LOCATION_CHANGE));
    m.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::UE_TIME_ZONE_CHANGE));
    m.push(
        gx::CHARGING_RULE_INSTALL.with(vec![gx::CHARGING_RULE_BASE_NAME.with("internet-default")]),
    );
    m.push(ts29229::CHARGING_INFORMATION.with(vec![
            ts29229::PRIMARY_EVENT_CHARGING_FUNCTION_NAME
                .with("aaa://ocs1.example.net:3868;transport=tcp"),
        ]));
    m.push(gx::ONLINE.with(gx::Online::ENABLE_ONLINE));
    m.push(gx::OFFLINE.with(gx::Offline::DISABLE_OFFLINE));
    m.push(apn_ambr(50_000_000, 150_000_000));
    m.push(default_bearer_qos());
    m
}

fn gx_ccr_u_event_trigger() -> MessageBuilder {
    let mut m = gx_request(gx::CMD_CREDIT_CONTROL, 0x6700_0002);
    m.push(base::SESSION_ID.with(GX_SESSION));
    m.push(base::AUTH_APPLICATION_ID.with(gx::APP_GX));
    m.push(base::ORIGIN_HOST.with(PCEF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::UPDATE_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(1u32));
    m.push(base::DESTINATION_HOST.with(PCRF_HOST));
    m.push(gx::BEARER_IDENTIFIER.with(bytes(&[0x05])));
    m.push(gx::BEARER_OPERATION.with(gx::BearerOperation::MODIFICATION));
    m.push(gx::IP_CAN_TYPE.with(gx::IpCanType::TGPP_GPRS));
    m.push(gi::TGPP_RAT_TYPE.with(bytes(&[0x01])));
    m.push(gx::RAT_TYPE.with(gx::RatType::UTRAN));
    m.push(gi::TGPP_SGSN_MCC_MNC.with("00101"));
    m.push(gi::TGPP_SGSN_ADDRESS.with(bytes(&SGW_IPV4)));
    m.push(gi::TGPP_USER_LOCATION_INFO.with(bytes(&ULI_SAI)));
    m.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::RAT_CHANGE));
    m.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::USER_LOCATION_CHANGE));
    m
}

fn gx_rar_charging_rule_install() -> MessageBuilder {
    let mut m = gx_request(gx::CMD_RE_AUTH, 0x6700_0003);
    m.push(base::SESSION_ID.with(GX_SESSION));
    m.push(base::AUTH_APPLICATION_ID.with(gx::APP_GX));
    m.push(base::ORIGIN_HOST.with(PCRF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_HOST.with(PCEF_HOST));
    m.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    m.push(gx::EVENT_TRIGGER.with(gx::EventTrigger::RAT_CHANGE));
    m.push(gx::CHARGING_RULE_REMOVE.with(vec![
        gx::CHARGING_RULE_NAME.with(Bytes::from_static(b"video-sd")),
    ]));
    m.push(
        gx::CHARGING_RULE_INSTALL.with(vec![gx::CHARGING_RULE_DEFINITION.with(vec![
            gx::CHARGING_RULE_NAME.with(Bytes::from_static(b"video-hd")),
            dcca::SERVICE_IDENTIFIER.with(2000u32),
            dcca::RATING_GROUP.with(200u32),
            flow("permit out 6 from 192.0.2.80 443 to assigned"),
            flow("permit in 6 from assigned to 192.0.2.80 443"),
            rx::FLOW_STATUS.with(rx::FlowStatus::ENABLED),
            gx::QOS_INFORMATION.with(vec![
                gx::QOS_CLASS_IDENTIFIER.with(gx::QosClassIdentifier::QCI_6),
                rx::MAX_REQUESTED_BANDWIDTH_UL.with(2_000_000u32),
                rx::MAX_REQUESTED_BANDWIDTH_DL.with(8_000_000u32),
                arp(6),
            ]),
            gx::ONLINE.with(gx::Online::ENABLE_ONLINE),
            gx::OFFLINE.with(gx::Offline::DISABLE_OFFLINE),
            gx::METERING_METHOD.with(gx::MeteringMethod::VOLUME),
            gx::PRECEDENCE.with(100u32),
        ])]),
    );
    m
}

/// One of the five rules of `gx_cca_5_rules`.
fn rule(i: u32) -> OwnedAvp {
    const FLOWS: [(&str, &str); 5] = [
        (
            "permit out 6 from 192.0.2.80 80 to assigned",
            "permit in 6 from assigned to 192.0.2.80 80",
        ),
        (
            "permit out 6 from 192.0.2.81 443 to assigned",
            "permit in 6 from assigned to 192.0.2.81 443",
        ),
        (
            "permit out 17 from 192.0.2.82 to assigned 5004-5005",
            "permit in 17 from assigned 5004-5005 to 192.0.2.82",
        ),
        (
            "permit out 17 from 2001:db8::53 53 to assigned",
            "permit in 17 from assigned to 2001:db8::53 53",
        ),
        (
            "permit out ip from 192.0.2.0/24 to assigned",
            "permit in ip from assigned to 192.0.2.0/24",
        ),
    ];
    const QCI: [gx::QosClassIdentifier; 5] = [
        gx::QosClassIdentifier::QCI_9,
        gx::QosClassIdentifier::QCI_8,
        gx::QosClassIdentifier::QCI_2,
        gx::QosClassIdentifier::QCI_7,
        gx::QosClassIdentifier::QCI_6,
    ];
    let n = i as usize;
    let name = format!("rule-{}", i + 1);
    gx::CHARGING_RULE_INSTALL.with(vec![gx::CHARGING_RULE_DEFINITION.with(vec![
        gx::CHARGING_RULE_NAME.with(Bytes::from(name)),
        dcca::RATING_GROUP.with(100 + 10 * i),
        flow(FLOWS[n].0),
        flow(FLOWS[n].1),
        gx::QOS_INFORMATION.with(vec![
            gx::QOS_CLASS_IDENTIFIER.with(QCI[n]),
            rx::MAX_REQUESTED_BANDWIDTH_UL.with(1_000_000 * (i + 1)),
            rx::MAX_REQUESTED_BANDWIDTH_DL.with(4_000_000 * (i + 1)),
        ]),
        gx::ONLINE.with(if i % 2 == 0 {
            gx::Online::ENABLE_ONLINE
        } else {
            gx::Online::DISABLE_ONLINE
        }),
        gx::OFFLINE.with(if i % 2 == 0 {
            gx::Offline::DISABLE_OFFLINE
        } else {
            gx::Offline::ENABLE_OFFLINE
        }),
        gx::PRECEDENCE.with(10 * (i + 1)),
    ])])
}

fn gx_cca_5_rules() -> MessageBuilder {
    let req = gx_ccr_u_event_trigger().build().expect("CCR-U decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(PCRF_HOST, HOME_REALM));
    m.push(base::AUTH_APPLICATION_ID.with(gx::APP_GX));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::UPDATE_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(1u32));
    for i in 0..5 {
        m.push(rule(i));
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Gy (RFC 4006 + TS 32.299).
// ---------------------------------------------------------------------------------------------

fn gy_request(hbh: u32, request_type: dcca::CcRequestType, number: u32) -> MessageBuilder {
    let mut m = MessageBuilder::request(
        dcca::CMD_CREDIT_CONTROL,
        dcca::APP_DIAMETER_CREDIT_CONTROL,
        true,
    )
    .ids(hbh, hbh ^ 0x7e57_0000);
    m.push(base::SESSION_ID.with(GY_SESSION));
    m.push(base::ORIGIN_HOST.with(PCEF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(base::AUTH_APPLICATION_ID.with(dcca::APP_DIAMETER_CREDIT_CONTROL));
    m.push(dcca::SERVICE_CONTEXT_ID.with(PS_CHARGING_CONTEXT));
    m.push(dcca::CC_REQUEST_TYPE.with(request_type));
    m.push(dcca::CC_REQUEST_NUMBER.with(number));
    m
}

fn used(time: u32, input: u64, output: u64) -> OwnedAvp {
    dcca::USED_SERVICE_UNIT.with(vec![
        dcca::CC_TIME.with(time),
        dcca::CC_TOTAL_OCTETS.with(input + output),
        dcca::CC_INPUT_OCTETS.with(input),
        dcca::CC_OUTPUT_OCTETS.with(output),
    ])
}

fn gy_ccr_i() -> MessageBuilder {
    let mut m = gy_request(0x6100_0001, dcca::CcRequestType::INITIAL_REQUEST, 0);
    m.push(base::ORIGIN_STATE_ID.with(1_748_779_200u32));
    m.push(base::EVENT_TIMESTAMP.with(time(0)));
    m.push(subscription_imsi());
    m.push(subscription_msisdn());
    m.push(
        dcca::MULTIPLE_SERVICES_INDICATOR
            .with(dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED),
    );
    m.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
        dcca::REQUESTED_SERVICE_UNIT.with(vec![]),
        dcca::RATING_GROUP.with(100u32),
    ]));
    m.push(user_equipment_info());
    m.push(
        gy::SERVICE_INFORMATION.with(vec![gy::PS_INFORMATION.with(vec![
            gi::TGPP_CHARGING_ID.with(0x1a2b_3c4du32),
            gi::TGPP_PDP_TYPE.with(gi::TgppPdpType::IPV4),
            gy::PDP_ADDRESS.with(IpAddr::from(UE_IPV4)),
            gy::SGSN_ADDRESS.with(IpAddr::from(SGW_IPV4)),
            gy::GGSN_ADDRESS.with(IpAddr::from(PGW_IPV4)),
            gi::TGPP_IMSI_MCC_MNC.with("00101"),
            gi::TGPP_GGSN_MCC_MNC.with("00101"),
            nasreq::CALLED_STATION_ID.with(APN),
            gi::TGPP_SELECTION_MODE.with("0"),
            gi::TGPP_CHARGING_CHARACTERISTICS.with("0800"),
            gi::TGPP_SGSN_MCC_MNC.with("00101"),
            gi::TGPP_MS_TIMEZONE.with(bytes(&MS_TIMEZONE)),
            gi::TGPP_USER_LOCATION_INFO.with(bytes(&ULI_TAI_ECGI)),
            gi::TGPP_RAT_TYPE.with(bytes(&[0x06])),
        ])]),
    );
    m
}

/// The Gy CCR-U the benchmarks use: three MSCCs, each reporting usage and asking for more.
fn gy_ccr_u() -> MessageBuilder {
    let mut m = gy_request(0x6100_0002, dcca::CcRequestType::UPDATE_REQUEST, 1);
    m.push(subscription_imsi());
    m.push(
        dcca::MULTIPLE_SERVICES_INDICATOR
            .with(dcca::MultipleServicesIndicator::MULTIPLE_SERVICES_SUPPORTED),
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
        m.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
            dcca::REQUESTED_SERVICE_UNIT.with(vec![]),
            used(secs, input, output),
            dcca::SERVICE_IDENTIFIER.with(service),
            dcca::RATING_GROUP.with(rg),
            gy::REPORTING_REASON.with(reason),
        ]));
    }
    m.push(user_equipment_info());
    m.push(
        gy::SERVICE_INFORMATION.with(vec![gy::PS_INFORMATION.with(vec![
            gi::TGPP_CHARGING_ID.with(0x1a2b_3c4du32),
            gi::TGPP_USER_LOCATION_INFO.with(bytes(&ULI_TAI_ECGI)),
            gi::TGPP_RAT_TYPE.with(bytes(&[0x06])),
        ])]),
    );
    m
}

fn gy_ccr_t() -> MessageBuilder {
    let mut m = gy_request(0x6100_0003, dcca::CcRequestType::TERMINATION_REQUEST, 2);
    m.push(base::EVENT_TIMESTAMP.with(time(3600)));
    m.push(subscription_imsi());
    m.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_LOGOUT));
    m.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
        used(600, 524_288, 4_194_304),
        dcca::RATING_GROUP.with(100u32),
        gy::REPORTING_REASON.with(gy::ReportingReason::FINAL),
    ]));
    m.push(user_equipment_info());
    m
}

fn gy_cca_fui_triggers() -> MessageBuilder {
    let req = gy_ccr_u().build().expect("CCR-U decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(OCS_HOST, HOME_REALM));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(base::AUTH_APPLICATION_ID.with(dcca::APP_DIAMETER_CREDIT_CONTROL));
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::UPDATE_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(1u32));
    // Rating group 100: last grant, then redirect to the top-up portal.
    m.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
        dcca::GRANTED_SERVICE_UNIT.with(vec![dcca::CC_TOTAL_OCTETS.with(5_242_880u64)]),
        dcca::RATING_GROUP.with(100u32),
        dcca::VALIDITY_TIME.with(3600u32),
        base::RESULT_CODE.with(ResultCode::DIAMETER_SUCCESS.0),
        dcca::FINAL_UNIT_INDICATION.with(vec![
            dcca::FINAL_UNIT_ACTION.with(dcca::FinalUnitAction::REDIRECT),
            dcca::REDIRECT_SERVER.with(vec![
                dcca::REDIRECT_ADDRESS_TYPE.with(dcca::RedirectAddressType::URL),
                dcca::REDIRECT_SERVER_ADDRESS.with("http://topup.example.net/"),
            ]),
        ]),
        gy::VOLUME_QUOTA_THRESHOLD.with(1_048_576u32),
        gy::QUOTA_HOLDING_TIME.with(300u32),
        gy::TRIGGER.with(vec![
            gy::TRIGGER_TYPE.with(gy::TriggerType::CHANGE_IN_RAT),
            gy::TRIGGER_TYPE.with(gy::TriggerType::CHANGEINLOCATION_ECGI),
            gy::TRIGGER_TYPE.with(gy::TriggerType::CHANGE_IN_QOS),
        ]),
    ]));
    // Rating group 200: time quota, then restrict access to the portal.
    m.push(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.with(vec![
        dcca::GRANTED_SERVICE_UNIT.with(vec![dcca::CC_TIME.with(1800u32)]),
        dcca::RATING_GROUP.with(200u32),
        dcca::VALIDITY_TIME.with(1800u32),
        base::RESULT_CODE.with(ResultCode::DIAMETER_SUCCESS.0),
        dcca::FINAL_UNIT_INDICATION.with(vec![
            dcca::FINAL_UNIT_ACTION.with(dcca::FinalUnitAction::RESTRICT_ACCESS),
            dcca::RESTRICTION_FILTER_RULE.with("permit out ip from 192.0.2.80 to assigned"),
            dcca::RESTRICTION_FILTER_RULE.with("permit in ip from assigned to 192.0.2.80"),
        ]),
        gy::TIME_QUOTA_THRESHOLD.with(120u32),
        gy::QUOTA_HOLDING_TIME.with(600u32),
        gy::TRIGGER.with(vec![
            gy::TRIGGER_TYPE.with(gy::TriggerType::CHANGE_IN_RAT),
            gy::TRIGGER_TYPE.with(gy::TriggerType::CHANGE_IN_UE_TIMEZONE),
        ]),
    ]));
    m
}

// ---------------------------------------------------------------------------------------------
// S9 (TS 29.215) and the LBO grant.
// ---------------------------------------------------------------------------------------------

fn s9_request(cmd: u32, hbh: u32) -> MessageBuilder {
    MessageBuilder::request(cmd, s9::APP_S9, true).ids(hbh, hbh ^ 0x7e57_0000)
}

fn s9_ccr_subsession() -> MessageBuilder {
    let mut m = s9_request(s9::CMD_CREDIT_CONTROL, 0x5900_0001);
    m.push(base::SESSION_ID.with(S9_SESSION));
    m.push(base::AUTH_APPLICATION_ID.with(s9::APP_S9));
    m.push(base::ORIGIN_HOST.with(VPCRF_HOST));
    m.push(base::ORIGIN_REALM.with(VISITED_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::UPDATE_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(1u32));
    m.push(base::DESTINATION_HOST.with(HPCRF_HOST));
    m.push(subscription_imsi());
    m.push(supported_features(0x0000_0003));
    m.push(s9::SUBSESSION_ENFORCEMENT_INFO.with(vec![
        s9::SUBSESSION_ID.with(1u32),
        s9::SUBSESSION_OPERATION.with(s9::SubsessionOperation::ESTABLISHMENT),
        gx::AN_GW_ADDRESS.with(v4(192, 0, 2, 21)),
        nasreq::FRAMED_IP_ADDRESS.with(bytes(&UE_IPV4)),
        nasreq::CALLED_STATION_ID.with(APN),
        gx::IP_CAN_TYPE.with(gx::IpCanType::TGPP_EPS),
        gx::RAT_TYPE.with(gx::RatType::EUTRAN),
        gi::TGPP_SGSN_MCC_MNC.with("00202"),
        gi::TGPP_USER_LOCATION_INFO.with(bytes(&ULI_TAI_ECGI)),
        default_bearer_qos(),
        gx::EVENT_TRIGGER.with(gx::EventTrigger::UE_IP_ADDRESS_ALLOCATE),
    ]));
    m
}

fn s9_cca() -> MessageBuilder {
    let req = s9_ccr_subsession().build().expect("S9 CCR decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(HPCRF_HOST, HOME_REALM));
    m.push(base::AUTH_APPLICATION_ID.with(s9::APP_S9));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::UPDATE_REQUEST));
    m.push(dcca::CC_REQUEST_NUMBER.with(1u32));
    m.push(supported_features(0x0000_0003));
    m.push(s9::SUBSESSION_DECISION_INFO.with(vec![
        s9::SUBSESSION_ID.with(1u32),
        gx::CHARGING_RULE_INSTALL.with(vec![gx::CHARGING_RULE_BASE_NAME.with("roaming-default")]),
        default_bearer_qos(),
        gx::BEARER_CONTROL_MODE.with(gx::BearerControlMode::UE_NW),
        gx::EVENT_TRIGGER.with(gx::EventTrigger::RAT_CHANGE),
        gx::EVENT_TRIGGER.with(gx::EventTrigger::USER_LOCATION_CHANGE),
        gx::ONLINE.with(gx::Online::ENABLE_ONLINE),
        gx::OFFLINE.with(gx::Offline::DISABLE_OFFLINE),
        apn_ambr(20_000_000, 80_000_000),
    ]));
    m
}

fn lbo_grant() -> MessageBuilder {
    // An HMAC-SHA-256 sized signature; the value is a fixed pattern, not a real MAC.
    let signature: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let mut m = s9_request(s9::CMD_RE_AUTH, 0x5900_0002);
    m.push(base::SESSION_ID.with(S9_SESSION));
    m.push(base::AUTH_APPLICATION_ID.with(s9::APP_S9));
    m.push(base::ORIGIN_HOST.with(HPCRF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(VISITED_REALM));
    m.push(base::DESTINATION_HOST.with(VPCRF_HOST));
    m.push(base::RE_AUTH_REQUEST_TYPE.with(base::ReAuthRequestType::AUTHORIZE_ONLY));
    m.push(s9::SUBSESSION_DECISION_INFO.with(vec![
        s9::SUBSESSION_ID.with(1u32),
        gx::CHARGING_RULE_INSTALL.with(vec![gx::CHARGING_RULE_DEFINITION.with(vec![
            gx::CHARGING_RULE_NAME.with(Bytes::from_static(b"lbo-video")),
            dcca::RATING_GROUP.with(400u32),
            flow("permit out 6 from 192.0.2.90 443 to assigned"),
            flow("permit in 6 from assigned to 192.0.2.90 443"),
            gx::QOS_INFORMATION.with(vec![
                gx::QOS_CLASS_IDENTIFIER.with(gx::QosClassIdentifier::QCI_8),
                rx::MAX_REQUESTED_BANDWIDTH_UL.with(1_000_000u32),
                rx::MAX_REQUESTED_BANDWIDTH_DL.with(10_000_000u32),
            ]),
            gx::ONLINE.with(gx::Online::DISABLE_ONLINE),
            gx::OFFLINE.with(gx::Offline::ENABLE_OFFLINE),
            gx::PRECEDENCE.with(50u32),
            roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT),
            roaming::LBO_GRANT.with(vec![
                roaming::LBO_GRANT_ID.with("grant-0001"),
                roaming::LBO_HOME_OPERATOR_ID.with("00101"),
                roaming::LBO_SERVICE_PACKAGE_ID.with("video-hd"),
                roaming::LBO_GRANT_EXPIRY.with(time(86_400)),
                roaming::LBO_GRANT_SIGNATURE.with(Bytes::from(signature)),
            ]),
        ])]),
    ]));
    m
}

// ---------------------------------------------------------------------------------------------
// Rx (TS 29.214).
// ---------------------------------------------------------------------------------------------

fn rx_request(cmd: u32, hbh: u32) -> MessageBuilder {
    MessageBuilder::request(cmd, rx::APP_RX, true).ids(hbh, hbh ^ 0x7e57_0000)
}

fn rx_aar() -> MessageBuilder {
    let mut m = rx_request(rx::CMD_AA, 0x5800_0001);
    m.push(base::SESSION_ID.with(RX_SESSION));
    m.push(base::AUTH_APPLICATION_ID.with(rx::APP_RX));
    m.push(base::ORIGIN_HOST.with(AF_HOST));
    m.push(base::ORIGIN_REALM.with(IMS_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(rx::AF_APPLICATION_IDENTIFIER.with(Bytes::from_static(b"IMS Services")));
    m.push(rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(1u32),
        rx::MEDIA_SUB_COMPONENT.with(vec![
                rx::FLOW_NUMBER.with(1u32),
                rx::FLOW_DESCRIPTION
                    .with("permit out 17 from 2001:db8::200 50000 to 2001:db8::100 49000"),
                rx::FLOW_DESCRIPTION
                    .with("permit in 17 from 2001:db8::100 49000 to 2001:db8::200 50000"),
            ]),
        rx::MEDIA_SUB_COMPONENT.with(vec![
                rx::FLOW_NUMBER.with(2u32),
                rx::FLOW_DESCRIPTION
                    .with("permit out 17 from 2001:db8::200 50001 to 2001:db8::100 49001"),
                rx::FLOW_DESCRIPTION
                    .with("permit in 17 from 2001:db8::100 49001 to 2001:db8::200 50001"),
                rx::FLOW_USAGE.with(rx::FlowUsage::RTCP),
            ]),
        rx::MEDIA_TYPE.with(rx::MediaType::AUDIO),
        rx::MAX_REQUESTED_BANDWIDTH_UL.with(64_000u32),
        rx::MAX_REQUESTED_BANDWIDTH_DL.with(64_000u32),
        rx::FLOW_STATUS.with(rx::FlowStatus::ENABLED),
        rx::RR_BANDWIDTH.with(600u32),
        rx::RS_BANDWIDTH.with(2000u32),
    ]));
    m.push(rx::SERVICE_INFO_STATUS.with(rx::ServiceInfoStatus::FINAL_SERVICE_INFORMATION));
    m.push(rx::SPECIFIC_ACTION.with(rx::SpecificAction::INDICATION_OF_LOSS_OF_BEARER));
    m.push(rx::SPECIFIC_ACTION.with(rx::SpecificAction::INDICATION_OF_RELEASE_OF_BEARER));
    m.push(dcca::SUBSCRIPTION_ID.with(vec![
        dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType::END_USER_SIP_URI),
        dcca::SUBSCRIPTION_ID_DATA.with("sip:+15555550123@ims.mnc001.mcc001.3gppnetwork.org"),
    ]));
    m.push(supported_features(0x0000_0001));
    m.push(nasreq::FRAMED_IPV6_PREFIX.with(bytes(&[
        0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01,
    ])));
    m
}

fn rx_aaa() -> MessageBuilder {
    let req = rx_aar().build().expect("AAR decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(PCRF_HOST, HOME_REALM));
    m.push(base::AUTH_APPLICATION_ID.with(rx::APP_RX));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(gx::IP_CAN_TYPE.with(gx::IpCanType::TGPP_EPS));
    m.push(gx::RAT_TYPE.with(gx::RatType::EUTRAN));
    m.push(supported_features(0x0000_0001));
    m
}

fn rx_str() -> MessageBuilder {
    let mut m = rx_request(rx::CMD_SESSION_TERMINATION, 0x5800_0002);
    m.push(base::SESSION_ID.with(RX_SESSION));
    m.push(base::ORIGIN_HOST.with(AF_HOST));
    m.push(base::ORIGIN_REALM.with(IMS_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(base::AUTH_APPLICATION_ID.with(rx::APP_RX));
    m.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_LOGOUT));
    m.push(base::DESTINATION_HOST.with(PCRF_HOST));
    m
}

fn rx_asr() -> MessageBuilder {
    let mut m = rx_request(rx::CMD_ABORT_SESSION, 0x5800_0003);
    m.push(base::SESSION_ID.with(RX_SESSION));
    m.push(base::ORIGIN_HOST.with(PCRF_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(IMS_REALM));
    m.push(base::DESTINATION_HOST.with(AF_HOST));
    m.push(base::AUTH_APPLICATION_ID.with(rx::APP_RX));
    m.push(rx::ABORT_CAUSE.with(rx::AbortCause::BEARER_RELEASED));
    m
}

// ---------------------------------------------------------------------------------------------
// S6a (TS 29.272) and Cx (TS 29.229).
// ---------------------------------------------------------------------------------------------

fn s6a_request(cmd: u32, hbh: u32) -> MessageBuilder {
    let mut m = MessageBuilder::request(cmd, s6a::APP_S6A_S6D, true).ids(hbh, hbh ^ 0x7e57_0000);
    m.push(base::SESSION_ID.with(S6A_SESSION));
    m.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(TGPP),
        base::AUTH_APPLICATION_ID.with(s6a::APP_S6A_S6D),
    ]));
    m.push(base::AUTH_SESSION_STATE.with(base::AuthSessionState::NO_STATE_MAINTAINED));
    m.push(base::ORIGIN_HOST.with(MME_HOST));
    m.push(base::ORIGIN_REALM.with(HOME_REALM));
    m.push(base::DESTINATION_REALM.with(HOME_REALM));
    m.push(base::USER_NAME.with(IMSI));
    m
}

fn s6a_answer(req: MessageBuilder) -> MessageBuilder {
    let req = req.build().expect("S6a request decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(HSS_HOST, HOME_REALM));
    m.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(TGPP),
        base::AUTH_APPLICATION_ID.with(s6a::APP_S6A_S6D),
    ]));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(base::AUTH_SESSION_STATE.with(base::AuthSessionState::NO_STATE_MAINTAINED));
    m
}

fn s6a_air() -> MessageBuilder {
    let mut m = s6a_request(s6a::CMD_AUTHENTICATION_INFORMATION, 0x6a00_0001);
    m.push(s6a::REQUESTED_EUTRAN_AUTHENTICATION_INFO.with(vec![
        s6a::NUMBER_OF_REQUESTED_VECTORS.with(1u32),
        s6a::IMMEDIATE_RESPONSE_PREFERRED.with(0u32),
    ]));
    m.push(s6a::VISITED_PLMN_ID.with(bytes(&HOME_PLMN)));
    m
}

fn s6a_aia() -> MessageBuilder {
    let mut m = s6a_answer(s6a_air());
    m.push(
        s6a::AUTHENTICATION_INFO.with(vec![s6a::E_UTRAN_VECTOR.with(vec![
            s6a::ITEM_NUMBER.with(1u32),
            s6a::RAND.with(bytes(&[0x11; 16])),
            s6a::XRES.with(bytes(&[0x22; 8])),
            s6a::AUTN.with(bytes(&[0x33; 16])),
            s6a::KASME.with(bytes(&[0x44; 32])),
        ])]),
    );
    m
}

fn s6a_ulr() -> MessageBuilder {
    let mut m = s6a_request(s6a::CMD_UPDATE_LOCATION, 0x6a00_0002);
    m.push(s6a::TERMINAL_INFORMATION.with(vec![
        s6a::IMEI.with("35691901000123"),
        s6a::SOFTWARE_VERSION.with("01"),
    ]));
    m.push(gx::RAT_TYPE.with(gx::RatType::EUTRAN));
    // Bit 1 S6a/S6d-Indicator, bit 5 Initial-Attach-Indicator (TS 29.272 §7.3.7).
    m.push(s6a::ULR_FLAGS.with(0x0000_0022u32));
    m.push(s6a::UE_SRVCC_CAPABILITY.with(s6a::UeSrvccCapability::UE_SRVCC_NOT_SUPPORTED));
    m.push(s6a::VISITED_PLMN_ID.with(bytes(&HOME_PLMN)));
    m
}

fn s6a_ula() -> MessageBuilder {
    let mut m = s6a_answer(s6a_ulr());
    m.push(s6a::ULA_FLAGS.with(1u32));
    m.push(s6a::SUBSCRIPTION_DATA.with(vec![
        s6a::SUBSCRIBER_STATUS.with(s6a::SubscriberStatus::SERVICE_GRANTED),
        s6a::MSISDN.with(bytes(&[0x51, 0x55, 0x55, 0x05, 0x21, 0xf3])),
        s6a::NETWORK_ACCESS_MODE.with(s6a::NetworkAccessMode::ONLY_PACKET),
        s6a::ACCESS_RESTRICTION_DATA.with(0u32),
        s6a::AMBR.with(vec![
            rx::MAX_REQUESTED_BANDWIDTH_UL.with(50_000_000u32),
            rx::MAX_REQUESTED_BANDWIDTH_DL.with(150_000_000u32),
        ]),
        s6a::APN_CONFIGURATION_PROFILE.with(vec![
            s6a::CONTEXT_IDENTIFIER.with(1u32),
            s6a::ALL_APN_CONFIGURATIONS_INCLUDED_INDICATOR
                .with(s6a::AllApnConfigurationsIncludedIndicator::ALL_APN_CONFIGURATIONS_INCLUDED),
            s6a::APN_CONFIGURATION.with(vec![
                s6a::CONTEXT_IDENTIFIER.with(1u32),
                s6a::PDN_TYPE.with(s6a::PdnType::IPV4V6),
                s6a::SERVICE_SELECTION.with(APN),
                s6a::EPS_SUBSCRIBED_QOS_PROFILE.with(vec![
                    gx::QOS_CLASS_IDENTIFIER.with(gx::QosClassIdentifier::QCI_9),
                    arp(8),
                ]),
                s6a::AMBR.with(vec![
                    rx::MAX_REQUESTED_BANDWIDTH_UL.with(50_000_000u32),
                    rx::MAX_REQUESTED_BANDWIDTH_DL.with(150_000_000u32),
                ]),
                s6a::PDN_GW_ALLOCATION_TYPE.with(s6a::PdnGwAllocationType::DYNAMIC),
                s6a::MIP6_AGENT_INFO.with(vec![
                    s6a::MIP_HOME_AGENT_ADDRESS.with(IpAddr::from(PGW_IPV4)),
                ]),
            ]),
        ]),
        s6a::SUBSCRIBED_PERIODIC_RAU_TAU_TIMER.with(3240u32),
    ]));
    m
}

fn cx_mar() -> MessageBuilder {
    let mut m = MessageBuilder::request(ts29229::CMD_MULTIMEDIA_AUTH, ts29229::APP_CX_DX, true)
        .ids(0x6c00_0001, 0x6c00_0001 ^ 0x7e57_0000);
    m.push(base::SESSION_ID.with(CX_SESSION));
    m.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(TGPP),
        base::AUTH_APPLICATION_ID.with(ts29229::APP_CX_DX),
    ]));
    m.push(base::AUTH_SESSION_STATE.with(base::AuthSessionState::NO_STATE_MAINTAINED));
    m.push(base::ORIGIN_HOST.with(SCSCF_HOST));
    m.push(base::ORIGIN_REALM.with(IMS_REALM));
    m.push(base::DESTINATION_REALM.with(IMS_REALM));
    m.push(base::USER_NAME.with(IMPI));
    m.push(ts29229::PUBLIC_IDENTITY.with(IMPU));
    m.push(ts29229::SIP_NUMBER_AUTH_ITEMS.with(1u32));
    m.push(ts29229::SIP_AUTH_DATA_ITEM.with(vec![
        ts29229::SIP_AUTHENTICATION_SCHEME.with("Digest-AKAv1-MD5"),
    ]));
    m.push(ts29229::SERVER_NAME.with("sip:scscf1.ims.example.net:6060"));
    m
}

fn cx_maa() -> MessageBuilder {
    let req = cx_mar().build().expect("MAR decodes");
    let mut m = MessageBuilder::answer_to(&req, &ident(HSS_IMS_HOST, IMS_REALM));
    m.push(base::VENDOR_SPECIFIC_APPLICATION_ID.with(vec![
        base::VENDOR_ID.with(TGPP),
        base::AUTH_APPLICATION_ID.with(ts29229::APP_CX_DX),
    ]));
    m.result_code(ResultCode::DIAMETER_SUCCESS);
    m.push(base::AUTH_SESSION_STATE.with(base::AuthSessionState::NO_STATE_MAINTAINED));
    m.push(base::USER_NAME.with(IMPI));
    m.push(ts29229::PUBLIC_IDENTITY.with(IMPU));
    m.push(ts29229::SIP_NUMBER_AUTH_ITEMS.with(1u32));
    m.push(ts29229::SIP_AUTH_DATA_ITEM.with(vec![
        ts29229::SIP_ITEM_NUMBER.with(1u32),
        ts29229::SIP_AUTHENTICATION_SCHEME.with("Digest-AKAv1-MD5"),
        ts29229::SIP_AUTHENTICATE.with(bytes(&[0x55; 32])),
        ts29229::SIP_AUTHORIZATION.with(bytes(&[0x66; 8])),
        ts29229::CONFIDENTIALITY_KEY.with(bytes(&[0x77; 16])),
        ts29229::INTEGRITY_KEY.with(bytes(&[0x88; 16])),
    ]));
    m
}

// ---------------------------------------------------------------------------------------------
// The table of vectors.
// ---------------------------------------------------------------------------------------------

struct Vector {
    name: &'static str,
    about: &'static str,
    build: fn() -> MessageBuilder,
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "cer",
        about: "CER from a PCEF advertising Gy (app 4) and Gx (10415/16777238) (RFC 6733 §5.3.1)",
        build: cer,
    },
    Vector {
        name: "cea",
        about: "CEA 2001 from the PCRF to that CER (RFC 6733 §5.3.2)",
        build: cea,
    },
    Vector {
        name: "dwr",
        about: "DWR with Origin-State-Id (RFC 6733 §5.5.1)",
        build: dwr,
    },
    Vector {
        name: "dwa",
        about: "DWA 2001 (RFC 6733 §5.5.2)",
        build: dwa,
    },
    Vector {
        name: "dpr",
        about: "DPR with Disconnect-Cause REBOOTING (RFC 6733 §5.4.1)",
        build: dpr,
    },
    Vector {
        name: "dpa",
        about: "DPA 2001 (RFC 6733 §5.4.2)",
        build: dpa,
    },
    Vector {
        name: "gx_ccr_i",
        about: "Gx CCR-I from the PCEF: IMSI/MSISDN, EPS bearer QoS, ULI (TS 29.212 §5.6.2)",
        build: gx_ccr_i,
    },
    Vector {
        name: "gx_cca_i",
        about: "Gx CCA-I 2001: event triggers, rule base, APN-AMBR, default bearer QoS (TS 29.212 §5.6.3)",
        build: gx_cca_i,
    },
    Vector {
        name: "gx_ccr_u_event_trigger",
        about: "Gx CCR-U: Event-Trigger RAT_CHANGE + USER_LOCATION_CHANGE with the new RAT-Type (UTRAN) and 3GPP-User-Location-Info (SAI)",
        build: gx_ccr_u_event_trigger,
    },
    Vector {
        name: "gx_rar_charging_rule_install",
        about: "Gx RAR from the PCRF removing one rule and installing a Charging-Rule-Definition (TS 29.212 §5.6.4)",
        build: gx_rar_charging_rule_install,
    },
    Vector {
        name: "gx_cca_5_rules",
        about: "Gx CCA-U with five Charging-Rule-Install/Charging-Rule-Definition (benchmark input)",
        build: gx_cca_5_rules,
    },
    Vector {
        name: "gy_ccr_i",
        about: "Gy CCR-I: one MSCC asking for quota, PS-Information (TS 32.299 §6.4.2)",
        build: gy_ccr_i,
    },
    Vector {
        name: "gy_ccr_u",
        about: "Gy CCR-U with three MSCC reporting usage and asking for more (benchmark input)",
        build: gy_ccr_u,
    },
    Vector {
        name: "gy_ccr_t",
        about: "Gy CCR-T reporting final usage (RFC 4006 §8.3)",
        build: gy_ccr_t,
    },
    Vector {
        name: "gy_cca_fui_triggers",
        about: "Gy CCA-U: MSCC with GSU, FUI REDIRECT / RESTRICT_ACCESS, thresholds, Quota-Holding-Time, Validity-Time, Trigger",
        build: gy_cca_fui_triggers,
    },
    Vector {
        name: "s9_ccr_subsession",
        about: "S9 CCR-U from the V-PCRF establishing subsession 1 (Subsession-Enforcement-Info, TS 29.215 §5.6.2)",
        build: s9_ccr_subsession,
    },
    Vector {
        name: "s9_cca",
        about: "S9 CCA-U from the H-PCRF with Subsession-Decision-Info (TS 29.215 §5.6.3)",
        build: s9_cca,
    },
    Vector {
        name: "rx_aar",
        about: "Rx AAR from the P-CSCF: one audio media component, RTP and RTCP sub-components (TS 29.214 §5.6.1)",
        build: rx_aar,
    },
    Vector {
        name: "rx_aaa",
        about: "Rx AAA 2001 (TS 29.214 §5.6.2)",
        build: rx_aaa,
    },
    Vector {
        name: "rx_str",
        about: "Rx STR, DIAMETER_LOGOUT (TS 29.214 §5.6.5)",
        build: rx_str,
    },
    Vector {
        name: "rx_asr",
        about: "Rx ASR from the PCRF, BEARER_RELEASED (TS 29.214 §5.6.7)",
        build: rx_asr,
    },
    Vector {
        name: "lbo_grant",
        about: "S9 RAR from the H-PCRF: Subsession-Decision-Info with a rule carrying our LBO-Indicator and LBO-Grant (vendor 32473)",
        build: lbo_grant,
    },
    Vector {
        name: "s6a_air",
        about: "S6a AIR from the MME asking for one E-UTRAN vector (TS 29.272 §7.2.5)",
        build: s6a_air,
    },
    Vector {
        name: "s6a_aia",
        about: "S6a AIA 2001 with one E-UTRAN-Vector (TS 29.272 §7.2.6)",
        build: s6a_aia,
    },
    Vector {
        name: "s6a_ulr",
        about: "S6a ULR from the MME at initial attach (TS 29.272 §7.2.3)",
        build: s6a_ulr,
    },
    Vector {
        name: "s6a_ula",
        about: "S6a ULA 2001 with Subscription-Data: one APN-Configuration (TS 29.272 §7.2.4)",
        build: s6a_ula,
    },
    Vector {
        name: "cx_mar",
        about: "Cx MAR from the S-CSCF asking for one AKA vector (TS 29.229 §6.1.7)",
        build: cx_mar,
    },
    Vector {
        name: "cx_maa",
        about: "Cx MAA 2001 with one SIP-Auth-Data-Item (TS 29.229 §6.1.8)",
        build: cx_maa,
    },
];

// ---------------------------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Hex bytes, 16 per line in groups of 4, after the comment lines.
fn hex_file(v: &Vector, bytes: &[u8], avps: usize) -> String {
    let mut out = format!(
        "# {}: {}\n# {} bytes, {} AVPs (nested ones included).\n# Built by {}() in diameter-codec/tests/golden.rs; regenerate with\n# UPDATE_GOLDEN=1 cargo test -p diameter-codec --test golden\n",
        v.name,
        v.about,
        bytes.len(),
        avps,
        v.name
    );
    for line in bytes.chunks(16) {
        let words: Vec<String> = line.chunks(4).map(hex::encode).collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// Parses a `.hex` file.
fn parse_hex(text: &str) -> Vec<u8> {
    diameter_codec::hex_text::parse(text).expect("valid hex")
}

fn json_text(msg: &Message) -> String {
    let mut s = serde_json::to_string_pretty(&Renderer::embedded().json(msg)).expect("JSON");
    s.push('\n');
    s
}

/// Counts AVPs, nested ones included, descending into Grouped AVPs the dictionary knows.
fn count_avps(avps: AvpIter<'_>) -> usize {
    let dict = Dictionary::embedded();
    avps.map(|a| {
        let a = a.expect("AVP frames");
        let grouped = dict
            .avp(a.key())
            .is_some_and(|d| d.data_type == DataType::Grouped);
        1 + if grouped { count_avps(a.children()) } else { 0 }
    })
    .sum()
}

/// Every AVP in the rendered JSON has a dictionary name and no rendering error.
fn assert_all_known(name: &str, avps: &serde_json::Value) {
    for a in avps.as_array().expect("AVP list") {
        assert!(
            a.get("error").is_none(),
            "{name}: AVP rendered with an error: {a}"
        );
        assert!(
            a["name"].is_string(),
            "{name}: AVP unknown to the dictionary: {a}"
        );
        if let Some(children) = a.get("avps") {
            assert_all_known(name, children);
        }
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Rewrites a vector's `.hex` and `.json` files from its builder (`UPDATE_GOLDEN=1`).
fn write_vector(v: &Vector) {
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).expect("vectors dir");
    let built = (v.build)().to_bytes();
    let msg = Message::from_bytes(built.clone()).expect("built message decodes");
    std::fs::write(
        dir.join(format!("{}.hex", v.name)),
        hex_file(v, &built, count_avps(msg.avps())),
    )
    .expect("write .hex");
    std::fs::write(dir.join(format!("{}.json", v.name)), json_text(&msg)).expect("write .json");
}

fn load(name: &str) -> Message {
    if updating() {
        // Tests run in parallel: make sure this vector's files exist before reading them.
        write_vector(
            VECTORS
                .iter()
                .find(|v| v.name == name)
                .expect("known vector"),
        );
    }
    let text = std::fs::read_to_string(vectors_dir().join(format!("{name}.hex")))
        .unwrap_or_else(|e| panic!("{name}.hex: {e} (run with UPDATE_GOLDEN=1 to create it)"));
    Message::from_bytes(parse_hex(&text))
        .unwrap_or_else(|e| panic!("{name}.hex does not decode: {e}"))
}

#[test]
fn golden_vectors_both_directions() {
    let dir = vectors_dir();
    let dict = Dictionary::embedded();
    let mut failures = Vec::new();
    for v in VECTORS {
        let built = (v.build)().to_bytes();
        let hex_path = dir.join(format!("{}.hex", v.name));
        let json_path = dir.join(format!("{}.json", v.name));
        if updating() {
            write_vector(v);
        }

        // The file, as the decoder sees it.
        let file = parse_hex(
            &std::fs::read_to_string(&hex_path)
                .unwrap_or_else(|e| panic!("{}: {e}", hex_path.display())),
        );
        assert_eq!(
            file.len() % 4,
            0,
            "{}: file length {} is not a multiple of 4",
            v.name,
            file.len()
        );
        let announced = u32::from_be_bytes([0, file[1], file[2], file[3]]) as usize;
        assert_eq!(
            announced,
            file.len(),
            "{}: Message Length {announced} but the file has {} bytes",
            v.name,
            file.len()
        );

        // (b) encoding: the builder gives exactly the file's bytes.
        if built.as_ref() != file.as_slice() {
            let at = first_difference(&built, &file);
            failures.push(format!(
                "{}: builder output ({} bytes) differs from {}.hex ({} bytes) at offset {at}",
                v.name,
                built.len(),
                v.name,
                file.len()
            ));
            continue;
        }

        // (a) decoding: the file decodes to the expected JSON, validates, and re-encodes.
        let msg = Message::from_bytes(Bytes::from(file.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(msg.header().length as usize, file.len());
        if let Err(e) = validate(&msg) {
            failures.push(format!(
                "{}: does not validate: {:?} {:?} {:?}",
                v.name, e.result_code, e.message, e.failed_avp
            ));
        }
        let rendered = Renderer::embedded().json(&msg);
        assert_all_known(v.name, &rendered["avps"]);
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&json_path)
                .unwrap_or_else(|e| panic!("{}: {e}", json_path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
        if rendered != expected {
            failures.push(format!(
                "{}: decoded JSON differs from {}.json; got:\n{}",
                v.name,
                v.name,
                json_text(&msg)
            ));
        }
        let again = MessageBuilder::from_message(&msg, dict).to_bytes();
        assert_eq!(
            again.as_ref(),
            file.as_slice(),
            "{}: decode + re-encode changed the bytes",
            v.name
        );
        let typed = MessageBuilder::from_message_typed(&msg, dict);
        assert_eq!(
            typed.to_bytes().as_ref(),
            file.as_slice(),
            "{}: decode into typed values + re-encode changed the bytes",
            v.name
        );
    }
    assert!(
        failures.is_empty(),
        "{} golden vector failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every `.hex` file in the directory belongs to a vector (no stale files).
#[test]
fn no_stray_vector_files() {
    for entry in std::fs::read_dir(vectors_dir()).expect("vectors dir") {
        let path = entry.expect("dir entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            VECTORS.iter().any(|v| v.name == stem),
            "{} has no builder in golden.rs",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Typed accessors read the key values back from the files.
// ---------------------------------------------------------------------------------------------

fn child<'a>(avp: &AvpRef<'a>, key: AvpKey) -> Option<AvpRef<'a>> {
    avp.children().flatten().find(|c| c.key() == key)
}

fn children<'a>(avp: &AvpRef<'a>, key: AvpKey) -> Vec<AvpRef<'a>> {
    avp.children()
        .flatten()
        .filter(|c| c.key() == key)
        .collect()
}

#[test]
fn base_vectors_read_back() {
    let cer = load("cer");
    assert_eq!(cer.header().command_code, 257);
    assert!(cer.header().is_request() && !cer.header().flags.is_proxiable());
    assert_eq!(cer.get(base::ORIGIN_HOST).unwrap().unwrap(), PCEF_HOST);
    let ips: Vec<String> = cer
        .find_all(base::HOST_IP_ADDRESS.key())
        .map(|a| base::HOST_IP_ADDRESS.decode(a.data).unwrap().to_string())
        .collect();
    assert_eq!(ips, ["192.0.2.10", "2001:db8::10"]);
    let vsai = cer
        .find(base::VENDOR_SPECIFIC_APPLICATION_ID.key())
        .unwrap();
    let app = child(&vsai, base::AUTH_APPLICATION_ID.key()).unwrap();
    assert_eq!(
        base::AUTH_APPLICATION_ID.decode(app.data).unwrap(),
        16_777_238
    );

    let cea = load("cea");
    assert!(!cea.header().is_request());
    assert_eq!(
        (cea.header().hop_by_hop, cea.header().end_to_end),
        (cer.header().hop_by_hop, cer.header().end_to_end)
    );
    assert_eq!(cea.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    assert_eq!(cea.get(base::ORIGIN_HOST).unwrap().unwrap(), PCRF_HOST);

    assert_eq!(
        load("dwr").get(base::ORIGIN_STATE_ID).unwrap().unwrap(),
        1_748_779_200
    );
    assert_eq!(load("dwa").get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    assert_eq!(
        load("dpr").get(base::DISCONNECT_CAUSE).unwrap().unwrap(),
        base::DisconnectCause::REBOOTING
    );
    assert_eq!(load("dpa").get(base::RESULT_CODE).unwrap().unwrap(), 2001);
}

#[test]
fn gx_vectors_read_back() {
    let ccr = load("gx_ccr_i");
    assert_eq!(ccr.header().application_id, gx::APP_GX);
    assert_eq!(ccr.session_id(), Some(GX_SESSION));
    assert_eq!(
        ccr.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap(),
        dcca::CcRequestType::INITIAL_REQUEST
    );
    assert_eq!(ccr.get(dcca::CC_REQUEST_NUMBER).unwrap().unwrap(), 0);
    assert_eq!(ccr.get(gx::RAT_TYPE).unwrap().unwrap(), gx::RatType::EUTRAN);
    assert_eq!(ccr.get(nasreq::CALLED_STATION_ID).unwrap().unwrap(), APN);
    assert_eq!(
        ccr.get(nasreq::FRAMED_IP_ADDRESS).unwrap().unwrap(),
        UE_IPV4
    );
    let subs: Vec<&str> = ccr
        .find_all(dcca::SUBSCRIPTION_ID.key())
        .map(|s| {
            dcca::SUBSCRIPTION_ID_DATA
                .decode(child(&s, dcca::SUBSCRIPTION_ID_DATA.key()).unwrap().data)
                .unwrap()
        })
        .collect();
    assert_eq!(subs, [IMSI, MSISDN]);

    let cca = load("gx_cca_i");
    assert_eq!(cca.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    let triggers: Vec<gx::EventTrigger> = cca
        .find_all(gx::EVENT_TRIGGER.key())
        .map(|a| gx::EVENT_TRIGGER.decode(a.data).unwrap())
        .collect();
    assert_eq!(
        triggers,
        [
            gx::EventTrigger::RAT_CHANGE,
            gx::EventTrigger::USER_LOCATION_CHANGE,
            gx::EventTrigger::UE_TIME_ZONE_CHANGE
        ]
    );
    assert_eq!(
        cca.get(gx::ONLINE).unwrap().unwrap(),
        gx::Online::ENABLE_ONLINE
    );

    let ccru = load("gx_ccr_u_event_trigger");
    assert_eq!(
        ccru.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap(),
        dcca::CcRequestType::UPDATE_REQUEST
    );
    assert_eq!(ccru.get(dcca::CC_REQUEST_NUMBER).unwrap().unwrap(), 1);
    assert_eq!(
        ccru.get(gx::EVENT_TRIGGER).unwrap().unwrap(),
        gx::EventTrigger::RAT_CHANGE
    );
    assert_eq!(ccru.get(gx::RAT_TYPE).unwrap().unwrap(), gx::RatType::UTRAN);
    assert_eq!(
        ccru.get(gi::TGPP_USER_LOCATION_INFO).unwrap().unwrap(),
        ULI_SAI
    );
    // 3GPP-* AVPs of TS 29.061 are sent with M clear (protocol.md §14 item 2).
    assert!(
        !ccru
            .find(gi::TGPP_USER_LOCATION_INFO.key())
            .unwrap()
            .flags
            .mandatory()
    );

    let rar = load("gx_rar_charging_rule_install");
    assert_eq!(
        rar.get(base::RE_AUTH_REQUEST_TYPE).unwrap().unwrap(),
        base::ReAuthRequestType::AUTHORIZE_ONLY
    );
    let cri = rar.find(gx::CHARGING_RULE_INSTALL.key()).unwrap();
    let crd = child(&cri, gx::CHARGING_RULE_DEFINITION.key()).unwrap();
    assert_eq!(
        gx::CHARGING_RULE_NAME
            .decode(child(&crd, gx::CHARGING_RULE_NAME.key()).unwrap().data)
            .unwrap(),
        b"video-hd"
    );
    assert_eq!(
        dcca::RATING_GROUP
            .decode(child(&crd, dcca::RATING_GROUP.key()).unwrap().data)
            .unwrap(),
        200
    );
    let flows = children(&crd, gx::FLOW_INFORMATION.key());
    assert_eq!(flows.len(), 2);
    let fd = child(&flows[0], rx::FLOW_DESCRIPTION.key()).unwrap();
    assert_eq!(
        rx::FLOW_DESCRIPTION.decode(fd.data).unwrap().to_string(),
        "permit out 6 from 192.0.2.80 443 to assigned"
    );

    let five = load("gx_cca_5_rules");
    let groups: Vec<u32> = five
        .find_all(gx::CHARGING_RULE_INSTALL.key())
        .map(|cri| {
            let crd = child(&cri, gx::CHARGING_RULE_DEFINITION.key()).unwrap();
            assert!(child(&crd, gx::QOS_INFORMATION.key()).is_some());
            assert!(child(&crd, gx::PRECEDENCE.key()).is_some());
            dcca::RATING_GROUP
                .decode(child(&crd, dcca::RATING_GROUP.key()).unwrap().data)
                .unwrap()
        })
        .collect();
    assert_eq!(groups, [100, 110, 120, 130, 140]);
}

fn mscc_rating_groups(msg: &Message) -> Vec<u32> {
    msg.find_all(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
        .map(|m| {
            dcca::RATING_GROUP
                .decode(child(&m, dcca::RATING_GROUP.key()).unwrap().data)
                .unwrap()
        })
        .collect()
}

#[test]
fn gy_vectors_read_back() {
    let ccri = load("gy_ccr_i");
    assert_eq!(ccri.header().application_id, 4);
    assert_eq!(
        ccri.get(dcca::SERVICE_CONTEXT_ID).unwrap().unwrap(),
        PS_CHARGING_CONTEXT
    );
    assert_eq!(
        ccri.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap(),
        dcca::CcRequestType::INITIAL_REQUEST
    );
    assert_eq!(mscc_rating_groups(&ccri), [100]);
    assert_eq!(
        ccri.get(base::EVENT_TIMESTAMP)
            .unwrap()
            .unwrap()
            .to_string(),
        "2025-06-01T12:00:00Z"
    );

    let ccru = load("gy_ccr_u");
    assert_eq!(
        ccru.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap(),
        dcca::CcRequestType::UPDATE_REQUEST
    );
    assert_eq!(mscc_rating_groups(&ccru), [100, 200, 300]);
    // The benchmark input stays the size it is documented to be.
    let len = ccru.as_bytes().len();
    assert!((780..=820).contains(&len), "gy_ccr_u is {len} bytes");
    let total = count_avps(ccru.avps());
    assert!((46..=52).contains(&total), "gy_ccr_u has {total} AVPs");
    let first = ccru
        .find(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
        .unwrap();
    let usu = child(&first, dcca::USED_SERVICE_UNIT.key()).unwrap();
    assert_eq!(
        dcca::CC_TIME
            .decode(child(&usu, dcca::CC_TIME.key()).unwrap().data)
            .unwrap(),
        300
    );
    assert_eq!(
        dcca::CC_TOTAL_OCTETS
            .decode(child(&usu, dcca::CC_TOTAL_OCTETS.key()).unwrap().data)
            .unwrap(),
        10_485_760
    );
    assert_eq!(
        gy::REPORTING_REASON
            .decode(child(&first, gy::REPORTING_REASON.key()).unwrap().data)
            .unwrap(),
        gy::ReportingReason::QUOTA_EXHAUSTED
    );

    let ccrt = load("gy_ccr_t");
    assert_eq!(
        ccrt.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap(),
        dcca::CcRequestType::TERMINATION_REQUEST
    );
    assert_eq!(ccrt.get(dcca::CC_REQUEST_NUMBER).unwrap().unwrap(), 2);
    assert_eq!(
        ccrt.get(base::TERMINATION_CAUSE).unwrap().unwrap(),
        base::TerminationCause::DIAMETER_LOGOUT
    );

    let cca = load("gy_cca_fui_triggers");
    assert_eq!(cca.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    assert_eq!(mscc_rating_groups(&cca), [100, 200]);
    let msccs: Vec<AvpRef<'_>> = cca
        .find_all(dcca::MULTIPLE_SERVICES_CREDIT_CONTROL.key())
        .collect();
    let fui = child(&msccs[0], dcca::FINAL_UNIT_INDICATION.key()).unwrap();
    let action = child(&fui, dcca::FINAL_UNIT_ACTION.key()).unwrap();
    assert_eq!(
        dcca::FINAL_UNIT_ACTION.decode(action.data).unwrap(),
        dcca::FinalUnitAction::REDIRECT
    );
    let server = child(&fui, dcca::REDIRECT_SERVER.key()).unwrap();
    let address = child(&server, dcca::REDIRECT_SERVER_ADDRESS.key()).unwrap();
    assert_eq!(
        dcca::REDIRECT_SERVER_ADDRESS.decode(address.data).unwrap(),
        "http://topup.example.net/"
    );
    let trigger = child(&msccs[0], gy::TRIGGER.key()).unwrap();
    let types: Vec<gy::TriggerType> = children(&trigger, gy::TRIGGER_TYPE.key())
        .iter()
        .map(|t| gy::TRIGGER_TYPE.decode(t.data).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            gy::TriggerType::CHANGE_IN_RAT,
            gy::TriggerType::CHANGEINLOCATION_ECGI,
            gy::TriggerType::CHANGE_IN_QOS
        ]
    );
    assert_eq!(
        gy::QUOTA_HOLDING_TIME
            .decode(child(&msccs[0], gy::QUOTA_HOLDING_TIME.key()).unwrap().data)
            .unwrap(),
        300
    );
    let fui2 = child(&msccs[1], dcca::FINAL_UNIT_INDICATION.key()).unwrap();
    let rules = children(&fui2, dcca::RESTRICTION_FILTER_RULE.key());
    assert_eq!(rules.len(), 2);
    assert_eq!(
        dcca::FINAL_UNIT_ACTION
            .decode(child(&fui2, dcca::FINAL_UNIT_ACTION.key()).unwrap().data)
            .unwrap(),
        dcca::FinalUnitAction::RESTRICT_ACCESS
    );
}

#[test]
fn s9_and_lbo_vectors_read_back() {
    let ccr = load("s9_ccr_subsession");
    assert_eq!(ccr.header().application_id, s9::APP_S9);
    assert_eq!(
        ccr.get(dcca::CC_REQUEST_TYPE).unwrap().unwrap(),
        dcca::CcRequestType::UPDATE_REQUEST
    );
    let sei = ccr.find(s9::SUBSESSION_ENFORCEMENT_INFO.key()).unwrap();
    assert_eq!(
        s9::SUBSESSION_ID
            .decode(child(&sei, s9::SUBSESSION_ID.key()).unwrap().data)
            .unwrap(),
        1
    );
    assert_eq!(
        s9::SUBSESSION_OPERATION
            .decode(child(&sei, s9::SUBSESSION_OPERATION.key()).unwrap().data)
            .unwrap(),
        s9::SubsessionOperation::ESTABLISHMENT
    );

    let cca = load("s9_cca");
    assert_eq!(cca.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    let sdi = cca.find(s9::SUBSESSION_DECISION_INFO.key()).unwrap();
    assert_eq!(
        s9::SUBSESSION_ID
            .decode(child(&sdi, s9::SUBSESSION_ID.key()).unwrap().data)
            .unwrap(),
        1
    );
    assert!(child(&sdi, gx::CHARGING_RULE_INSTALL.key()).is_some());

    let rar = load("lbo_grant");
    assert_eq!(rar.header().command_code, 258);
    assert_eq!(rar.get(base::ORIGIN_HOST).unwrap().unwrap(), HPCRF_HOST);
    let sdi = rar.find(s9::SUBSESSION_DECISION_INFO.key()).unwrap();
    let cri = child(&sdi, gx::CHARGING_RULE_INSTALL.key()).unwrap();
    let crd = child(&cri, gx::CHARGING_RULE_DEFINITION.key()).unwrap();
    let lbo = child(&crd, roaming::LBO_INDICATOR.key()).unwrap();
    assert_eq!(lbo.vendor, OUR_VENDOR);
    assert!(
        lbo.flags.vendor() && !lbo.flags.mandatory(),
        "our AVPs carry V and not M"
    );
    assert_eq!(
        roaming::LBO_INDICATOR.decode(lbo.data).unwrap(),
        roaming::LboIndicator::LOCAL_BREAKOUT
    );
    let grant = child(&crd, roaming::LBO_GRANT.key()).unwrap();
    assert_eq!(
        roaming::LBO_HOME_OPERATOR_ID
            .decode(
                child(&grant, roaming::LBO_HOME_OPERATOR_ID.key())
                    .unwrap()
                    .data
            )
            .unwrap(),
        "00101"
    );
    assert_eq!(
        roaming::LBO_GRANT_EXPIRY
            .decode(child(&grant, roaming::LBO_GRANT_EXPIRY.key()).unwrap().data)
            .unwrap()
            .to_string(),
        "2025-06-02T12:00:00Z"
    );
    assert_eq!(
        child(&grant, roaming::LBO_GRANT_SIGNATURE.key())
            .unwrap()
            .data
            .len(),
        32
    );
}

#[test]
fn rx_vectors_read_back() {
    let aar = load("rx_aar");
    assert_eq!(aar.header().application_id, rx::APP_RX);
    assert_eq!(aar.header().command_code, 265);
    let mcd = aar.find(rx::MEDIA_COMPONENT_DESCRIPTION.key()).unwrap();
    assert_eq!(
        rx::MEDIA_TYPE
            .decode(child(&mcd, rx::MEDIA_TYPE.key()).unwrap().data)
            .unwrap(),
        rx::MediaType::AUDIO
    );
    let subs = children(&mcd, rx::MEDIA_SUB_COMPONENT.key());
    assert_eq!(subs.len(), 2);
    assert_eq!(children(&subs[0], rx::FLOW_DESCRIPTION.key()).len(), 2);
    let actions: Vec<rx::SpecificAction> = aar
        .find_all(rx::SPECIFIC_ACTION.key())
        .map(|a| rx::SPECIFIC_ACTION.decode(a.data).unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            rx::SpecificAction::INDICATION_OF_LOSS_OF_BEARER,
            rx::SpecificAction::INDICATION_OF_RELEASE_OF_BEARER
        ]
    );

    let aaa = load("rx_aaa");
    assert_eq!(aaa.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    assert_eq!(aaa.session_id(), Some(RX_SESSION));
    assert_eq!(
        load("rx_str")
            .get(base::TERMINATION_CAUSE)
            .unwrap()
            .unwrap(),
        base::TerminationCause::DIAMETER_LOGOUT
    );
    assert_eq!(
        load("rx_asr").get(rx::ABORT_CAUSE).unwrap().unwrap(),
        rx::AbortCause::BEARER_RELEASED
    );
}

#[test]
fn s6a_and_cx_vectors_read_back() {
    let air = load("s6a_air");
    assert_eq!(
        (air.header().command_code, air.header().application_id),
        (s6a::CMD_AUTHENTICATION_INFORMATION, s6a::APP_S6A_S6D)
    );
    assert!(air.header().is_request() && air.header().flags.is_proxiable());
    assert_eq!(air.get(base::USER_NAME).unwrap().unwrap(), IMSI);
    assert_eq!(air.get(s6a::VISITED_PLMN_ID).unwrap().unwrap(), HOME_PLMN);
    let req = air
        .find(s6a::REQUESTED_EUTRAN_AUTHENTICATION_INFO.key())
        .unwrap();
    let n = child(&req, s6a::NUMBER_OF_REQUESTED_VECTORS.key()).unwrap();
    assert_eq!(s6a::NUMBER_OF_REQUESTED_VECTORS.decode(n.data).unwrap(), 1);

    let aia = load("s6a_aia");
    assert_eq!(aia.get(base::RESULT_CODE).unwrap().unwrap(), 2001);
    let info = aia.find(s6a::AUTHENTICATION_INFO.key()).unwrap();
    let vector = child(&info, s6a::E_UTRAN_VECTOR.key()).unwrap();
    let kasme = child(&vector, s6a::KASME.key()).unwrap();
    assert_eq!(s6a::KASME.decode(kasme.data).unwrap(), [0x44; 32]);

    let ulr = load("s6a_ulr");
    assert_eq!(ulr.get(s6a::ULR_FLAGS).unwrap().unwrap(), 0x22);
    assert_eq!(ulr.get(gx::RAT_TYPE).unwrap().unwrap(), gx::RatType::EUTRAN);

    let ula = load("s6a_ula");
    let data = ula.find(s6a::SUBSCRIPTION_DATA.key()).unwrap();
    let profile = child(&data, s6a::APN_CONFIGURATION_PROFILE.key()).unwrap();
    let apn = child(&profile, s6a::APN_CONFIGURATION.key()).unwrap();
    let name = child(&apn, s6a::SERVICE_SELECTION.key()).unwrap();
    assert_eq!(s6a::SERVICE_SELECTION.decode(name.data).unwrap(), APN);
    let pdn = child(&apn, s6a::PDN_TYPE.key()).unwrap();
    assert_eq!(
        s6a::PDN_TYPE.decode(pdn.data).unwrap(),
        s6a::PdnType::IPV4V6
    );

    let mar = load("cx_mar");
    assert_eq!(
        (mar.header().command_code, mar.header().application_id),
        (ts29229::CMD_MULTIMEDIA_AUTH, ts29229::APP_CX_DX)
    );
    assert_eq!(mar.get(ts29229::PUBLIC_IDENTITY).unwrap().unwrap(), IMPU);
    let maa = load("cx_maa");
    let item = maa.find(ts29229::SIP_AUTH_DATA_ITEM.key()).unwrap();
    let scheme = child(&item, ts29229::SIP_AUTHENTICATION_SCHEME.key()).unwrap();
    assert_eq!(
        ts29229::SIP_AUTHENTICATION_SCHEME
            .decode(scheme.data)
            .unwrap(),
        "Digest-AKAv1-MD5"
    );
}

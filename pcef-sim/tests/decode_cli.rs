//! `pcef-sim decode` as a user runs it: hex or raw bytes in, text or JSON out.

use diameter_codec::MessageBuilder;
use diameter_codec::dict::base;
use std::io::Write;
use std::process::{Command, Stdio};

fn cer() -> Vec<u8> {
    let mut b =
        MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false).ids(0x1234, 0x5678);
    b.push(base::ORIGIN_HOST.with("pcef.example.net"));
    b.push(base::ORIGIN_REALM.with("example.net"));
    b.push(base::HOST_IP_ADDRESS.with(std::net::IpAddr::from([192, 0, 2, 1])));
    b.push(base::VENDOR_ID.with(0u32));
    b.push(base::PRODUCT_NAME.with("pcef-sim"));
    b.to_bytes().to_vec()
}

fn run(args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pcef-sim"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pcef-sim");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn decodes_hex_from_a_file_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cer.hex");
    std::fs::write(&path, format!("# a CER\n{}\n", to_hex(&cer()))).unwrap();
    let (ok, out) = run(&["decode", path.to_str().unwrap()], b"");
    assert!(ok);
    assert!(out.starts_with("CER (257)"), "{out}");
    assert!(
        out.contains("Origin-Host (264) -M- = \"pcef.example.net\""),
        "{out}"
    );
    assert!(
        out.contains("Host-IP-Address (257) -M- = \"192.0.2.1\""),
        "{out}"
    );
    assert!(out.contains("=> valid"), "{out}");
}

#[test]
fn decodes_raw_bytes_from_stdin_as_json() {
    let mut two = cer();
    two.extend(cer());
    let (ok, out) = run(&["decode", "--format", "json", "-"], &two);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["header"]["command"], "CER");
    assert_eq!(list[0]["header"]["hop_by_hop"], 0x1234);
    let avps = list[0]["avps"].as_array().unwrap();
    assert_eq!(avps[0]["name"], "Origin-Host");
    assert_eq!(avps[0]["code"], 264);
    assert_eq!(avps[0]["value"], "pcef.example.net");
    assert_eq!(avps[0]["flags"]["mandatory"], true);
    assert_eq!(list[0]["validation"]["valid"], true);
}

#[test]
fn reports_invalid_messages_and_garbage() {
    // Drop Product-Name: the CER misses a required AVP (5005).
    let mut b = MessageBuilder::request(base::CMD_CAPABILITIES_EXCHANGE, 0, false);
    b.push(base::ORIGIN_HOST.with("pcef.example.net"));
    let (ok, out) = run(
        &["decode", "--format", "json"],
        to_hex(&b.to_bytes()).as_bytes(),
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["validation"]["result_code"], 5005);
    let (ok, out) = run(&["decode"], b"\x02\x00\x00\x14garbage");
    assert!(ok);
    assert!(out.contains("unsupported Diameter version 2"), "{out}");
}

/// A Kamailio-shaped Rx AAR: four Flow-Description in one Media-Sub-Component (TS 29.214
/// allows two) and Origin-Host without its M bit.
fn aar_with_deviations() -> Vec<u8> {
    use diameter_codec::OwnedAvp;
    use diameter_codec::avp::AvpFlags;
    use diameter_codec::dict::rx;
    use diameter_codec::encode::AvpValue;
    let vm = AvpFlags::VENDOR | AvpFlags::MANDATORY;
    let flows =
        (1..=4).map(|i| rx::FLOW_DESCRIPTION.with(format!("permit out 17 from 10.0.0.{i} to any")));
    let mut msc = vec![rx::FLOW_NUMBER.with(1u32)];
    msc.extend(flows);
    let mcd = OwnedAvp::new(
        517,
        10_415,
        vm,
        AvpValue::Grouped(vec![
            rx::MEDIA_COMPONENT_NUMBER.with(1u32),
            OwnedAvp::new(519, 10_415, vm, AvpValue::Grouped(msc)),
        ]),
    );
    let mut b = MessageBuilder::request(rx::CMD_AA, rx::APP_RX, true).ids(1, 2);
    b.push(base::SESSION_ID.with("pcscf.example.net;1;1"));
    b.push(base::AUTH_APPLICATION_ID.with(rx::APP_RX));
    let mut oh = base::ORIGIN_HOST.with("pcscf.example.net");
    oh.flags = AvpFlags(0);
    b.push(oh);
    b.push(base::ORIGIN_REALM.with("example.net"));
    b.push(base::DESTINATION_REALM.with("example.net"));
    b.push(mcd);
    b.to_bytes().to_vec()
}

#[test]
fn lists_deviations_of_an_accepted_message() {
    let hex = to_hex(&aar_with_deviations());
    let (ok, out) = run(&["decode"], hex.as_bytes());
    assert!(ok);
    assert!(out.contains("=> accepted with 2 deviations"), "{out}");
    assert!(out.contains("deviation m_bit Origin-Host [M must"), "{out}");
    assert!(
        out.contains(
            "deviation too_many Media-Component-Description/Media-Sub-Component/Flow-Description [0*2[Flow-Description]] -> 5009"
        ),
        "{out}"
    );
    assert!(
        out.contains("AVP occurs too many times: Flow-Description in Media-Sub-Component"),
        "{out}"
    );
    let (ok, out) = run(&["decode", "--format", "json"], hex.as_bytes());
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let val = &v[0]["validation"];
    assert_eq!(val["valid"], true);
    assert_eq!(val["summary"], "accepted with 2 deviations");
    let d = val["deviations"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["kind"], "m_bit");
    assert_eq!(d[1]["severity"], "deviation");
    assert_eq!(d[1]["kind"], "too_many");
    assert_eq!(d[1]["rule"], "0*2[Flow-Description]");
    assert_eq!(d[1]["result_code"], 5009);
    assert_eq!(d[1]["path"][2]["name"], "Flow-Description");
    assert_eq!(d[1]["path"][2]["code"], 507);
    assert_eq!(d[1]["failed_avp"]["code"], 517);
    // Strict: the first deviation is the answer.
    let (ok, out) = run(&["decode", "--strict", "--format", "json"], hex.as_bytes());
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["validation"]["valid"], false);
    assert_eq!(v[0]["validation"]["result_code"], 3009);
    assert_eq!(v[0]["validation"]["error"]["kind"], "m_bit");
}

//! Building the base-protocol messages the state machine sends (CER/CEA, DWR/DWA, DPR/DPA),
//! and small readers for the AVPs it looks at.

use super::DisconnectCause;
use super::codes::*;
use super::config::{InbandSecurity, LocalConfig};
use bytes::Bytes;
use diameter_codec::{
    AvpFlags, AvpKey, AvpRef, AvpValue, Dictionary, ErrorReport, LocalIdentity, Message,
    MessageBuilder, OwnedAvp, ResultCode, ValidateOptions, Validator,
};
use std::net::IpAddr;

const M: u8 = AvpFlags::MANDATORY;

fn text(code: u32, flags: u8, s: &str) -> OwnedAvp {
    OwnedAvp::new(
        code,
        0,
        flags,
        AvpValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
    )
}

fn unsigned(code: u32, flags: u8, v: u32) -> OwnedAvp {
    OwnedAvp::new(code, 0, flags, AvpValue::U32(v))
}

pub(crate) fn identity(local: &LocalConfig) -> LocalIdentity {
    LocalIdentity::new(local.origin_host.clone(), local.origin_realm.clone())
}

/// Everything after Origin-Host/Origin-Realm in a CER or CEA, in the order of the RFC 6733
/// §5.3.1 grammar.
fn push_capabilities(b: &mut MessageBuilder, local: &LocalConfig) {
    // RFC 6733 §5.3.1: "1* { Host-IP-Address }" – never send none.
    if local.host_ip_addresses.is_empty() {
        b.push(OwnedAvp::new(
            HOST_IP_ADDRESS,
            0,
            M,
            AvpValue::Address(IpAddr::from([127, 0, 0, 1])),
        ));
    }
    for ip in &local.host_ip_addresses {
        b.push(OwnedAvp::new(HOST_IP_ADDRESS, 0, M, AvpValue::Address(*ip)));
    }
    b.push(unsigned(VENDOR_ID, M, local.vendor_id));
    // Product-Name and Firmware-Revision are sent without M (RFC 6733 §4.5 flag table).
    b.push(text(PRODUCT_NAME, 0, &local.product_name));
    b.push(unsigned(ORIGIN_STATE_ID, M, local.origin_state_id));
    for v in &local.supported_vendor_ids {
        b.push(unsigned(SUPPORTED_VENDOR_ID, M, *v));
    }
    for app in local.applications.iter().filter(|a| a.vendor.is_none()) {
        if app.kind == super::AppKind::Auth {
            b.push(unsigned(AUTH_APPLICATION_ID, M, app.id));
        }
    }
    // RFC 6733 §6.10: Inband-Security-Id is only meaningful without TLS at connect; omitted
    // unless configured.
    match local.inband_security {
        InbandSecurity::Omit => {}
        other => {
            b.push(unsigned(INBAND_SECURITY_ID, M, other.accepted()));
        }
    }
    for app in local.applications.iter().filter(|a| a.vendor.is_none()) {
        if app.kind == super::AppKind::Acct {
            b.push(unsigned(ACCT_APPLICATION_ID, M, app.id));
        }
    }
    for app in &local.applications {
        if let Some(vendor) = app.vendor {
            // RFC 6733 §6.11: Vendor-Id plus exactly one of Auth-/Acct-Application-Id.
            let code = match app.kind {
                super::AppKind::Auth => AUTH_APPLICATION_ID,
                super::AppKind::Acct => ACCT_APPLICATION_ID,
            };
            let children = vec![unsigned(VENDOR_ID, M, vendor), unsigned(code, M, app.id)];
            b.push(OwnedAvp::new(
                VENDOR_SPECIFIC_APPLICATION_ID,
                0,
                M,
                AvpValue::Grouped(children),
            ));
        }
    }
    if let Some(fw) = local.firmware_revision {
        b.push(unsigned(FIRMWARE_REVISION, 0, fw));
    }
}

/// Our CER (RFC 6733 §5.3.1). "P" is clear: CER is never proxied.
pub(crate) fn cer(local: &LocalConfig, hbh: u32, e2e: u32) -> Bytes {
    let mut b = MessageBuilder::request(CMD_CER, 0, false).ids(hbh, e2e);
    b.push(text(ORIGIN_HOST, M, &local.origin_host));
    b.push(text(ORIGIN_REALM, M, &local.origin_realm));
    push_capabilities(&mut b, local);
    b.to_bytes()
}

/// A successful CEA (RFC 6733 §5.3.2).
pub(crate) fn cea_success(local: &LocalConfig, cer: &Message) -> Bytes {
    let mut b = MessageBuilder::answer_to(cer, &identity(local));
    b.result_code(ResultCode::DIAMETER_SUCCESS);
    push_capabilities(&mut b, local);
    b.to_bytes()
}

/// A failed CEA: Result-Code, E bit for 3xxx (RFC 6733 §7.2), Error-Message, Failed-AVP, and
/// still our capabilities so the peer can log who refused it.
pub(crate) fn cea_error(local: &LocalConfig, cer: &Message, report: &ErrorReport) -> Bytes {
    let mut b = MessageBuilder::error_answer(cer, &identity(local), report);
    push_capabilities(&mut b, local);
    b.to_bytes()
}

/// DWR (RFC 6733 §5.5.1).
pub(crate) fn dwr(local: &LocalConfig, hbh: u32, e2e: u32) -> Bytes {
    let mut b = MessageBuilder::request(CMD_DWR, 0, false).ids(hbh, e2e);
    b.push(text(ORIGIN_HOST, M, &local.origin_host));
    b.push(text(ORIGIN_REALM, M, &local.origin_realm));
    b.push(unsigned(ORIGIN_STATE_ID, M, local.origin_state_id));
    b.to_bytes()
}

/// DWA (RFC 6733 §5.5.2), Origin-State-Id included.
pub(crate) fn dwa(local: &LocalConfig, dwr: &Message) -> Bytes {
    let mut b = MessageBuilder::answer_to(dwr, &identity(local));
    b.result_code(ResultCode::DIAMETER_SUCCESS);
    b.push(unsigned(ORIGIN_STATE_ID, M, local.origin_state_id));
    b.to_bytes()
}

/// DPR (RFC 6733 §5.4.1).
pub(crate) fn dpr(local: &LocalConfig, hbh: u32, e2e: u32, cause: DisconnectCause) -> Bytes {
    let mut b = MessageBuilder::request(CMD_DPR, 0, false).ids(hbh, e2e);
    b.push(text(ORIGIN_HOST, M, &local.origin_host));
    b.push(text(ORIGIN_REALM, M, &local.origin_realm));
    b.push(OwnedAvp::new(
        DISCONNECT_CAUSE,
        0,
        M,
        AvpValue::I32(cause.value()),
    ));
    b.to_bytes()
}

/// DPA (RFC 6733 §5.4.2).
pub(crate) fn dpa(local: &LocalConfig, dpr: &Message) -> Bytes {
    let mut b = MessageBuilder::answer_to(dpr, &identity(local));
    b.result_code(ResultCode::DIAMETER_SUCCESS);
    b.to_bytes()
}

/// The error answer to a DWR or DPR that breaks its grammar (RFC 6733 §5.5.1 DWR ::=
/// {Origin-Host} {Origin-Realm} [Origin-State-Id] *[AVP]; §5.4.1 DPR adds
/// {Disconnect-Cause}): 5005 DIAMETER_MISSING_AVP for a missing AVP, 5001 for an unknown
/// AVP with M set, and so on, with Failed-AVP (§7.1.5). `None` when the request is valid.
pub(crate) fn base_request_error(local: &LocalConfig, req: &Message) -> Option<Bytes> {
    let report = Validator::new(Dictionary::embedded(), ValidateOptions::default())
        .validate(req)
        .err()?;
    Some(MessageBuilder::error_answer(req, &identity(local), &report).to_bytes())
}

/// An answer that refuses a request with `rc` (used for a CER on an open connection).
pub(crate) fn error_answer(local: &LocalConfig, req: &Message, rc: ResultCode, why: &str) -> Bytes {
    let mut report = ErrorReport::new(rc);
    report.message = Some(why.to_string());
    MessageBuilder::error_answer(req, &identity(local), &report).to_bytes()
}

pub(crate) fn u32_of(a: &AvpRef<'_>) -> Option<u32> {
    a.data.try_into().ok().map(u32::from_be_bytes)
}

pub(crate) fn find_u32(msg: &Message, code: u32) -> Option<u32> {
    msg.find(AvpKey::new(code, 0)).as_ref().and_then(u32_of)
}

pub(crate) fn find_str(msg: &Message, code: u32) -> Option<&str> {
    msg.find(AvpKey::new(code, 0))
        .and_then(|a| std::str::from_utf8(a.data).ok())
}

pub(crate) fn result_code(msg: &Message) -> Option<ResultCode> {
    find_u32(msg, RESULT_CODE).map(ResultCode)
}

/// Whether `msg` is a request (`true`) or answer (`false`) of `command`.
pub(crate) fn is(msg: &Message, command: u32, request: bool) -> bool {
    let h = msg.header();
    h.command_code == command && h.is_request() == request
}

//! `pcef-sim has`: the home application server (H-AS) of document 000, an AF on Rx (TS 29.214, application 16777236), here as the home
//! application server (H-AS) of document 000 asking for local breakout.
//!
//! One AAR (TS 29.214 §5.6.1) binding an AF session to the UE's address, with one media
//! component whose flows name the visited server (downlink `permit out` from it, uplink
//! `permit in` to it, TS 29.214 §5.3.8). With an OTT credential (`--ott`, `--package`,
//! `--ott-key`), the AAR asks for local breakout: our LBO-Indicator LOCAL_BREAKOUT and
//! LBO-OTT-Grant carrying the dynamic key the H-AS derives from the OTT's initial key and
//! the package id with a fresh nonce and an expiry ([`pcrf::lbo::ott_dynamic_key`], the
//! same function the H-PCRF checks with). The AAA's result is reported, with its Vendor-Id
//! when it is an Experimental-Result (our LBO codes are vendor 32473). An accepted AF
//! session is ended with STR after `duration`, or earlier when the PCRF says the IP-CAN
//! session is gone. The Rx session itself is `pcef-sim af`'s ([`crate::af::Af`]): the same
//! AAR base, notifications, STR and DRA handling, with the media component and the LBO
//! request added to its AAR.

use diameter_codec::dict::{base, roaming, rx};
use diameter_codec::types::DiameterTime;
use diameter_codec::{Message, MessageBuilder};
use pcrf::lbo::{self, Key, OttGrant};
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

use crate::client::Endpoint;

/// The OTT provider's credential the H-AS holds.
#[derive(Debug, Clone)]
pub struct OttCredential {
    /// LBO-OTT-Id.
    pub ott: String,
    /// The service package.
    pub package: String,
    /// The OTT's initial key.
    pub initial_key: Key,
    /// How long the dynamic key is valid, seconds (negative: already expired, for tests).
    pub ttl: i64,
}

/// How to run the AF session.
#[derive(Debug, Clone)]
pub struct AfOptions {
    /// The PCRF and who we are.
    pub endpoint: Endpoint,
    /// The UE's IPv4 address (Framed-IP-Address).
    pub ue_ip: IpAddr,
    /// The server's address.
    pub server: IpAddr,
    /// The server's port.
    pub port: u16,
    /// IP protocol number of the flow.
    pub proto: u8,
    /// Ask for local breakout with this credential.
    pub lbo: Option<OttCredential>,
    /// Hold an accepted AF session this long before STR.
    pub duration: Duration,
    /// Deadline of each request.
    pub timeout: Duration,
}

/// What the AF session came to.
#[derive(Debug, Clone, Serialize)]
pub struct AfReport {
    /// Session-Id.
    pub session_id: String,
    /// Whether local breakout was asked for.
    pub lbo: bool,
    /// The AAA's Result-Code or Experimental-Result-Code.
    pub result_code: Option<u32>,
    /// The Experimental-Result's Vendor-Id, when the result was one.
    pub vendor: Option<u32>,
    /// The AAA's Error-Message.
    pub error_message: Option<String>,
    /// The STA's Result-Code, when the session was ended.
    pub str_result: Option<u32>,
}

impl AfReport {
    /// Whether the AAR was accepted.
    pub fn accepted(&self) -> bool {
        self.result_code == Some(2001)
    }

    /// The summary as text.
    pub fn text(&self) -> String {
        let what = if self.lbo {
            "local breakout"
        } else {
            "AF session"
        };
        let code = self
            .result_code
            .map_or("no answer".into(), |c| match self.vendor {
                Some(v) => format!("{c} (vendor {v})"),
                None => c.to_string(),
            });
        let mut s = format!("{} {what}: AAA {code}", self.session_id);
        if let Some(m) = &self.error_message {
            s.push_str(&format!(": {m}"));
        }
        if let Some(c) = self.str_result {
            s.push_str(&format!("; STA {c}"));
        }
        s.push('\n');
        s
    }
}

/// The LBO-OTT-Grant of `c` with `nonce`, valid for its ttl from now.
pub fn ott_grant(c: &OttCredential, nonce: Vec<u8>) -> OttGrant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let expiry = DiameterTime::from_unix(now + c.ttl).unwrap_or(DiameterTime(0));
    OttGrant {
        ott: c.ott.clone(),
        package: c.package.clone(),
        key: lbo::ott_dynamic_key(&c.initial_key, &c.package, &nonce, expiry).to_vec(),
        nonce,
        expiry,
    }
}

/// What the H-AS adds to the Rx AAR of the options' AF session: one media component whose
/// flows name the server, and with a credential the local-breakout request.
pub fn add_to_aar(opts: &AfOptions, b: &mut MessageBuilder, nonce: Vec<u8>) {
    let (server, ue) = (opts.server, opts.ue_ip);
    let (proto, port) = (opts.proto, opts.port);
    b.push(rx::MEDIA_COMPONENT_DESCRIPTION.with(vec![
        rx::MEDIA_COMPONENT_NUMBER.with(1u32),
        rx::MEDIA_SUB_COMPONENT.with(vec![
            rx::FLOW_NUMBER.with(1u32),
            rx::FLOW_DESCRIPTION.with(format!("permit out {proto} from {server} {port} to {ue}")),
            rx::FLOW_DESCRIPTION.with(format!("permit in {proto} from {ue} to {server} {port}")),
        ]),
        rx::MEDIA_TYPE.with(rx::MediaType::DATA),
    ]));
    if let Some(c) = &opts.lbo {
        b.push(roaming::LBO_INDICATOR.with(roaming::LboIndicator::LOCAL_BREAKOUT));
        b.push(lbo::ott_grant_avp(&ott_grant(c, nonce)));
    }
}

/// The Result-Code, or the Experimental-Result-Code with its Vendor-Id.
fn result_and_vendor(m: &Message) -> (Option<u32>, Option<u32>) {
    if let Some(c) = m.get(base::RESULT_CODE).and_then(Result::ok) {
        return (Some(c), None);
    }
    let Some(e) = m.find(base::EXPERIMENTAL_RESULT.key()) else {
        return (None, None);
    };
    let get = |key| {
        e.children()
            .flatten()
            .find(|a| a.key() == key)
            .and_then(|a| <[u8; 4]>::try_from(a.data).ok())
            .map(u32::from_be_bytes)
    };
    (
        get(base::EXPERIMENTAL_RESULT_CODE.key()),
        get(base::VENDOR_ID.key()),
    )
}

/// Runs the AF session against the PCRF (or through a DRA).
pub async fn run(opts: &AfOptions) -> anyhow::Result<AfReport> {
    let rx_opts = crate::af::AfOptions {
        endpoint: opts.endpoint.clone(),
        ue_ip: opts.ue_ip,
        specific_actions: crate::af::AfOptions::LOSS.to_vec(),
        timeout: opts.timeout,
    };
    // The nonce only needs to differ between dynamic keys; the time does that here.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_be_bytes()
        .to_vec();
    let (mut af, aaa) = crate::af::Af::open_with(&rx_opts, |b| add_to_aar(opts, b, nonce)).await?;
    let mut report = AfReport {
        session_id: af.session_id().to_string(),
        lbo: opts.lbo.is_some(),
        result_code: None,
        vendor: None,
        error_message: None,
        str_result: None,
    };
    let answer = match &aaa {
        Ok(a) => Some(a),
        Err(diameter_node::node::RequestError::Protocol { answer, .. }) => Some(answer),
        Err(e) => {
            report.error_message = Some(format!("no AAA: {e}"));
            None
        }
    };
    if let Some(a) = answer {
        (report.result_code, report.vendor) = result_and_vendor(a);
        report.error_message = a
            .get(base::ERROR_MESSAGE)
            .and_then(Result::ok)
            .map(str::to_string);
    }
    if report.accepted() {
        let cause = match af.loss(opts.duration).await {
            Some(_) => base::TerminationCause::DIAMETER_ADMINISTRATIVE,
            None => base::TerminationCause::DIAMETER_LOGOUT,
        };
        report.str_result = crate::client::result_of(&af.close(cause).await.answer);
    } else {
        af.stop().await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lbo: Option<OttCredential>) -> AfOptions {
        AfOptions {
            endpoint: Endpoint::direct(
                "127.0.0.1:3869".parse().unwrap(),
                "pcrf.home.test",
                "home.test",
                "has.sim",
                "sim",
            ),
            ue_ip: "10.45.0.2".parse().unwrap(),
            server: "203.0.113.10".parse().unwrap(),
            port: 443,
            proto: 6,
            lbo,
            duration: Duration::ZERO,
            timeout: Duration::from_secs(1),
        }
    }

    fn aar(opts: &AfOptions, nonce: Vec<u8>) -> Message {
        let mut b = MessageBuilder::request(rx::CMD_AA, rx::APP_RX, true);
        b.push(base::SESSION_ID.with("s".to_string()));
        add_to_aar(opts, &mut b, nonce);
        b.build().unwrap()
    }

    /// The AAR carries the marker and an OTT grant whose key the home check accepts.
    #[test]
    fn an_lbo_aar_carries_a_key_the_home_check_accepts() {
        let c = OttCredential {
            ott: "ott-video".into(),
            package: "cdn-video".into(),
            initial_key: Key::new(vec![7; 32]).unwrap(),
            ttl: 60,
        };
        let m = aar(&opts(Some(c.clone())), b"n".to_vec());
        assert!(m.find(roaming::LBO_INDICATOR.key()).is_some());
        let g = lbo::ott_grant_of(&m.find(roaming::LBO_OTT_GRANT.key()).unwrap()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(lbo::check_ott(&g, Some(&c.initial_key), now, 300), Ok(()));
        let flows: Vec<String> = m
            .find(rx::MEDIA_COMPONENT_DESCRIPTION.key())
            .unwrap()
            .children()
            .flatten()
            .filter(|a| a.key() == rx::MEDIA_SUB_COMPONENT.key())
            .flat_map(|s| {
                s.children()
                    .flatten()
                    .filter(|a| a.key() == rx::FLOW_DESCRIPTION.key())
                    .map(|a| String::from_utf8_lossy(a.data).into_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            flows,
            [
                "permit out 6 from 203.0.113.10 443 to 10.45.0.2",
                "permit in 6 from 10.45.0.2 to 203.0.113.10 443"
            ]
        );
        assert!(
            aar(&opts(None), vec![])
                .find(roaming::LBO_OTT_GRANT.key())
                .is_none()
        );
    }
}

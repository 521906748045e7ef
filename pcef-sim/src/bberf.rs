//! `pcef-sim bberf`: the BBERF's Gxx side (TS 29.212 chapter 4a, application 16777266) for
//! one UE: a gateway control session opened with CCR-I (Subscription-Id, Called-Station-Id,
//! IP-CAN-Type, RAT-Type and, when known, the UE address), the PCRF's QoS-rule RARs
//! answered 2001, and CCR-T at detach or when the BBERF is reselected (document 002,
//! embodiments 1, 4 and 7: the old BBERF ends its Gxx session with Termination-Cause
//! DIAMETER_USER_MOVED while the new one has opened its own). Through a DRA, the session
//! goes the way [`crate::client::Upstream`] says.

use crate::client::{Endpoint, Terminated, TerminationSeen, Upstream, new_session_id, result_of};
use crate::gy::Subscriber;
use anyhow::Context;
use diameter_codec::dict::{base, dcca, gx, nasreq};
use diameter_codec::{MessageBuilder, ResultCode};
use diameter_node::node::handler_fn;
use std::net::IpAddr;
use std::time::Duration;

/// How to run the Gxx session.
#[derive(Debug, Clone)]
pub struct BberfOptions {
    /// The PCRF (or DRA) and who we are.
    pub endpoint: Endpoint,
    /// The UE.
    pub subscriber: Subscriber,
    /// The UE's address, when the BBERF knows it.
    pub ue_ip: Option<IpAddr>,
    /// Called-Station-Id.
    pub apn: String,
    /// RAT-Type.
    pub rat_type: i32,
    /// Deadline of each request.
    pub timeout: Duration,
}

/// A running Gxx session.
pub struct Bberf {
    up: Upstream,
    opts: BberfOptions,
    id: String,
    number: u32,
}

impl Bberf {
    /// Connects and sends the CCR-I; returns the session and the CCA-I's result.
    pub async fn attach(opts: &BberfOptions) -> anyhow::Result<(Self, Option<u32>)> {
        let up = Upstream::connect(&opts.endpoint, gx::APP_GXX, opts.timeout)
            .await
            .context("connecting to the PCRF")?;
        let id = new_session_id(&opts.endpoint.origin_host, "gxx");
        // TS 29.212 §4a.5.4: the PCRF's RAR (QoS rules) is answered at once.
        let ours = id.clone();
        up.node().register(
            gx::APP_GXX,
            handler_fn(move |req| {
                let ours = ours.clone();
                async move {
                    if req.msg.header().command_code != gx::CMD_RE_AUTH {
                        req.answer(ResultCode::DIAMETER_COMMAND_UNSUPPORTED)
                    } else if req.msg.session_id() != Some(ours.as_str()) {
                        req.answer(ResultCode::DIAMETER_UNKNOWN_SESSION_ID)
                    } else {
                        req.answer(ResultCode::DIAMETER_SUCCESS)
                    }
                }
            }),
        );
        let mut me = Self {
            up,
            opts: opts.clone(),
            id,
            number: 0,
        };
        let mut b = me.ccr(1);
        b.push(dcca::SUBSCRIPTION_ID.with(vec![
            dcca::SUBSCRIPTION_ID_TYPE.with(dcca::SubscriptionIdType(opts.subscriber.kind)),
            dcca::SUBSCRIPTION_ID_DATA.with(opts.subscriber.data.clone()),
        ]));
        if let Some(ip) = opts.ue_ip {
            b.push(crate::gx::ue_address(ip));
        }
        b.push(gx::IP_CAN_TYPE.with(gx::IpCanType::TGPP_EPS));
        b.push(gx::RAT_TYPE.with(gx::RatType(opts.rat_type)));
        b.push(nasreq::CALLED_STATION_ID.with(opts.apn.clone()));
        let r = me.up.establish(b).await;
        Ok((me, result_of(&r)))
    }

    /// Session-Id.
    pub fn session_id(&self) -> &str {
        &self.id
    }

    fn ccr(&mut self, kind: i32) -> MessageBuilder {
        let ep = &self.opts.endpoint;
        let mut b = MessageBuilder::request(gx::CMD_CREDIT_CONTROL, gx::APP_GXX, true);
        b.push(base::SESSION_ID.with(self.id.clone()));
        b.push(base::AUTH_APPLICATION_ID.with(gx::APP_GXX));
        b.push(base::ORIGIN_HOST.with(ep.origin_host.clone()));
        b.push(base::ORIGIN_REALM.with(ep.origin_realm.clone()));
        b.push(base::DESTINATION_REALM.with(ep.dest_realm.clone()));
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType(kind)));
        b.push(dcca::CC_REQUEST_NUMBER.with(self.number));
        self.number += 1;
        b
    }

    /// CCR-T with `cause` (DIAMETER_LOGOUT at detach, DIAMETER_USER_MOVED when the BBERF
    /// was reselected), then the node stops.
    pub async fn detach(mut self, cause: base::TerminationCause) -> Terminated {
        let mut b = self.ccr(3);
        b.push(base::TERMINATION_CAUSE.with(cause));
        let t = self.up.terminate(b).await;
        self.up.node().shutdown(Duration::from_secs(1)).await;
        t
    }
}

/// What `pcef-sim bberf` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BberfReport {
    /// Session-Id.
    pub session_id: String,
    /// The CCA-I's result.
    pub attach_result: Option<u32>,
    /// The CCR-T, when the session was established.
    pub termination: Option<TerminationSeen>,
}

/// Attaches, stays `duration`, detaches (DIAMETER_LOGOUT; DIAMETER_USER_MOVED with
/// `moved`, as a BBERF the UE left). `live` prints each step.
pub async fn run(
    opts: &BberfOptions,
    duration: Duration,
    moved: bool,
    live: bool,
) -> anyhow::Result<BberfReport> {
    let (b, code) = Bberf::attach(opts).await?;
    let say = |l: String| {
        if live {
            println!("{l}");
        }
    };
    say(format!(
        "Gxx CCR-I -> {}",
        code.map_or("unanswered".into(), |c| c.to_string())
    ));
    let session_id = b.session_id().to_string();
    if code != Some(2001) {
        b.up.node().shutdown(Duration::from_secs(1)).await;
        return Ok(BberfReport {
            session_id,
            attach_result: code,
            termination: None,
        });
    }
    tokio::time::sleep(duration).await;
    let cause = if moved {
        base::TerminationCause::DIAMETER_USER_MOVED
    } else {
        base::TerminationCause::DIAMETER_LOGOUT
    };
    let t = b.detach(cause).await;
    say(format!("Gxx CCR-T -> {}", t.line()));
    Ok(BberfReport {
        session_id,
        attach_result: code,
        termination: Some(t.seen()),
    })
}

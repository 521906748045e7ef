//! `pcef-sim af`: an AF's Rx side (TS 29.214, application 16777236) for one UE address: an
//! AF session opened with an AAR (Framed-IP-Address, the Specific-Actions it subscribes
//! to), the PCRF's notifications answered 2001, and STR when the AF ends the session or
//! when the PCRF tells it the IP-CAN session is gone — an RAR with
//! INDICATION_OF_LOSS_OF_BEARER or INDICATION_OF_RELEASE_OF_BEARER, or an ASR (TS 29.214
//! §4.4.6.1, §4.4.4; document 002 steps 914–918: the AF acknowledges and ends its Rx
//! session). Through a DRA, the session goes the way [`crate::client::Upstream`] says.

use crate::client::{Endpoint, Terminated, TerminationSeen, Upstream, new_session_id, result_of};
use anyhow::Context;
use diameter_codec::ResultCode;
use diameter_codec::dict::{base, rx};
use diameter_codec::{Message, MessageBuilder};
use diameter_node::node::handler_fn;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// How to run the AF session.
#[derive(Debug, Clone)]
pub struct AfOptions {
    /// The PCRF (or DRA) and who we are.
    pub endpoint: Endpoint,
    /// The UE's address (Framed-IP-Address, or Framed-IPv6-Prefix /64).
    pub ue_ip: IpAddr,
    /// Specific-Action values subscribed to in the AAR (TS 29.214 §5.3.13).
    pub specific_actions: Vec<i32>,
    /// Deadline of each request.
    pub timeout: Duration,
}

impl AfOptions {
    /// The loss and release of the IP-CAN session's bearer subscribed to (document 002:
    /// the AF hears that its IP-CAN session is gone).
    pub const LOSS: [i32; 2] = [
        rx::SpecificAction::INDICATION_OF_LOSS_OF_BEARER.0,
        rx::SpecificAction::INDICATION_OF_RELEASE_OF_BEARER.0,
    ];
}

/// The PCRF's word that the IP-CAN session is gone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Loss {
    /// "rar" or "asr".
    pub command: &'static str,
    /// The Specific-Actions of an RAR.
    pub actions: Vec<i32>,
    /// Abort-Cause, when given.
    pub abort_cause: Option<i32>,
}

/// Whether the PCRF's request says the IP-CAN session is gone, and how.
fn loss_of(m: &Message) -> Option<Loss> {
    let abort_cause = m.get(rx::ABORT_CAUSE).and_then(Result::ok).map(|c| c.0);
    match m.header().command_code {
        rx::CMD_ABORT_SESSION => Some(Loss {
            command: "asr",
            actions: Vec::new(),
            abort_cause,
        }),
        rx::CMD_RE_AUTH => {
            let actions: Vec<i32> = m
                .find_all(rx::SPECIFIC_ACTION.key())
                .filter_map(|a| rx::SPECIFIC_ACTION.decode(a.data).ok())
                .map(|a| a.0)
                .filter(|a| AfOptions::LOSS.contains(a))
                .collect();
            (!actions.is_empty()).then_some(Loss {
                command: "rar",
                actions,
                abort_cause,
            })
        }
        _ => None,
    }
}

/// An Rx request of session `id` (TS 29.214 §5.6): Session-Id, Auth-Application-Id,
/// Origin-Host, Origin-Realm, Destination-Realm.
fn request(command: u32, ep: &Endpoint, id: &str) -> MessageBuilder {
    let mut b = MessageBuilder::request(command, rx::APP_RX, true);
    b.push(base::SESSION_ID.with(id.to_string()));
    b.push(base::AUTH_APPLICATION_ID.with(rx::APP_RX));
    b.push(base::ORIGIN_HOST.with(ep.origin_host.clone()));
    b.push(base::ORIGIN_REALM.with(ep.origin_realm.clone()));
    b.push(base::DESTINATION_REALM.with(ep.dest_realm.clone()));
    b
}

/// A running AF session.
pub struct Af {
    up: Upstream,
    opts: AfOptions,
    id: String,
    losses: mpsc::UnboundedReceiver<Loss>,
}

impl Af {
    /// Connects and sends the AAR; returns the session and the AAA's result.
    pub async fn open(opts: &AfOptions) -> anyhow::Result<(Self, Option<u32>)> {
        let (af, aaa) = Self::open_with(opts, |_| {}).await?;
        Ok((af, result_of(&aaa)))
    }

    /// As [`Af::open`], with `more` adding to the AAR (media components, an LBO grant:
    /// `pcef-sim has`); returns the AAA itself.
    pub async fn open_with(
        opts: &AfOptions,
        more: impl FnOnce(&mut MessageBuilder),
    ) -> anyhow::Result<(Self, Result<Message, diameter_node::node::RequestError>)> {
        let up = Upstream::connect(&opts.endpoint, rx::APP_RX, opts.timeout)
            .await
            .context("connecting to the PCRF")?;
        let id = new_session_id(&opts.endpoint.origin_host, "rx");
        let (tx, losses) = mpsc::unbounded_channel();
        let ours = id.clone();
        // TS 29.214 §4.4.6: the PCRF's RAR and ASR are answered at once; a loss is handed
        // to the session, which then ends with STR.
        up.node().register(
            rx::APP_RX,
            handler_fn(move |req| {
                let (ours, tx) = (ours.clone(), tx.clone());
                async move {
                    let cmd = req.msg.header().command_code;
                    if cmd != rx::CMD_RE_AUTH && cmd != rx::CMD_ABORT_SESSION {
                        return req.answer(ResultCode::DIAMETER_COMMAND_UNSUPPORTED);
                    }
                    if req.msg.session_id() != Some(ours.as_str()) {
                        return req.answer(ResultCode::DIAMETER_UNKNOWN_SESSION_ID);
                    }
                    if let Some(l) = loss_of(&req.msg) {
                        let _ = tx.send(l);
                    }
                    req.answer(ResultCode::DIAMETER_SUCCESS)
                }
            }),
        );
        let mut b = request(rx::CMD_AA, &opts.endpoint, &id);
        b.push(crate::gx::ue_address(opts.ue_ip));
        for &a in &opts.specific_actions {
            b.push(rx::SPECIFIC_ACTION.with(rx::SpecificAction(a)));
        }
        more(&mut b);
        let r = up.establish(b).await;
        let me = Self {
            up,
            opts: opts.clone(),
            id,
            losses,
        };
        Ok((me, r))
    }

    /// Session-Id.
    pub fn session_id(&self) -> &str {
        &self.id
    }

    /// Stops the node without STR (the AAR was refused: there is no session to end).
    pub async fn stop(self) {
        self.up.node().shutdown(Duration::from_secs(1)).await;
    }

    /// Waits up to `wait` for the PCRF to say the IP-CAN session is gone.
    pub async fn loss(&mut self, wait: Duration) -> Option<Loss> {
        tokio::time::timeout(wait, self.losses.recv())
            .await
            .ok()
            .flatten()
    }

    /// STR with `cause` (DIAMETER_LOGOUT when the AF ends it, DIAMETER_ADMINISTRATIVE
    /// after a loss notification, TS 29.214 §4.4.4), then the node stops.
    pub async fn close(self, cause: base::TerminationCause) -> Terminated {
        let mut b = request(rx::CMD_SESSION_TERMINATION, &self.opts.endpoint, &self.id);
        b.push(base::TERMINATION_CAUSE.with(cause));
        let t = self.up.terminate(b).await;
        self.up.node().shutdown(Duration::from_secs(1)).await;
        t
    }
}

/// What `pcef-sim af` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AfReport {
    /// Session-Id.
    pub session_id: String,
    /// The AAA's result.
    pub aar_result: Option<u32>,
    /// The PCRF's loss notification, when one came.
    pub loss: Option<Loss>,
    /// The STR, when the session was established.
    pub termination: Option<TerminationSeen>,
}

/// Opens the AF session, waits up to `duration` for a loss notification, then ends it
/// (DIAMETER_ADMINISTRATIVE after a loss, DIAMETER_LOGOUT otherwise). `live` prints each
/// step.
pub async fn run(opts: &AfOptions, duration: Duration, live: bool) -> anyhow::Result<AfReport> {
    let (mut af, code) = Af::open(opts).await?;
    let say = |l: String| {
        if live {
            println!("{l}");
        }
    };
    say(format!(
        "Rx AAR -> {}",
        code.map_or("unanswered".into(), |c| c.to_string())
    ));
    let session_id = af.session_id().to_string();
    if code != Some(2001) {
        af.stop().await;
        return Ok(AfReport {
            session_id,
            aar_result: code,
            loss: None,
            termination: None,
        });
    }
    let loss = af.loss(duration).await;
    if let Some(l) = &loss {
        say(format!(
            "{} from the PCRF: IP-CAN session gone (Specific-Action {:?}, Abort-Cause {:?}), answered 2001",
            l.command.to_uppercase(),
            l.actions,
            l.abort_cause
        ));
    }
    let cause = if loss.is_some() {
        base::TerminationCause::DIAMETER_ADMINISTRATIVE
    } else {
        base::TerminationCause::DIAMETER_LOGOUT
    };
    let t = af.close(cause).await;
    say(format!("Rx STR -> {}", t.line()));
    Ok(AfReport {
        session_id,
        aar_result: code,
        loss,
        termination: Some(t.seen()),
    })
}

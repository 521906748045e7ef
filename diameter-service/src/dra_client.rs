//! The client side of a DRA (TS 29.213 §7; document 002 of `shared/reference/seeds.md`):
//! what a PCEF, a BBERF, an AF or a V-PCRF in front of a home DRA does so that the DRA
//! learns when its sessions end.
//!
//! A redirect DRA never sees the requests that follow a redirect (RFC 6733 §2.8.3), so it
//! cannot tell on its own when a session ends. Document 002 has the client remember, at
//! establishment, whether the DRA redirected it (and to which PCRF) or proxied it, and send
//! its termination (CCR-T, STR, S9 CCR-T) accordingly:
//!
//! - a **proxied** session ends through the DRA, which marks it when the PCRF's answer
//!   comes back (embodiments 7–9);
//! - a **redirected** session ends by one of two behaviours, per configuration
//!   ([`TerminationBehaviour`]): the termination goes to the DRA and to the PCRF **in
//!   parallel** (the DRA's answer, its own CCA-T/STA 2001 or an unfollowed 3006, says it
//!   marked the session), or it goes to the DRA only and the client **follows the
//!   redirect** the DRA answers with to the PCRF (embodiments 1–6). A DRA configured to
//!   acknowledge terminations itself answers 2001 instead of redirecting; the client then
//!   sends the termination to the PCRF it was redirected to at establishment, so the PCRF
//!   never keeps a session because the two sides were configured differently.
//!
//! A redirect DRA binds a session before the PCRF has seen it: when the PCRF refuses a
//! redirected establishment, the client sends the DRA a termination for it (not
//! followed), so no binding is left for a session that never existed.
//!
//! One [`DraClient`] serves every session of a node; in-session requests follow the same
//! path as the establishment ([`DraClient::request`]).

use diameter_codec::dict::{base, dcca};
use diameter_codec::{Message, MessageBuilder};
use diameter_node::node::{Delivered, Node, RequestError, SendOptions};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The counter of terminations by path and result.
pub const TERMINATIONS: &str = "dra_client_terminations_total";

/// Describes the DRA client's series (call beside the server's own `describe`).
pub fn describe() {
    metrics::describe_counter!(
        TERMINATIONS,
        "Terminations sent as a DRA client (document 002), by kind (session, subsessions), path (proxied, parallel, redirect) and result (ok, failed)"
    );
}

/// How a client ends a session the DRA redirected (document 002, step 1 and claims 5–7):
/// `parallel` or `redirect` on the command line (clap) and in configuration files (serde).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TerminationBehaviour {
    /// To the DRA and the PCRF at once; both answers awaited.
    #[default]
    Parallel,
    /// To the DRA, then to the PCRF its redirect names.
    Redirect,
}

impl TerminationBehaviour {
    /// Label (metrics, logs, reports).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parallel => "parallel",
            Self::Redirect => "redirect",
        }
    }
}

impl std::str::FromStr for TerminationBehaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parallel" => Ok(Self::Parallel),
            "redirect" => Ok(Self::Redirect),
            _ => Err(format!(
                "unknown DRA termination behaviour {s:?} (parallel or redirect)"
            )),
        }
    }
}

/// How the DRA handled a session's establishment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handling {
    /// Answered 3006; the session talks to this PCRF directly.
    Redirected {
        /// The PCRF's Diameter identity.
        pcrf: String,
    },
    /// Forwarded to the PCRF; the session goes through the DRA.
    Proxied,
    /// Forwarded to this PCRF for its establishment only (a client built with
    /// [`DraClient::with_direct_after_proxy`]): in-session requests go to the PCRF
    /// directly, what ends the session or a subsession still through the DRA (document
    /// 002: or the binding is left behind).
    ProxiedFirst {
        /// The PCRF's Diameter identity (the answer's Origin-Host).
        pcrf: String,
    },
}

/// The way a termination went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationPath {
    /// Through the DRA (a proxied session, or one established without this client).
    Proxied,
    /// To the DRA and the PCRF at once.
    Parallel,
    /// To the DRA, following its redirect (or, when it acknowledged, to the PCRF after).
    Redirect,
}

impl TerminationPath {
    /// Label (metrics, logs, reports).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxied => "proxied",
            Self::Parallel => "parallel",
            Self::Redirect => "redirect",
        }
    }
}

/// What a termination got.
#[derive(Debug)]
pub struct Ended {
    /// Which way it went.
    pub path: TerminationPath,
    /// The PCRF's answer (relayed by the DRA for a proxied session).
    pub pcrf: Result<Message, RequestError>,
    /// The DRA's own answer when it answered apart from the PCRF: its acknowledgement
    /// (2001) or its redirect (3006, not followed in parallel).
    pub dra: Option<Result<Message, RequestError>>,
}

impl Ended {
    /// The PCRF's Result-Code (also read from an error answer).
    pub fn pcrf_result(&self) -> Option<u32> {
        result_of(&self.pcrf)
    }

    /// The DRA's own Result-Code, when it answered apart.
    pub fn dra_result(&self) -> Option<u32> {
        self.dra.as_ref().and_then(result_of)
    }

    /// Whether the PCRF ended the session (2001) and the DRA, when asked apart, took note
    /// of it (2001, or 3006: a redirect DRA marks before it redirects).
    pub fn is_success(&self) -> bool {
        let dra_ok =
            self.dra.is_none() || matches!(self.dra_result(), Some(c) if c == 2001 || c == 3006);
        self.pcrf_result() == Some(2001) && dra_ok
    }
}

fn result_of(r: &Result<Message, RequestError>) -> Option<u32> {
    let m = match r {
        Ok(m) => m,
        Err(RequestError::Protocol { answer, .. }) => answer,
        Err(_) => return None,
    };
    m.get(base::RESULT_CODE).and_then(Result::ok)
}

/// The client of one DRA: sends establishments to it, remembers how it handled each
/// session, and ends sessions as document 002 says (see the module documentation).
pub struct DraClient {
    node: Node,
    dra: String,
    behaviour: TerminationBehaviour,
    timeout: Option<Duration>,
    direct_after_proxy: bool,
    sessions: Mutex<HashMap<String, Handling>>,
}

fn session_id(req: &MessageBuilder) -> Option<String> {
    req.find(base::SESSION_ID.key())
        .and_then(|a| a.as_bytes())
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

impl DraClient {
    /// A client of the DRA `dra` (its Diameter identity, a peer of `node`), ending
    /// redirected sessions by `behaviour`.
    pub fn new(node: Node, dra: impl Into<String>, behaviour: TerminationBehaviour) -> Self {
        Self {
            node,
            dra: dra.into(),
            behaviour,
            timeout: None,
            direct_after_proxy: false,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// After a proxied establishment, talks to the PCRF that answered directly; only what
    /// ends the session (or a subsession) goes through the DRA again ([`Handling::ProxiedFirst`]).
    pub fn with_direct_after_proxy(mut self, on: bool) -> Self {
        self.direct_after_proxy = on;
        self
    }

    /// Each request's deadline (the node's `request_timeout` otherwise).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The behaviour for redirected sessions.
    pub fn behaviour(&self) -> TerminationBehaviour {
        self.behaviour
    }

    /// How the DRA handled `session_id`, while it lasts.
    pub fn handling(&self, session_id: &str) -> Option<Handling> {
        self.table().get(session_id).cloned()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handling>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn options(&self, peer: Option<&str>, keep_redirect: bool) -> SendOptions {
        SendOptions {
            timeout: self.timeout,
            peer: peer.map(str::to_string),
            peer_addr: None,
            keep_redirect,
        }
    }

    /// Sends an establishment (CCR-I, an AAR opening an Rx session) to the DRA, follows
    /// its redirect, and remembers how it was handled when the answer is a success. When
    /// the PCRF refuses a redirected establishment, the DRA (which bound the session before
    /// redirecting and never sees the PCRF's answer) is told the session ended, so it keeps
    /// no binding for it.
    pub async fn establish(&self, req: MessageBuilder) -> Result<Message, RequestError> {
        let sid = session_id(&req);
        let undo = undo_for(&req);
        let d = self
            .node
            .request_with(req, &self.options(Some(&self.dra), false))
            .await?;
        let mut handling = self.handling_of(&d);
        if handling == Handling::Proxied
            && self.direct_after_proxy
            && let Some(pcrf) = d.answer.get(base::ORIGIN_HOST).and_then(Result::ok)
            && !pcrf.eq_ignore_ascii_case(&self.dra)
        {
            handling = Handling::ProxiedFirst {
                pcrf: pcrf.to_string(),
            };
        }
        if is_2xxx(&d.answer) {
            if let Some(sid) = sid {
                tracing::debug!(session = %sid, ?handling, "DRA handling recorded");
                self.table().insert(sid, handling);
            }
        } else if let (Handling::Redirected { .. }, Some(undo)) = (&handling, undo) {
            let told = self
                .node
                .request_with(undo, &self.options(Some(&self.dra), true))
                .await;
            tracing::info!(
                session = sid.as_deref().unwrap_or(""),
                dra_result = ?result_of(&told.map(|t| t.answer)),
                "establishment refused after the DRA's redirect: the DRA told"
            );
        }
        Ok(d.answer)
    }

    fn handling_of(&self, d: &Delivered) -> Handling {
        if d.redirected_by.is_some() && !d.peer.eq_ignore_ascii_case(&self.dra) {
            Handling::Redirected {
                pcrf: d.peer.clone(),
            }
        } else {
            Handling::Proxied
        }
    }

    /// An in-session request (CCR-U, an AAR modifying an Rx session, an RAA's follow-up):
    /// to the PCRF of a redirected session (or of a proxied one, when the client talks
    /// directly after the establishment), through the DRA otherwise.
    pub async fn request(&self, req: MessageBuilder) -> Result<Message, RequestError> {
        let peer = match session_id(&req).and_then(|s| self.handling(&s)) {
            Some(Handling::Redirected { pcrf } | Handling::ProxiedFirst { pcrf }) => pcrf,
            _ => self.dra.clone(),
        };
        self.node
            .request_with(req, &self.options(Some(&peer), false))
            .await
            .map(|d| d.answer)
    }

    /// Ends a session (CCR-T, STR, S9 CCR-T) as document 002 says, and forgets it.
    pub async fn terminate(&self, req: MessageBuilder) -> Ended {
        let sid = session_id(&req);
        let handling = sid.as_deref().and_then(|s| self.table().remove(s));
        self.tell(req, sid, handling, "session").await
    }

    /// A request that ends part of a session the DRA must hear of, the session going on:
    /// an S9 CCR-U ending subsessions (Subsession-Enforcement-Info with TERMINATION and
    /// the client Session-Ids, document 002 claim 13). It goes the way a termination does.
    pub async fn end_subsessions(&self, req: MessageBuilder) -> Ended {
        let sid = session_id(&req);
        let handling = sid.as_deref().and_then(|s| self.handling(s));
        self.tell(req, sid, handling, "subsessions").await
    }

    async fn tell(
        &self,
        req: MessageBuilder,
        sid: Option<String>,
        handling: Option<Handling>,
        kind: &'static str,
    ) -> Ended {
        let ended = match handling {
            Some(Handling::Redirected { pcrf }) => match self.behaviour {
                TerminationBehaviour::Parallel => {
                    // Document 002 step 1: to the DRA and the PCRF at once; the DRA's
                    // redirect is not followed, the PCRF has the request already.
                    let (dra_opts, pcrf_opts) = (
                        self.options(Some(&self.dra), true),
                        self.options(Some(&pcrf), false),
                    );
                    let (dra, pcrf) = tokio::join!(
                        self.node.request_with(req.clone(), &dra_opts),
                        self.node.request_with(req, &pcrf_opts)
                    );
                    Ended {
                        path: TerminationPath::Parallel,
                        pcrf: pcrf.map(|d| d.answer),
                        dra: Some(dra.map(|d| d.answer)),
                    }
                }
                TerminationBehaviour::Redirect => self.via_dra_redirect(req, &pcrf).await,
            },
            Some(Handling::Proxied | Handling::ProxiedFirst { .. }) | None => Ended {
                path: TerminationPath::Proxied,
                pcrf: self
                    .node
                    .request_with(req, &self.options(Some(&self.dra), false))
                    .await
                    .map(|d| d.answer),
                dra: None,
            },
        };
        metrics::counter!(
            TERMINATIONS,
            "kind" => kind,
            "path" => ended.path.as_str(),
            "result" => if ended.is_success() { "ok" } else { "failed" },
        )
        .increment(1);
        tracing::info!(
            session = sid.as_deref().unwrap_or(""),
            path = ended.path.as_str(),
            pcrf_result = ?ended.pcrf_result(),
            dra_result = ?ended.dra_result(),
            kind,
            "ended through the DRA client"
        );
        ended
    }

    /// Document 002, embodiments 1–6: to the DRA, which marks the session and redirects
    /// to the PCRF (followed by the node). A DRA that acknowledged itself instead (its
    /// `termination = "ack"`) leaves the PCRF to be told here, at the PCRF it redirected
    /// the establishment to.
    async fn via_dra_redirect(&self, req: MessageBuilder, pcrf: &str) -> Ended {
        let first = self
            .node
            .request_with(req.clone(), &self.options(Some(&self.dra), false))
            .await;
        match first {
            // Answered by the DRA itself: acknowledged, or refused (5002, no binding left);
            // either way the PCRF has not been told.
            Ok(d) if d.redirected_by.is_none() && d.peer.eq_ignore_ascii_case(&self.dra) => {
                let pcrf = self
                    .node
                    .request_with(req, &self.options(Some(pcrf), false))
                    .await
                    .map(|d| d.answer);
                Ended {
                    path: TerminationPath::Redirect,
                    pcrf,
                    dra: Some(Ok(d.answer)),
                }
            }
            other => Ended {
                path: TerminationPath::Redirect,
                pcrf: other.map(|d| d.answer),
                dra: None,
            },
        }
    }
}

/// The termination that undoes an establishment at the DRA: a CCR-T for a CCR-I (Gx, Gxx,
/// S9), an STR for an AAR (Rx); only the base AVPs a DRA reads (Session-Id, the
/// application, origin and destination).
fn undo_for(req: &MessageBuilder) -> Option<MessageBuilder> {
    const CREDIT_CONTROL: u32 = 272;
    const AA: u32 = 265;
    const SESSION_TERMINATION: u32 = 275;
    let command = match req.command_code {
        CREDIT_CONTROL => CREDIT_CONTROL,
        AA => SESSION_TERMINATION,
        _ => return None,
    };
    let mut b = MessageBuilder::request(command, req.application_id, true);
    for key in [
        base::SESSION_ID.key(),
        base::AUTH_APPLICATION_ID.key(),
        base::ORIGIN_HOST.key(),
        base::ORIGIN_REALM.key(),
        base::DESTINATION_REALM.key(),
    ] {
        if let Some(a) = req.find(key) {
            b.push(a.clone());
        }
    }
    if command == CREDIT_CONTROL {
        // RFC 8506 §8.3: TERMINATION_REQUEST, the next request number.
        b.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::TERMINATION_REQUEST));
        let number = req
            .find(dcca::CC_REQUEST_NUMBER.key())
            .and_then(|a| a.as_u32())
            .unwrap_or(0);
        b.push(dcca::CC_REQUEST_NUMBER.with(number.wrapping_add(1)));
    } else {
        b.push(base::TERMINATION_CAUSE.with(base::TerminationCause::DIAMETER_SERVICE_NOT_PROVIDED));
    }
    Some(b)
}

fn is_2xxx(m: &Message) -> bool {
    m.get(base::RESULT_CODE)
        .and_then(Result::ok)
        .is_some_and(|c| (2000..3000).contains(&c))
        || has_success_experimental(m)
}

/// An Experimental-Result of class 2xxx (RFC 6733 §7.6).
fn has_success_experimental(m: &Message) -> bool {
    m.find(base::EXPERIMENTAL_RESULT.key()).is_some_and(|e| {
        e.children()
            .flatten()
            .find(|c| c.code == base::EXPERIMENTAL_RESULT_CODE.key().code)
            .and_then(|c| <[u8; 4]>::try_from(c.data).ok())
            .map(u32::from_be_bytes)
            .is_some_and(|c| (2000..3000).contains(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diameter_codec::LocalIdentity;

    fn answer(rc: u32) -> Result<Message, RequestError> {
        let req = MessageBuilder::request(272, 16_777_238, true)
            .with(base::SESSION_ID.with("c;1"))
            .build()
            .unwrap();
        let mut a = MessageBuilder::answer_to(&req, &LocalIdentity::new("pcrf", "home"));
        a.result_code(diameter_codec::ResultCode(rc));
        Ok(a.build().unwrap())
    }

    #[test]
    fn a_refused_establishment_is_undone_by_its_termination() {
        let mut ccr = MessageBuilder::request(272, 16_777_238, true);
        ccr.push(base::SESSION_ID.with("c;1"));
        ccr.push(base::AUTH_APPLICATION_ID.with(16_777_238u32));
        ccr.push(base::ORIGIN_HOST.with("pcef"));
        ccr.push(base::ORIGIN_REALM.with("epc"));
        ccr.push(base::DESTINATION_REALM.with("home"));
        ccr.push(dcca::CC_REQUEST_TYPE.with(dcca::CcRequestType::INITIAL_REQUEST));
        ccr.push(dcca::CC_REQUEST_NUMBER.with(0u32));
        ccr.push(base::USER_NAME.with("not copied"));
        let t = undo_for(&ccr).unwrap().build().unwrap();
        assert_eq!(t.header().command_code, 272);
        assert_eq!(t.session_id(), Some("c;1"));
        assert_eq!(
            t.get(dcca::CC_REQUEST_TYPE).and_then(Result::ok),
            Some(dcca::CcRequestType::TERMINATION_REQUEST)
        );
        assert_eq!(t.get(dcca::CC_REQUEST_NUMBER).and_then(Result::ok), Some(1));
        assert!(t.find(base::USER_NAME.key()).is_none());
        let mut aar = MessageBuilder::request(265, 16_777_236, true);
        aar.push(base::SESSION_ID.with("af;1"));
        let t = undo_for(&aar).unwrap().build().unwrap();
        assert_eq!(t.header().command_code, 275);
        assert_eq!(
            t.get(base::TERMINATION_CAUSE).and_then(Result::ok),
            Some(base::TerminationCause::DIAMETER_SERVICE_NOT_PROVIDED)
        );
        assert!(undo_for(&MessageBuilder::request(258, 16_777_238, true)).is_none());
    }

    #[test]
    fn behaviours_read_from_the_command_line_and_files() {
        assert_eq!("parallel".parse(), Ok(TerminationBehaviour::Parallel));
        assert_eq!("redirect".parse(), Ok(TerminationBehaviour::Redirect));
        assert!("both".parse::<TerminationBehaviour>().is_err());
        #[derive(serde::Deserialize)]
        struct T {
            b: TerminationBehaviour,
        }
        let t: T = serde_json::from_str(r#"{"b":"redirect"}"#).unwrap();
        assert_eq!(t.b, TerminationBehaviour::Redirect);
    }

    #[test]
    fn a_termination_succeeds_when_the_pcrf_ended_it_and_the_dra_took_note() {
        let ended = |pcrf: u32, dra: Option<u32>| Ended {
            path: TerminationPath::Parallel,
            pcrf: answer(pcrf),
            dra: dra.map(answer),
        };
        assert!(ended(2001, Some(2001)).is_success());
        // A redirect DRA marks before it redirects.
        assert!(ended(2001, Some(3006)).is_success());
        assert!(ended(2001, None).is_success());
        // The DRA had no binding, or the PCRF no session.
        assert!(!ended(2001, Some(5002)).is_success());
        assert!(!ended(5002, Some(2001)).is_success());
        let lost = Ended {
            path: TerminationPath::Proxied,
            pcrf: Err(RequestError::Timeout(Duration::from_secs(1))),
            dra: None,
        };
        assert_eq!(lost.pcrf_result(), None);
        assert!(!lost.is_success());
    }
}

//! The DRA's session-status probe (Session-Status, our experimental command 16777214,
//! `dictionaries/roaming_vendor.toml`): a DRA auditing a binding nothing has touched for a
//! while asks whether this PCRF still holds the session (issue 13 point 4, "no orphans").
//! The answer is read from the session store of the request's application and changes
//! nothing: 2001 when the session is held, 5002 DIAMETER_UNKNOWN_SESSION_ID when it is not
//! (RFC 6733 §7.1.5).

use super::*;

/// Command Code of Session-Status (RFC 6733 §11.2.1: from the experimental range).
pub const SESSION_STATUS: u32 = diameter_codec::dict::roaming::CMD_SESSION_STATUS;

/// Whether a request is the DRA's session-status probe.
pub(super) fn is_status_probe(req: &IncomingRequest) -> bool {
    req.msg.header().command_code == SESSION_STATUS
}

impl Shared {
    /// Answers a Session-Status request for a Gx, Gxx or Rx session.
    pub(super) async fn session_status(&self, req: IncomingRequest) -> MessageBuilder {
        let Some(sid) = req.msg.session_id().map(str::to_string) else {
            // RFC 6733 §8.8: the request carries a Session-Id (the grammar's <Session-Id>).
            let mut a = self.answer(&req, 5005);
            a.push(base::ERROR_MESSAGE.with("no Session-Id"));
            return a;
        };
        let app = req.msg.header().application_id;
        let held = if app == gx::APPLICATION_ID {
            self.sessions.get(sid.clone()).await.map(|s| s.is_some())
        } else if app == gxx::APPLICATION_ID {
            self.gxx_sessions
                .get(sid.clone())
                .await
                .map(|s| s.is_some())
        } else if app == rxw::APPLICATION_ID {
            self.rx_sessions.get(sid.clone()).await.map(|s| s.is_some())
        } else {
            return self.answer(&req, ResultCode::DIAMETER_APPLICATION_UNSUPPORTED.0);
        };
        match held {
            Ok(true) => self.answer(&req, 2001),
            Ok(false) => {
                tracing::info!(session = %sid, client = %req.peer, "session-status: not held here");
                self.answer(&req, 5002)
            }
            Err(e) => self.store_failed(&req, &e).0,
        }
    }
}

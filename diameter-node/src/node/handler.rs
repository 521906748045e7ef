//! The application side of the node: the request a handler gets and what it decides —
//! answer it, forward it (as a proxy, with edits), or redirect its sender.

use super::Node;
use crate::peer::PeerInfo;
use crate::routing::RedirectUsage;
use diameter_codec::{CommandFlags, Finding, Message, MessageBuilder, ResultCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A request handed to a handler.
pub struct IncomingRequest {
    /// The request.
    pub msg: Message,
    /// The peer it came from (its Origin-Host as configured).
    pub peer: String,
    /// The T bit: possibly a retransmission (RFC 6733 §3). Duplicates already answered are
    /// filtered by the node; handlers see the bit for their own bookkeeping.
    pub retransmitted: bool,
    /// The node, to send requests of its own (a PCRF's RAR on the PCEF's connection).
    pub node: Node,
    /// Where the node's routing table would send this request, when it matched a proxy
    /// route (`RouteAction::Proxy`): the handler may forward it there
    /// ([`IncomingRequest::forward_as_routed`]), elsewhere, or answer it.
    pub route: Option<String>,
    /// What validation accepted at the application's level without rejecting the request:
    /// grammar deviations inside Grouped AVPs, M bits against the dictionary. Each carries
    /// the answer the strict level gives (`report`), which a handler that cannot do without
    /// a missing value sends itself (5005 with its Failed-AVP). Empty when the request is
    /// clean or validation is off.
    pub deviations: Vec<Finding>,
}

impl IncomingRequest {
    /// This node's answer to the request with Result-Code `rc` (RFC 6733 §6.2: same
    /// command, application and identifiers, Session-Id, our Origin-Host and Origin-Realm),
    /// with what the answer's grammar requires from the request copied in (a CCA's
    /// Auth-Application-Id, CC-Request-Type and CC-Request-Number, RFC 4006 §3.2; see
    /// [`MessageBuilder::copy_required_from`]). A protocol error (3xxx) sets the E bit
    /// (RFC 6733 §7.1.3, §7.2). The handler adds the rest; the node copies Proxy-Info when it
    /// sends the answer.
    pub fn answer(&self, rc: ResultCode) -> MessageBuilder {
        let mut a = MessageBuilder::answer_to(&self.msg, self.node.identity());
        a.flags = a.flags.with(CommandFlags::ERROR, rc.is_protocol_error());
        a.result_code(rc);
        // A protocol error answer follows the §7.2 grammar, not the command's.
        if !rc.is_protocol_error() {
            a.copy_required_from(&self.msg, self.node.dictionary());
        }
        a
    }

    /// An editable copy of the request (a proxy may add, change or remove AVPs, RFC 6733
    /// §2.8.2); AVPs the node's dictionary does not know are kept byte for byte.
    pub fn edit(&self) -> MessageBuilder {
        MessageBuilder::from_message(&self.msg, self.node.dictionary())
    }

    /// Forwards the request unchanged to `peer` (see [`Forward`]).
    pub fn forward_to(&self, peer: impl Into<String>) -> Outcome {
        Outcome::Forward(Forward::to(peer))
    }

    /// Forwards the request where the proxy route that matched it points, failing over as
    /// the routing table says; answers 3002 when it matched none.
    pub fn forward_as_routed(&self) -> Outcome {
        let mut f = Forward::to_any(self.route.clone());
        f.by_router = true;
        Outcome::Forward(f)
    }

    /// Redirects the sender to `hosts` (3006, RFC 6733 §6.1.7).
    pub fn redirect(
        &self,
        hosts: impl IntoIterator<Item = impl Into<String>>,
        usage: RedirectUsage,
        max_cache_time: Duration,
    ) -> Outcome {
        Outcome::Redirect(Redirect {
            hosts: hosts.into_iter().map(Into::into).collect(),
            usage,
            max_cache_time,
        })
    }

    /// The capabilities the sending peer announced in its CER/CEA (Origin-Host and -Realm,
    /// applications, Origin-State-Id, …), while its connection is up.
    pub fn peer_info(&self) -> Option<Arc<PeerInfo>> {
        self.node.peer_info(&self.peer)
    }
}

/// What a handler decided.
pub enum Outcome {
    /// Answer the request.
    Answer(MessageBuilder),
    /// Send it on to another node and relay its answer back (a proxy).
    Forward(Forward),
    /// Tell the sender to send it elsewhere (3006 DIAMETER_REDIRECT_INDICATION).
    Redirect(Redirect),
}

impl From<MessageBuilder> for Outcome {
    fn from(b: MessageBuilder) -> Self {
        Self::Answer(b)
    }
}

impl From<Forward> for Outcome {
    fn from(f: Forward) -> Self {
        Self::Forward(f)
    }
}

impl From<Redirect> for Outcome {
    fn from(r: Redirect) -> Self {
        Self::Redirect(r)
    }
}

/// Edits an answer on its way back through a proxy.
pub type AnswerEdit = Box<dyn FnOnce(&mut MessageBuilder) + Send>;

/// Sees an answer on its way back through a proxy, unchanged.
pub type AnswerWatch = Box<dyn FnOnce(&Message) + Send>;

/// A request forwarded by a proxy (RFC 6733 §2.8.2, §6.1.8). The node appends Route-Record
/// (§6.7.1), gives it a Hop-by-Hop Identifier of its own and keeps its End-to-End
/// Identifier, T bit and Proxy-Info; the answer goes back to the sender on the original
/// Hop-by-Hop Identifier. When the chosen peer fails, the request moves to the next peer of
/// the list with the T bit (§5.5.4); when none is left, the sender gets 3002
/// DIAMETER_UNABLE_TO_DELIVER, and 3005 DIAMETER_LOOP_DETECTED when the peer is already in
/// the request's Route-Record.
pub struct Forward {
    /// Peers to try in order: the first one open gets the request, the rest are its
    /// alternates on failover. A peer the node is not connected to is reached through the
    /// `[node]` host map when it is there.
    pub peers: Vec<String>,
    /// The request to send instead of the one received (from [`IncomingRequest::edit`]);
    /// `None` forwards it as received, byte for byte.
    pub request: Option<MessageBuilder>,
    /// An edit of the answer before it is relayed back.
    pub answer_edit: Option<AnswerEdit>,
    /// A look at the answer before it is relayed back: the answer as received, before
    /// `answer_edit` when there is one.
    pub answer_watch: Option<AnswerWatch>,
    /// Failover follows the routing table instead of `peers`.
    pub(crate) by_router: bool,
}

impl Forward {
    /// To one peer.
    pub fn to(peer: impl Into<String>) -> Self {
        Self::to_any([peer.into()])
    }

    /// To the first open peer of `peers`, the rest as alternates.
    pub fn to_any(peers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            peers: peers.into_iter().map(Into::into).collect(),
            request: None,
            answer_edit: None,
            answer_watch: None,
            by_router: false,
        }
    }

    /// Sends this (edited) request instead of the one received.
    #[must_use]
    pub fn with_request(mut self, request: MessageBuilder) -> Self {
        self.request = Some(request);
        self
    }

    /// Edits the answer before it goes back.
    #[must_use]
    pub fn edit_answer(mut self, f: impl FnOnce(&mut MessageBuilder) + Send + 'static) -> Self {
        self.answer_edit = Some(Box::new(f));
        self
    }

    /// Looks at the answer before it goes back unchanged: cheaper than
    /// [`Forward::edit_answer`] (the answer is neither decoded into a tree nor encoded
    /// again) for a proxy that only needs to know what it says.
    #[must_use]
    pub fn watch_answer(mut self, f: impl FnOnce(&Message) + Send + 'static) -> Self {
        self.answer_watch = Some(Box::new(f));
        self
    }
}

/// A redirect (RFC 6733 §6.1.7): a 3006 answer with the E bit, one Redirect-Host per host
/// (§6.12), and, when the sender may cache it, Redirect-Host-Usage (§6.13) and
/// Redirect-Max-Cache-Time (§6.14).
#[derive(Debug, Clone)]
pub struct Redirect {
    /// Diameter identities (`aaa://` is added) or full DiameterURIs
    /// (`aaa://host:port;transport=tcp`).
    pub hosts: Vec<String>,
    /// What the sender may send to these hosts without asking again.
    pub usage: RedirectUsage,
    /// For how long.
    pub max_cache_time: Duration,
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Handles the requests of one application.
pub trait Handler: Send + Sync + 'static {
    /// Decides what to do with a request.
    fn handle(&self, req: IncomingRequest) -> HandlerFuture;

    /// A proxy's shortcut, asked first (after validation) for every request that is not
    /// marked a possible retransmission (T bit clear): the peer to forward the request to,
    /// unchanged, when the handler can tell at once from the request as received (`from`:
    /// the peer it came from), with optionally a look at its answer ([`AtOnce`]). The node
    /// then relays it as its routing table's forward
    /// does (RFC 6733 §6.1.8: Route-Record appended, a Hop-by-Hop Identifier of its own;
    /// the answer goes back unchanged, §6.1.9), without an [`IncomingRequest`], a handler
    /// future, a task or the duplicate cache: the server it reaches detects duplicates
    /// (§5.5.4), and a retransmission comes through [`Handler::handle`]. Nothing edits the
    /// request or its answer, and there is no failover to another peer. A peer not open,
    /// or one the request went through already, is handled as a [`Forward`] to it would
    /// be. `None` (the default): [`Handler::handle`] decides.
    fn forward_at_once(&self, from: &str, msg: &Message) -> Option<AtOnce> {
        let _ = (from, msg);
        None
    }
}

/// A request forwarded at once ([`Handler::forward_at_once`]): the peer it goes to and,
/// optionally, a look at its answer before it is relayed back unchanged (as
/// [`Forward::watch_answer`]).
pub struct AtOnce {
    /// The peer.
    pub peer: String,
    /// Sees the answer (or the error answer built here when none comes).
    pub watch: Option<AnswerWatch>,
}

impl AtOnce {
    /// To `peer`, its answer relayed back unseen.
    pub fn to(peer: impl Into<String>) -> Self {
        Self {
            peer: peer.into(),
            watch: None,
        }
    }

    /// Looks at the answer before it goes back unchanged.
    #[must_use]
    pub fn watch_answer(mut self, f: impl FnOnce(&Message) + Send + 'static) -> Self {
        self.watch = Some(Box::new(f));
        self
    }
}

struct FnHandler<F>(F);

impl<F, Fut, R> Handler for FnHandler<F>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<Outcome>,
{
    fn handle(&self, req: IncomingRequest) -> HandlerFuture {
        let fut = (self.0)(req);
        Box::pin(async move { fut.await.into() })
    }
}

/// A handler from an async closure that returns an answer ([`MessageBuilder`]) or an
/// [`Outcome`].
pub fn handler_fn<F, Fut, R>(f: F) -> Arc<dyn Handler>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<Outcome> + 'static,
{
    Arc::new(FnHandler(f))
}

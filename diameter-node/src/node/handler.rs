//! The application side of the node: the request a handler gets and what it returns.

use super::Node;
use diameter_codec::{Message, MessageBuilder, ResultCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
}

impl IncomingRequest {
    /// This node's answer to the request with Result-Code `rc` (RFC 6733 §6.2: same
    /// command, application and identifiers, Session-Id, our Origin-Host and Origin-Realm),
    /// with what the answer's grammar requires from the request copied in (a CCA's
    /// Auth-Application-Id, CC-Request-Type and CC-Request-Number, RFC 4006 §3.2; see
    /// [`MessageBuilder::copy_required_from`]). The handler adds the rest; the node copies
    /// Proxy-Info when it sends the answer.
    pub fn answer(&self, rc: ResultCode) -> MessageBuilder {
        let mut a = MessageBuilder::answer_to(&self.msg, self.node.identity());
        a.result_code(rc);
        a.copy_required_from(&self.msg, self.node.shared.dict);
        a
    }
}

/// The future a handler returns: the answer.
pub type HandlerFuture = Pin<Box<dyn Future<Output = MessageBuilder> + Send>>;

/// Handles the requests of one application.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request.
    fn handle(&self, req: IncomingRequest) -> HandlerFuture;
}

struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = MessageBuilder> + Send + 'static,
{
    fn handle(&self, req: IncomingRequest) -> HandlerFuture {
        Box::pin((self.0)(req))
    }
}

/// A handler from an async closure.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(IncomingRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = MessageBuilder> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

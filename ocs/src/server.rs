//! The home OCS: a Diameter node serving Gy (Credit-Control, application 4) over a
//! [`ChargingStore`], the Tcc sweep, and operator top-ups that re-authorise live sessions.

use crate::config::Config;
use crate::engine::{Policy, rc};
use crate::gy;
use crate::model::{Account, UnitKind};
use crate::store::redb::RedbStore;
use crate::store::{AccountChange, ChargingStore, SessionRef, StoreError};
use diameter_codec::ResultCode;
use diameter_codec::dict::base;
use diameter_node::node::{IncomingRequest, Node, NodeConfig, NodeEvent, handler_fn};
use diameter_node::peer::Application;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Wall-clock milliseconds now.
pub use diameter_service::now_ms;

/// The node configuration from the `[node]` table, with what an OCS needs whatever the
/// table says: Credit-Control (application 4) advertised; unless the table says otherwise,
/// CERs from any host accepted (PCEFs are many) and Product-Name `ocs`.
pub fn node_config(cfg: &Config) -> anyhow::Result<NodeConfig> {
    diameter_service::node_config(
        &cfg.node,
        cfg.source.as_deref(),
        diameter_service::ServerNode {
            product_name: "ocs",
            builtin: "(built-in demo configuration)",
            applications: &[Application::auth(gy::APPLICATION_ID)],
        },
    )
}

struct Shared {
    store: Arc<dyn ChargingStore>,
    node: Node,
}

/// A running home OCS.
pub struct Ocs {
    shared: Arc<Shared>,
    sweeper: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Ocs {
    /// Opens the store named by `[store]`, adds the configured accounts it lacks, starts the
    /// node and the Tcc sweep.
    pub async fn start(cfg: &Config) -> anyhow::Result<Self> {
        let policy = Arc::new(Policy::from_config(cfg));
        let store = RedbStore::open(&cfg.store.path, cfg.redb_options(), policy)?;
        Self::start_with_store(cfg, Arc::new(store)).await
    }

    /// As [`Ocs::start`] on a store of the caller's.
    pub async fn start_with_store(
        cfg: &Config,
        store: Arc<dyn ChargingStore>,
    ) -> anyhow::Result<Self> {
        for a in &cfg.accounts {
            if store.provision(a.to_account()).await? {
                tracing::info!(account = %a.id, "account created");
            }
        }
        let mut nc = node_config(cfg)?;
        nc.local.origin_state_id = store.origin_state_id();
        let node = Node::start(nc).await?;
        let shared = Arc::new(Shared { store, node });
        let h = shared.clone();
        shared.node.register(
            gy::APPLICATION_ID,
            handler_fn(move |req| {
                let h = h.clone();
                async move { h.credit_control(req).await }
            }),
        );
        let weak = Arc::downgrade(&shared);
        let every = Duration::try_from_secs_f64(cfg.ocs.sweep_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { return };
                match s.store.sweep(now_ms()).await {
                    Ok(r) if r.sessions_expired > 0 => {
                        tracing::info!(
                            sessions = r.sessions_expired,
                            reservations = r.reservations_released,
                            "Tcc expired: reservations released"
                        );
                        crate::metrics::record_tcc_expired(r.sessions_expired);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "Tcc sweep failed"),
                }
            }
        });
        let weak = Arc::downgrade(&shared);
        let mut events = shared.node.events();
        let watcher = tokio::spawn(async move {
            loop {
                let Some(e) = diameter_service::next_event(&mut events).await else {
                    return;
                };
                let NodeEvent::PeerRestarted { peer, at_ms, .. } = e else {
                    continue;
                };
                let Some(s) = weak.upgrade() else { return };
                // RFC 6733 §8.16: a new Origin-State-Id means the client lost its state;
                // the credit its sessions hold goes back to the accounts at once.
                match s.store.release_client(peer.clone(), at_ms).await {
                    Ok(r) => tracing::info!(
                        %peer,
                        sessions = r.sessions_expired,
                        reservations = r.reservations_released,
                        "client restarted: its sessions released"
                    ),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "releasing a restarted client's sessions")
                    }
                }
            }
        });
        Ok(Self {
            shared,
            sweeper,
            watcher,
        })
    }

    /// The Diameter node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The Diameter listening addresses.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        self.shared.node.listen_addrs()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ChargingStore> {
        &self.shared.store
    }

    /// An account by id or Subscription-Id.
    pub async fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        self.shared.store.account(key.to_string()).await
    }

    /// A live session: its reservations and what a visited OCS reported on it.
    pub async fn session(
        &self,
        session_id: &str,
    ) -> Result<Option<crate::model::Session>, StoreError> {
        self.shared.store.session(session_id.to_string()).await
    }

    /// Adds `amount` to a balance and sends a Re-Auth-Request (RFC 4006 §5.5) to the client
    /// of each live session of the account, so it asks for credit again at once. Returns
    /// the account and the sessions re-authorised.
    pub async fn topup(
        &self,
        key: &str,
        kind: UnitKind,
        amount: i64,
    ) -> Result<Option<(Account, Vec<SessionRef>)>, StoreError> {
        self.modify(
            key,
            AccountChange::Adjust {
                kind,
                delta: amount,
            },
        )
        .await
    }

    /// Changes an account (top-up, barring) and re-authorises its live sessions (RAR).
    pub async fn modify(
        &self,
        key: &str,
        change: AccountChange,
    ) -> Result<Option<(Account, Vec<SessionRef>)>, StoreError> {
        modify_and_reauthorise(&self.shared.store, &self.shared.node, key, change).await
    }

    /// A handle for the operator endpoint.
    pub fn admin(&self) -> crate::admin::AdminHandle {
        crate::admin::AdminHandle {
            store: self.shared.store.clone(),
            node: self.shared.node.clone(),
        }
    }

    /// Stops the sweep, disconnects the peers (DPR) and closes the store.
    pub async fn shutdown(self, timeout: Duration) {
        self.sweeper.abort();
        self.watcher.abort();
        self.shared.node.shutdown(timeout).await;
        if let Err(e) = self.shared.store.close().await {
            tracing::warn!(error = %e, "closing the store");
        }
    }
}

/// An account change and the re-authorisation of the account's live sessions, shared by
/// [`Ocs::modify`] and the operator endpoint. The RARs are sent in the background; an RAA
/// 5002 (the client no longer knows the session) releases the session at once.
pub(crate) async fn modify_and_reauthorise(
    store: &Arc<dyn ChargingStore>,
    node: &Node,
    key: &str,
    change: AccountChange,
) -> Result<Option<(Account, Vec<SessionRef>)>, StoreError> {
    let r = store.modify(key.to_string(), change).await?;
    if let Some((_, sessions)) = &r {
        for s in sessions.clone() {
            let node = node.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let rar = gy::rar(
                    &s.session_id,
                    node.identity(),
                    &s.origin_host,
                    &s.origin_realm,
                );
                let code = match node.request(rar).await {
                    Ok(a) => a.get(base::RESULT_CODE).and_then(Result::ok),
                    Err(e) => {
                        tracing::info!(session = %s.session_id, error = %e, "RAR not answered");
                        None
                    }
                };
                crate::metrics::record_rar(code);
                if code == Some(rc::UNKNOWN_SESSION_ID)
                    && let Err(e) = store.release_session(s.session_id.clone()).await
                {
                    tracing::warn!(session = %s.session_id, error = %e, "releasing a session its client forgot");
                }
            });
        }
    }
    Ok(r)
}

impl Shared {
    async fn credit_control(&self, req: IncomingRequest) -> diameter_codec::MessageBuilder {
        let started = std::time::Instant::now();
        let ccr = match gy::parse_ccr(&req.msg) {
            Ok(c) => c,
            Err(e) => {
                crate::metrics::record_ccr("invalid", e.result_code.0, false);
                let mut a = req.answer(e.result_code);
                a.push(base::ERROR_MESSAGE.with(e.message));
                return a;
            }
        };
        let kind = ccr.request_type.label();
        for r in &ccr.visited {
            // Document 001 S314 step 4: recorded on the session by the decision; logged here
            // because a CCR-T's report outlives no session.
            tracing::info!(session = %ccr.session_id, visited_ocs = %ccr.origin_host, report = ?r, "visited OCS report");
            crate::metrics::record_visited_report(match r {
                crate::model::VisitedReport::Decision { .. } => "decision",
                crate::model::VisitedReport::Absorbed { .. } => "absorbed-usage",
            });
        }
        match self.store.credit_control(ccr, now_ms()).await {
            Ok(applied) => {
                crate::metrics::record_ccr(kind, applied.answer.result_code, applied.duplicate);
                if applied.duplicate {
                    tracing::debug!(
                        session = req.msg.session_id().unwrap_or(""),
                        t_bit = req.retransmitted,
                        "retransmitted CCR answered from the stored answer"
                    );
                }
                let base_answer = req.answer(ResultCode(applied.answer.result_code));
                let cca = gy::encode_cca(base_answer, &applied.answer);
                crate::metrics::record_ccr_duration(kind, started.elapsed());
                cca
            }
            Err(e) => {
                // Nothing was applied: the client may send it again (with the T bit).
                tracing::error!(error = %e, "CCR not applied");
                crate::metrics::record_ccr(kind, rc::UNABLE_TO_COMPLY, false);
                let mut a = req.answer(ResultCode::DIAMETER_UNABLE_TO_COMPLY);
                a.push(base::ERROR_MESSAGE.with("charging store unavailable"));
                a
            }
        }
    }
}

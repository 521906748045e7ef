//! The operator endpoint: a small HTTP/1.1 API on its own address (`[ocs] admin`).
//!
//! - `GET /accounts/KEY` — the account (KEY: account id, IMSI, MSISDN or NAI) as JSON.
//! - `POST /accounts/KEY/topup?amount=N[&unit=total-octets]` — adds N to a balance (unit
//!   `money` by default when the account has a money balance, else `total-octets`) and
//!   sends a Re-Auth-Request to the client of every live session of the account.
//! - `POST /accounts/KEY/bar`, `POST /accounts/KEY/unbar` — service denied (4010) from the
//!   subscriber's next request on, or allowed again; the live sessions are re-authorised
//!   the same way.
//! - `GET /sessions/SESSION-ID` — a live session: its reservations, and what a visited OCS
//!   reported on it (Visited-Credit-Decision, Locally-Absorbed-Usage).
//!
//! The endpoint has no authentication: bind it to loopback or a management network.
//!
//! `ocs account show|topup --admin ADDR` is its client.

use crate::model::{Account, UnitKind};
use crate::store::{AccountChange, ChargingStore};
use bytes::Bytes;
use diameter_node::node::Node;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the endpoint serves.
#[derive(Clone)]
pub struct AdminHandle {
    pub(crate) store: Arc<dyn ChargingStore>,
    pub(crate) node: Node,
}

/// The account as the endpoint and the command line show it.
pub fn account_json(a: &Account) -> serde_json::Value {
    let balances: serde_json::Map<String, serde_json::Value> = a
        .balances
        .iter()
        .map(|(k, b)| {
            (
                k.as_str().to_string(),
                serde_json::json!({
                    "available": b.available,
                    "reserved": b.reserved,
                    "total": b.total(),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "id": a.id,
        "subscriptions": a.subscriptions.iter().map(|s| s.index_key()).collect::<Vec<_>>(),
        "barred": a.barred,
        "balances": balances,
    })
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The unit a top-up goes to when none is named.
pub fn default_unit(a: &Account) -> UnitKind {
    if a.balances.contains_key(&UnitKind::Money) {
        UnitKind::Money
    } else {
        a.balances
            .keys()
            .next()
            .copied()
            .unwrap_or(UnitKind::TotalOctets)
    }
}

impl AdminHandle {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let err = |s: StatusCode, m: &str| reply(s, serde_json::json!({ "error": m }));
        match (req.method(), parts.as_slice()) {
            (&Method::GET, ["accounts", key]) => match self.store.account(key.to_string()).await {
                Ok(Some(a)) => reply(StatusCode::OK, account_json(&a)),
                Ok(None) => err(StatusCode::NOT_FOUND, "no such account"),
                Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (&Method::GET, ["sessions", id]) => match self.store.session(id.to_string()).await {
                Ok(Some(s)) => match serde_json::to_value(&s) {
                    Ok(v) => reply(StatusCode::OK, v),
                    Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                },
                Ok(None) => err(StatusCode::NOT_FOUND, "no such session"),
                Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (&Method::POST, ["accounts", key, "topup"]) => {
                let Some(amount) =
                    query_param(&query, "amount").and_then(|v| v.parse::<i64>().ok())
                else {
                    return err(StatusCode::BAD_REQUEST, "amount=N (an integer) is required");
                };
                let unit = match query_param(&query, "unit") {
                    Some(u) => match UnitKind::parse(u) {
                        Some(k) => Some(k),
                        None => return err(StatusCode::BAD_REQUEST, "unknown unit"),
                    },
                    None => None,
                };
                let unit = match unit {
                    Some(u) => u,
                    None => match self.store.account(key.to_string()).await {
                        Ok(Some(a)) => default_unit(&a),
                        Ok(None) => return err(StatusCode::NOT_FOUND, "no such account"),
                        Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
                    },
                };
                self.modify(
                    key,
                    AccountChange::Adjust {
                        kind: unit,
                        delta: amount,
                    },
                )
                .await
            }
            (&Method::POST, ["accounts", key, "bar"]) => {
                self.modify(key, AccountChange::SetBarred(true)).await
            }
            (&Method::POST, ["accounts", key, "unbar"]) => {
                self.modify(key, AccountChange::SetBarred(false)).await
            }
            _ => err(
                StatusCode::NOT_FOUND,
                "GET /accounts/KEY, POST /accounts/KEY/topup?amount=N[&unit=U], POST /accounts/KEY/bar or /unbar",
            ),
        }
    }

    async fn modify(&self, key: &str, change: AccountChange) -> Response<Full<Bytes>> {
        match crate::server::modify_and_reauthorise(&self.store, &self.node, key, change).await {
            Ok(Some((a, sessions))) => {
                let mut j = account_json(&a);
                j["reauthorised_sessions"] = serde_json::json!(
                    sessions
                        .iter()
                        .map(|s| s.session_id.clone())
                        .collect::<Vec<_>>()
                );
                reply(StatusCode::OK, j)
            }
            Ok(None) => reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "no such account" }),
            ),
            Err(e) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": e.to_string() }),
            ),
        }
    }

    /// Serves on `addr` until the returned task is aborted; returns the bound address.
    pub async fn serve(
        self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "operator endpoint: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let me = me.clone();
                        async move { Ok::<_, std::convert::Infallible>(me.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok((local, task))
    }
}

/// A request to a running OCS's endpoint: returns the status and the JSON body.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path_and_query: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

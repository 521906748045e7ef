//! The operator endpoint: a small HTTP/1.1 API on its own address (`[pcrf] admin`).
//!
//! - `GET /sessions` — the live Session-Ids.
//! - `GET /sessions/ID` — one session (subscriber, UE address, APN, rules, triggers,
//!   failures reported) as JSON.
//! - `POST /sessions/ID/rar?install=R1,R2&remove=R3&rating_group=N` — pushes a policy
//!   change with a Gx RAR to the PCEF of the session and returns the RAA's result.
//! - `POST /sessions/ID/release[?cause=N]` — asks the PCEF to end the session (RAR with
//!   Session-Release-Cause, 0 UNSPECIFIED_REASON by default).
//! - `POST /subscribers/KEY/rar?…` — the same push to every live session of a subscriber
//!   (KEY: an IMSI, or `imsi:…`, `msisdn:…`, `nai:…`).
//! - `GET /rx-sessions` — the live AF (Rx) Session-Ids; `GET /rx-sessions/ID` — one AF
//!   session (its Gx session, media components, subscriptions, rules) as JSON.
//! - `GET /s9-sessions` — the live S9 Session-Ids of V-PCRFs (roaming UEs);
//!   `GET /s9-sessions/ID` — one S9 session with its subsessions as JSON.
//! - `POST /s9-sessions/ID/rar?[subsession=N&]install=…&remove=…&rating_group=N` — the same
//!   push by S9 RAR to the V-PCRF, for one subsession or all of them.
//!   `POST /subscribers/KEY/rar` reaches a roaming subscriber's S9 subsessions too.
//! - `POST /s9-sessions/ID/release[?subsession=N][&cause=N]` — asks the V-PCRF to end the
//!   S9 session, or one subsession (S9 RAR with Session-Release-Cause).
//!
//! - `GET /roaming-sessions` — visited role: the roaming Gx sessions served over S9 (their
//!   S9 session, subsession, home PLMN, V-OCS) and the AF sessions relayed home, as JSON.
//!
//! Session-Ids in the path are percent-decoded (`;` may be sent as it is). The endpoint has
//! no authentication: bind it to loopback or a management network.

use crate::server::{Pcrf, PolicyChange, PushError};
use diameter_service::admin::{Reply, percent_decode, query_param, reply};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

fn list(query: &str, name: &str) -> Vec<String> {
    query_param(query, name)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(percent_decode)
                .collect()
        })
        .unwrap_or_default()
}

fn change_of(query: &str) -> Result<PolicyChange, String> {
    let rating_group = match query_param(query, "rating_group") {
        Some(v) => Some(
            v.parse()
                .map_err(|_| format!("rating_group `{v}` is not a number"))?,
        ),
        None => None,
    };
    Ok(PolicyChange {
        install: list(query, "install"),
        remove: list(query, "remove"),
        rating_group,
    })
}

fn push_error(e: &PushError) -> Reply {
    let status = match e {
        PushError::UnknownSession(_) | PushError::UnknownRule(_) => StatusCode::NOT_FOUND,
        PushError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        PushError::Request(_) => StatusCode::BAD_GATEWAY,
    };
    reply(status, serde_json::json!({ "error": e.to_string() }))
}

async fn route(pcrf: &Pcrf, req: &Request<Incoming>) -> Reply {
    let query = req.uri().query().unwrap_or("");
    let parts: Vec<&str> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["sessions"]) => match pcrf.sessions().list().await {
            Ok(ids) => reply(StatusCode::OK, serde_json::json!({ "sessions": ids })),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            ),
        },
        (&Method::GET, ["sessions", id]) => match pcrf.session(&percent_decode(id)).await {
            Ok(Some(s)) => reply(StatusCode::OK, serde_json::to_value(&s).unwrap_or_default()),
            Ok(None) => reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "no such session" }),
            ),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            ),
        },
        (&Method::GET, ["roaming-sessions"]) => match pcrf.visited() {
            Some(v) => match (v.roaming_sessions().await, v.s9_sessions().await) {
                (Ok(roaming), Ok(s9)) => reply(
                    StatusCode::OK,
                    serde_json::json!({
                        "roaming_sessions": roaming,
                        "s9_sessions": s9,
                        "relayed_rx_sessions": v.relayed_rx(),
                    }),
                ),
                (Err(e), _) | (_, Err(e)) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({ "error": e.to_string() }),
                ),
            },
            None => reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "not a visited PCRF (pcrf.role = \"home\")" }),
            ),
        },
        (&Method::GET, ["rx-sessions"]) => match pcrf.rx_sessions().list().await {
            Ok(ids) => reply(StatusCode::OK, serde_json::json!({ "rx_sessions": ids })),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            ),
        },
        (&Method::GET, ["rx-sessions", id]) => match pcrf.rx_session(&percent_decode(id)).await {
            Ok(Some(s)) => reply(StatusCode::OK, serde_json::to_value(&s).unwrap_or_default()),
            Ok(None) => reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "no such AF session" }),
            ),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            ),
        },
        (&Method::GET, ["s9-sessions"]) => match pcrf.s9_sessions().list().await {
            Ok(ids) => reply(StatusCode::OK, serde_json::json!({ "s9_sessions": ids })),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            ),
        },
        (&Method::GET, ["s9-sessions", id]) => match pcrf.s9_session(&percent_decode(id)).await {
            Ok(Some(s)) => reply(StatusCode::OK, serde_json::to_value(&s).unwrap_or_default()),
            Ok(None) => reply(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "no such S9 session" }),
            ),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": e.to_string() }),
            ),
        },
        (&Method::POST, ["s9-sessions", id, "rar"]) => {
            let change = match change_of(query) {
                Ok(c) => c,
                Err(m) => return reply(StatusCode::BAD_REQUEST, serde_json::json!({ "error": m })),
            };
            let subsession = match query_param(query, "subsession").map(str::parse::<u32>) {
                None => None,
                Some(Ok(n)) => Some(n),
                Some(Err(_)) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({ "error": "subsession: not a number" }),
                    );
                }
            };
            match pcrf.push_s9(&percent_decode(id), subsession, &change).await {
                Ok(o) => reply(StatusCode::OK, serde_json::json!({ "pushed": o })),
                Err(e) => push_error(&e),
            }
        }
        (&Method::POST, ["s9-sessions", id, "release"]) => {
            let cause = query_param(query, "cause")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let subsession = query_param(query, "subsession").and_then(|n| n.parse().ok());
            match pcrf
                .release_s9(&percent_decode(id), subsession, cause)
                .await
            {
                Ok(rc) => reply(StatusCode::OK, serde_json::json!({ "result_code": rc })),
                Err(e) => push_error(&e),
            }
        }
        (&Method::POST, ["sessions", id, "rar"]) => {
            let change = match change_of(query) {
                Ok(c) => c,
                Err(m) => return reply(StatusCode::BAD_REQUEST, serde_json::json!({ "error": m })),
            };
            match pcrf.push(&percent_decode(id), &change).await {
                Ok(o) => reply(StatusCode::OK, serde_json::to_value(&o).unwrap_or_default()),
                Err(e) => push_error(&e),
            }
        }
        (&Method::POST, ["sessions", id, "release"]) => {
            let cause = query_param(query, "cause")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            match pcrf.release(&percent_decode(id), cause).await {
                Ok(rc) => reply(StatusCode::OK, serde_json::json!({ "result_code": rc })),
                Err(e) => push_error(&e),
            }
        }
        (&Method::POST, ["subscribers", key, "rar"]) => {
            let change = match change_of(query) {
                Ok(c) => c,
                Err(m) => return reply(StatusCode::BAD_REQUEST, serde_json::json!({ "error": m })),
            };
            match pcrf.push_subscriber(&percent_decode(key), &change).await {
                Ok(o) => reply(StatusCode::OK, serde_json::json!({ "pushed": o })),
                Err(e) => push_error(&e),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "unknown path (see pcrf --help)" }),
        ),
    }
}

/// Serves the endpoint on `addr` until the task is aborted; returns the bound address.
pub async fn serve(
    pcrf: Arc<Pcrf>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    diameter_service::admin::serve(addr, move |req: Request<Incoming>| {
        let pcrf = pcrf.clone();
        async move { route(&pcrf, &req).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_paths_decode() {
        assert_eq!(percent_decode("pcef%3B1%3b2"), "pcef;1;2");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(
            change_of("install=video,web&rating_group=20").unwrap(),
            PolicyChange {
                install: vec!["video".into(), "web".into()],
                remove: vec![],
                rating_group: Some(20),
            }
        );
        assert!(change_of("rating_group=x").is_err());
    }
}

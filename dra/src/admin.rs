//! The operator endpoint: a small HTTP/1.1 API on its own address (`[dra] admin`).
//!
//! - `GET /bindings` — every binding entry with its sessions, and the counts.
//! - `GET /bindings/ID` — one entry.
//! - `GET /sessions/SESSION-ID` — the entry a session is bound to.
//! - `GET /pcrfs` — the PCRFs: healthy or not, requests pending, measured latency.
//!
//! Path segments are percent-decoded. No authentication: bind it to loopback or a
//! management network.

use crate::server::Dra;
use diameter_service::admin::{Reply, reply};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// `%XX` sequences decoded (invalid ones kept as they are).
pub use diameter_service::admin::percent_decode;

fn failed(e: impl std::fmt::Display) -> Reply {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({ "error": e.to_string() }),
    )
}

async fn route(dra: &Dra, req: &Request<Incoming>) -> Reply {
    let parts: Vec<&str> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let store = dra.store();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["bindings"]) => match (store.list().await, store.stats().await) {
            (Ok(list), Ok(stats)) => reply(
                StatusCode::OK,
                json!({ "role": dra.config().dra.role, "stats": stats, "bindings": list }),
            ),
            (Err(e), _) | (_, Err(e)) => failed(e),
        },
        (&Method::GET, ["bindings", id]) => {
            let id = percent_decode(id);
            match store.list().await {
                Ok(list) => match list.into_iter().find(|b| b.id == id) {
                    Some(b) => reply(StatusCode::OK, json!(b)),
                    None => reply(StatusCode::NOT_FOUND, json!({ "error": "no such binding" })),
                },
                Err(e) => failed(e),
            }
        }
        (&Method::GET, ["sessions", sid]) => match store.by_session(percent_decode(sid)).await {
            Ok(Some(b)) => reply(StatusCode::OK, json!(b)),
            Ok(None) => reply(
                StatusCode::NOT_FOUND,
                json!({ "error": "session not bound" }),
            ),
            Err(e) => failed(e),
        },
        (&Method::GET, ["pcrfs"]) => {
            let list: Vec<serde_json::Value> = dra
                .pcrfs()
                .all()
                .iter()
                .map(|p| {
                    json!({
                        "host": p.host,
                        "redirect_uri": p.uri,
                        "weight": p.weight,
                        "healthy": dra.is_healthy(&p.host),
                        "pending": p.pending(),
                        "latency_us": p.latency_us(),
                    })
                })
                .collect();
            reply(StatusCode::OK, json!({ "pcrfs": list }))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": "unknown path (see dra --help)" }),
        ),
    }
}

/// Serves the endpoint on `addr` until the task is aborted; returns the bound address.
pub async fn serve(
    dra: Arc<Dra>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    diameter_service::admin::serve(addr, move |req: Request<Incoming>| {
        let dra = dra.clone();
        async move { route(&dra, &req).await }
    })
    .await
}

/// A GET to a running DRA's endpoint: the status and the JSON body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    diameter_service::admin::call(addr, Method::GET, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode() {
        assert_eq!(percent_decode("pcef%3B1%3b2"), "pcef;1;2");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
    }
}

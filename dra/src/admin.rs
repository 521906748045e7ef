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
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `%XX` sequences decoded (invalid ones kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn failed(e: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({ "error": e.to_string() }),
    )
}

async fn route(dra: &Dra, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "operator endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let dra = dra.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let dra = dra.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(&dra, &req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

/// A GET to a running DRA's endpoint: the status and the JSON body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
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

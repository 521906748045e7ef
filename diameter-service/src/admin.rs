//! The operator endpoints' HTTP/1.1 plumbing: a JSON response, path and query decoding,
//! the accept loop, and the client the command lines use. What each endpoint serves stays
//! with its server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;

/// A response of the endpoints.
pub type Reply = Response<Full<Bytes>>;

/// A JSON response (`application/json`, the body followed by a newline).
pub fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
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

/// The value of `name` in a query string (`a=1&b=2`), as it is (not decoded).
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Serves HTTP/1.1 on `addr` with `handle` until the returned task is aborted; returns the
/// bound address. A failed accept (out of descriptors and the like) is logged and retried
/// after 100 ms instead of spinning.
pub async fn serve<H, F>(
    addr: SocketAddr,
    handle: H,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "operator endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let resp = handle(req);
                    async move { Ok::<_, std::convert::Infallible>(resp.await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "operator endpoint connection");
                }
            });
        }
    });
    Ok((bound, task))
}

/// A request to a running server's endpoint: the status and the JSON body (`null` when
/// the body is not JSON).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_decode() {
        assert_eq!(percent_decode("pcef%3B1%3b2"), "pcef;1;2");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(query_param("amount=5&unit=money", "unit"), Some("money"));
        assert_eq!(query_param("amount=5", "unit"), None);
    }

    #[tokio::test]
    async fn serves_json_over_loopback() {
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), |req: Request<Incoming>| {
            let path = req.uri().path().to_string();
            async move { reply(StatusCode::NOT_FOUND, serde_json::json!({ "path": path })) }
        })
        .await
        .unwrap();
        let (status, body) = call(addr, Method::GET, "/a%2Fb").await.unwrap();
        assert_eq!(status, 404);
        assert_eq!(body, serde_json::json!({ "path": "/a%2Fb" }));
        task.abort();
    }
}

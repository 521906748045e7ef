//! What the server binaries (`ocs`, `pcrf`, `dra`) share around their protocol logic:
//!
//! - [`run_main`]: logging to stderr (`RUST_LOG`, `info` by default), the tokio runtime,
//!   and the exit status of a failure (`NAME: cause`, status 1);
//! - [`install_metrics`]: the Prometheus endpoint with the server's help texts;
//! - [`start_admin`] and [`until_stopped`]: the operator endpoint started and stopped
//!   around SIGINT/SIGTERM ([`shutdown_signal`]);
//! - [`node_config`]: the [`NodeConfig`] of the `[node]` table with what a server needs
//!   whatever the table says;
//! - [`NodeFlags`]: the `--capture`, `--metrics` and `--listen` options over `[node]`;
//! - [`next_event`]: the node's peer events, lagging logged and skipped;
//! - [`now_ms`]: wall-clock milliseconds;
//! - [`admin`]: the small HTTP/1.1 JSON server and client of the operator endpoints;
//! - [`dra_client`]: a DRA's client side (document 002): how the DRA handled each session,
//!   and terminations sent in parallel to DRA and PCRF or following the DRA's redirect.

pub mod admin;
pub mod dra_client;

use anyhow::Context as _;
use diameter_node::config::{ListenToml, NodeToml, TransportToml};
use diameter_node::metrics::MetricsHandle;
use diameter_node::node::{NodeConfig, NodeEvent};
use diameter_node::peer::{Application, UnknownPeerPolicy};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// Runs a server binary's `main`: logs to stderr (filter from `RUST_LOG`, `info` when unset
/// or invalid), reads the command line with `args` (which may exit, for `--help`), builds a
/// multi-threaded runtime and runs `run` on it. A failure (the runtime, or `run`'s error) is
/// printed as `NAME: cause` (with its chain) and exits with status 1.
pub fn run_main<A, F>(name: &str, args: impl FnOnce() -> A, run: impl FnOnce(A) -> F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    run_main_on(
        name,
        args,
        |_| tokio::runtime::Builder::new_multi_thread(),
        run,
    )
}

/// As [`run_main`], on the runtime `runtime` configures from the command line (I/O and
/// timers are enabled whatever it sets).
pub fn run_main_on<A, F>(
    name: &str,
    args: impl FnOnce() -> A,
    runtime: impl FnOnce(&A) -> tokio::runtime::Builder,
    run: impl FnOnce(A) -> F,
) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = args();
    let rt = match runtime(&args).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM (on SIGINT only where SIGTERM cannot be listened to).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// With an address: installs the Prometheus recorder of `diameter_node::metrics` (which
/// describes the node's series) serving `GET /metrics` there, then `describe` (the server's
/// help texts). Keep the handle: dropping it stops serving.
pub fn install_metrics(
    addr: Option<SocketAddr>,
    describe: fn(),
) -> anyhow::Result<Option<MetricsHandle>> {
    let Some(addr) = addr else { return Ok(None) };
    let h = diameter_node::metrics::install(addr).context("metrics endpoint")?;
    describe();
    Ok(Some(h))
}

/// With an address: starts the operator endpoint with `serve` (which binds and returns the
/// bound address and the serving task) and logs where it listens. A failure names the
/// address.
pub async fn start_admin<F>(
    addr: Option<SocketAddr>,
    serve: impl FnOnce(SocketAddr) -> F,
) -> anyhow::Result<Option<JoinHandle<()>>>
where
    F: Future<Output = std::io::Result<(SocketAddr, JoinHandle<()>)>>,
{
    let Some(addr) = addr else { return Ok(None) };
    let (bound, task) = serve(addr)
        .await
        .with_context(|| format!("operator endpoint on {addr}"))?;
    tracing::info!(%bound, "operator endpoint");
    Ok(Some(task))
}

/// Waits for SIGINT or SIGTERM, then stops the operator endpoint; the caller then shuts
/// its server down.
pub async fn until_stopped(admin: Option<JoinHandle<()>>) {
    shutdown_signal().await;
    tracing::info!("stopping");
    if let Some(t) = admin {
        t.abort();
    }
}

/// The command-line options every server has over its `[node]` table (flatten them into
/// the server's `Cli`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeFlags {
    /// Write every Diameter message sent and received to this pcapng file.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Listen on this address instead of the configured ones.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

impl NodeFlags {
    /// The options given, over the table: `--listen` replaces the listen list with one TCP
    /// address.
    pub fn apply(&self, node: &mut NodeToml) {
        if let Some(l) = self.listen {
            node.listen = tcp_listen(l);
        }
        if let Some(c) = &self.capture {
            node.capture = Some(c.clone());
        }
        if let Some(m) = self.metrics {
            node.metrics = Some(m);
        }
    }
}

/// A `[node]` listen list of one TCP address (`127.0.0.1:0` in tests: a free loopback
/// port).
pub fn tcp_listen(addr: SocketAddr) -> Vec<ListenToml> {
    vec![ListenToml {
        addr,
        transport: TransportToml::Tcp,
        tls: None,
    }]
}

/// The next of the node's events, `None` once the node is gone. Events missed because the
/// receiver lagged are logged (`peer events missed`) and skipped.
pub async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
) -> Option<NodeEvent> {
    loop {
        match events.recv().await {
            Ok(e) => return Some(e),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "peer events missed");
            }
            Err(_) => return None,
        }
    }
}

/// What a server puts in its node configuration whatever the `[node]` table says.
#[derive(Debug, Clone, Copy)]
pub struct ServerNode<'a> {
    /// Product-Name when the table has none.
    pub product_name: &'a str,
    /// The name errors give the configuration when it was not read from a file.
    pub builtin: &'a str,
    /// Applications advertised when the table does not list one with the same id; the
    /// vendors of vendor-specific ones are added to Supported-Vendor-Id.
    pub applications: &'a [Application],
}

/// The node configuration of the `[node]` table (read from `source`, `None` for the
/// built-in configuration), with `server`'s applications advertised and, unless the table
/// says otherwise, CERs from any host accepted (clients are many) and its Product-Name.
pub fn node_config(
    node: &NodeToml,
    source: Option<&Path>,
    server: ServerNode<'_>,
) -> anyhow::Result<NodeConfig> {
    let file = source.map_or_else(|| PathBuf::from(server.builtin), Path::to_path_buf);
    let mut nc = node.to_node_config(&file)?;
    for app in server.applications {
        if !nc.local.applications.iter().any(|a| a.id == app.id) {
            nc.local.applications.push(*app);
        }
    }
    for vendor in server.applications.iter().filter_map(|a| a.vendor) {
        if !nc.local.supported_vendor_ids.contains(&vendor) {
            nc.local.supported_vendor_ids.push(vendor);
        }
    }
    if node.unknown_peer.is_none() {
        nc.local.unknown_peer = UnknownPeerPolicy::Accept;
    }
    if node.product_name.is_none() {
        nc.local.product_name = server.product_name.into();
    }
    Ok(nc)
}

/// Wall-clock milliseconds since the Unix epoch (0 before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

//! `dra`: the Diameter Routing Agent (TS 29.213 §7) for Gx, Gxx, Rx and S9.
//!
//! ```text
//! dra                           # redirect-mode home DRA on 127.0.0.1:3868
//! dra --config proxy.toml       # from a file (dra/examples/*.toml show every key)
//! dra bindings                  # the bindings of the running DRA
//! ```

use anyhow::Context;
use clap::{Parser, Subcommand};
use dra::config::{Config, StoreKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What the exit status means.
const EXIT_STATUS: &str = "Exit status: 0 after a clean stop (SIGINT, SIGTERM) or a listing shown; 1 when it cannot start (the message names the cause: a configuration FILE:LINE:COLUMN and key, a port in use) or the operator endpoint cannot be reached; 2 for a binding or session that does not exist.";

/// Diameter Routing Agent for Gx, Gxx, Rx and S9 (TS 29.213): binds every session of an
/// IP-CAN session (or UE) to one PCRF, and redirects (3006) or proxies its requests there.
///
/// With no options it runs the home DRA of the README: redirect mode on 127.0.0.1:3868,
/// Origin-Host dra.home.test, realm home.test, one PCRF pcrf.home.test at 127.0.0.1:3869
/// (start `pcrf` beside it), bindings kept in ./dra-bindings.redb, operator endpoint on
/// 127.0.0.1:3873. A Gx CCR-I gets 3006 with Redirect-Host
/// aaa://pcrf.home.test:3869;transport=tcp.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = EXIT_STATUS,
    after_long_help = concat!(
        "Operator endpoint (also `dra bindings`):\n",
        "  curl 127.0.0.1:3873/bindings\n",
        "  curl 127.0.0.1:3873/sessions/SESSION-ID\n",
        "  curl 127.0.0.1:3873/pcrfs\n",
        "\n",
        "Terminations (document 002): in redirect mode a CCR-T or STR reaching the DRA marks its session\n",
        "and is answered 2001 ([dra] termination = \"ack\") or redirected (\"redirect\"); clients send it\n",
        "to DRA and PCRF in parallel or follow the redirect, as they recorded at establishment\n",
        "(pcef-sim gx|bberf|af --dra-termination parallel|redirect).\n",
        "\n",
        "Exit status: 0 after a clean stop (SIGINT, SIGTERM) or a listing shown; 1 when it cannot start (the message names the cause: a configuration FILE:LINE:COLUMN and key, a port in use) or the operator endpoint cannot be reached; 2 for a binding or session that does not exist."
    )
)]
struct Cli {
    /// Configuration file (TOML; see dra/examples/home.toml). Unknown keys are errors.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    node: diameter_service::NodeFlags,
    /// Operator endpoint address, instead of [dra] admin (also where `dra bindings` asks).
    #[arg(long, global = true)]
    admin: Option<SocketAddr>,
    /// Binding store file, instead of [store] file.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The mode where no [[mode]] rule matches, instead of [dra] mode.
    #[arg(long, value_parser = ["redirect", "proxy"])]
    mode: Option<String>,
    /// Runtime threads: 0 (the default) one worker per CPU; 1 runs the node on one thread,
    /// no task ever waking another (cheaper on a small machine shared with the clients and
    /// PCRFs, see BENCHMARKS.md).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Busy polling: after each message, keep polling the sockets for this many µs instead
    /// of sleeping, so a request arriving in that gap costs no wake-up (for a DRA on cores
    /// of its own; it spends that CPU when idle between messages). Needs --threads 1. 0: off.
    #[arg(long, default_value_t = 0)]
    busy_poll_us: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the bindings of the running DRA (or one session's), as JSON.
    Bindings {
        /// Only the binding of this Session-Id.
        #[arg(long)]
        session: Option<String>,
    },
}

/// The busy poller of `--busy-poll-us`, hooked into the runtime as it is built and started
/// inside it.
static BUSY_POLL: std::sync::OnceLock<diameter_node::busy_poll::BusyPoll> =
    std::sync::OnceLock::new();

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.busy_poll_us > 0 && cli.threads != 1 {
        eprintln!("dra: --busy-poll-us needs --threads 1");
        return ExitCode::FAILURE;
    }
    diameter_service::run_main_on(
        "dra",
        || cli,
        |cli| {
            let mut builder = match cli.threads {
                1 => tokio::runtime::Builder::new_current_thread(),
                _ => tokio::runtime::Builder::new_multi_thread(),
            };
            if cli.threads > 1 {
                builder.worker_threads(cli.threads);
            }
            if cli.busy_poll_us > 0 {
                let busy = BUSY_POLL.get_or_init(|| {
                    diameter_node::busy_poll::BusyPoll::new(Duration::from_micros(cli.busy_poll_us))
                });
                busy.install(&mut builder);
            }
            builder
        },
        run,
    )
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(busy) = BUSY_POLL.get() {
        busy.spawn();
    }
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::demo(),
    };
    if let Some(a) = cli.admin {
        cfg.dra.admin = Some(a);
    }
    if let Some(Command::Bindings { session }) = &cli.command {
        let addr = cfg
            .dra
            .admin
            .ok_or_else(|| anyhow::anyhow!("no operator endpoint: give --admin ADDR"))?;
        let path = match session {
            Some(s) => format!("/sessions/{}", s.replace('%', "%25").replace('/', "%2F")),
            None => "/bindings".to_string(),
        };
        let (status, body) = dra::admin::get(addr, &path)
            .await
            .with_context(|| format!("operator endpoint {addr}"))?;
        // A closed pipe (`dra bindings | head`) is not an error worth a panic.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&body)?
        );
        return Ok(match status {
            200 => ExitCode::SUCCESS,
            404 => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        });
    }
    cli.node.apply(&mut cfg.node);
    match cli.mode.as_deref() {
        Some("proxy") => cfg.dra.mode = dra::binding::Mode::Proxy,
        Some("redirect") => cfg.dra.mode = dra::binding::Mode::Redirect,
        _ => {}
    }
    if let Some(d) = &cli.data {
        cfg.store.kind = StoreKind::Redb;
        cfg.store.file = d.clone();
    }
    let _metrics = diameter_service::install_metrics(cfg.node.metrics, dra::metrics::describe)?;
    let server = Arc::new(dra::Dra::start(&cfg).await?);
    let admin = diameter_service::start_admin(cfg.dra.admin, |addr| {
        dra::admin::serve(server.clone(), addr)
    })
    .await?;
    tracing::info!(
        origin_host = %cfg.node.origin_host,
        listen = ?server.listen_addrs(),
        mode = cfg.dra.mode.as_str(),
        "dra running"
    );
    diameter_service::until_stopped(admin).await;
    server.shutdown(Duration::from_secs(2)).await;
    Ok(ExitCode::SUCCESS)
}

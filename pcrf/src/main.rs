//! `pcrf`: the policy and charging rules server (home and visited roles, Gx, Gxx, Rx and
//! S9).
//!
//! ```text
//! pcrf                          # home PCRF on 127.0.0.1:3869 with the demo subscribers
//! pcrf --config home.toml       # from a file (pcrf/examples/home.toml shows every key)
//! pcrf --config visited.toml    # a V-PCRF for the demo home (pcrf/examples/visited.toml)
//! ```

use clap::Parser;
use pcrf::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What the exit status means (short help).
const EXIT_STATUS: &str = "Exit status: 0 after a clean stop (SIGINT, SIGTERM), 1 when it cannot start (the message names the cause: a configuration FILE:LINE:COLUMN and key, a port in use).";

/// Policy and charging rules server for Gx and Gxx (TS 29.212), Rx (TS 29.214) and S9
/// (TS 29.215), home role.
///
/// V-PCRFs of the roaming partners in [[pcrf.roaming_partner]] open S9 sessions for
/// roaming subscribers: each Gx/Gxx subsession gets PCC rules, QoS, event triggers and the
/// home OCS; S9 from any other realm or peer is refused with 5003.
///
/// With pcrf.role = "visited" ([pcrf.visited], see pcrf/examples/visited.toml) it is a
/// V-PCRF: roaming subscribers' Gx is served over S9 by their home PCRF, whose rules pass
/// the local policy table before they reach the PCEF; own subscribers are served locally.
///
/// AFs (P-CSCFs) send AARs on Rx: their media become PCC rules installed on the PCEF of the
/// UE's IP-CAN session with Gx RAR, removed on STR; the AF hears of rule failures and of the
/// end of the IP-CAN session (RAR or ASR).
///
/// Local breakout ([pcrf.lbo], document 000): an AAR with our LBO-Indicator and the OTT's
/// dynamic key is authenticated, its rules are signed for the visited network and sent to
/// the V-PCRF by S9 RAR, and the AAA carries the answer (refusals: 4001, or vendor 32473
/// codes 5801-5809); presets per package go in the S9 CCA.
///
/// With no options it runs the home PCRF of the README: 127.0.0.1:3869, Origin-Host
/// pcrf.home.test, realm home.test, the demo subscribers of pcrf/examples/spr.toml (IMSI
/// 001010000000001 and others), Charging-Information naming the OCS ocs.home.test, and the
/// operator endpoint on 127.0.0.1:3872, which pushes policy changes to live sessions with
/// Gx RAR (examples below).
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = EXIT_STATUS,
    after_long_help = concat!(
        "Operator endpoint:\n",
        "  curl 127.0.0.1:3872/sessions\n",
        "  curl 127.0.0.1:3872/sessions/SESSION-ID\n",
        "  curl -X POST '127.0.0.1:3872/sessions/SESSION-ID/rar?install=video&remove=local-dns'\n",
        "  curl -X POST '127.0.0.1:3872/subscribers/001010000000001/rar?rating_group=20'\n",
        "  curl -X POST '127.0.0.1:3872/sessions/SESSION-ID/release?cause=1'\n",
        "  curl 127.0.0.1:3872/rx-sessions\n",
        "  curl 127.0.0.1:3872/s9-sessions\n",
        "  curl -X POST '127.0.0.1:3872/s9-sessions/S9-SESSION-ID/rar?subsession=1&install=video'\n",
        "  curl -X POST '127.0.0.1:3872/s9-sessions/S9-SESSION-ID/release?subsession=1'\n",
        "  curl 127.0.0.1:3892/roaming-sessions     (visited role, examples/visited.toml)\n",
        "\n",
        "Exit status: 0 after a clean stop (SIGINT, SIGTERM), 1 when it cannot start (the message names the cause: a configuration FILE:LINE:COLUMN and key, a port in use)."
    )
)]
struct Cli {
    /// Configuration file (TOML; see pcrf/examples/home.toml). Unknown keys are errors.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    node: diameter_service::NodeFlags,
    /// Operator endpoint address, instead of [pcrf] admin.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Run without the operator endpoint.
    #[arg(long, conflicts_with = "admin")]
    no_admin: bool,
}

fn main() -> ExitCode {
    diameter_service::run_main("pcrf", Cli::parse, run)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::demo(),
    };
    cli.node.apply(&mut cfg.node);
    if let Some(a) = cli.admin {
        cfg.pcrf.admin = Some(a);
    }
    if cli.no_admin {
        cfg.pcrf.admin = None;
    }
    let _metrics = diameter_service::install_metrics(cfg.node.metrics, pcrf::metrics::describe)?;
    let server = Arc::new(pcrf::Pcrf::start(&cfg).await?);
    let admin = diameter_service::start_admin(cfg.pcrf.admin, |addr| {
        pcrf::admin::serve(server.clone(), addr)
    })
    .await?;
    tracing::info!(
        origin_host = %cfg.node.origin_host,
        listen = ?server.listen_addrs(),
        subscribers = cfg.spr_data.subscribers.len(),
        "pcrf running"
    );
    diameter_service::until_stopped(admin).await;
    server.shutdown(Duration::from_secs(2)).await;
    Ok(ExitCode::SUCCESS)
}

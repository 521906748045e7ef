//! `ocs`: the online charging server, home or visited role.
//!
//! ```text
//! ocs                               # home OCS on 127.0.0.1:3870 with the demo subscribers
//! ocs --config home.toml            # from a file (ocs/examples/home.toml shows every key)
//! ocs --config visited.toml         # visited OCS in front of home OCSs (ocs/examples/visited.toml)
//! ocs account show 001010000000001  # ask the running OCS (its admin endpoint)
//! ocs account topup 001010000000001 5000000 --unit total-octets
//! ocs account show 001010000000001 --data ocs-data.redb   # read the data file (OCS stopped)
//! ```

use anyhow::Context;
use clap::{Parser, Subcommand};
use hyper::Method;
use ocs::admin::{account_json, call, default_unit};
use ocs::config::Config;
use ocs::engine::Policy;
use ocs::model::UnitKind;
use ocs::store::redb::{RedbOptions, RedbStore};
use ocs::store::{AccountChange, ChargingStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

// The store's writer thread allocates and frees redb's page buffers by the thousand each
// second beside the tokio workers' messages; glibc's malloc was 15 % of its time (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Online charging server for Gy (RFC 4006 / RFC 8506, TS 32.299), home or visited role.
///
/// With no options it runs the home OCS of the README: 127.0.0.1:3870, Origin-Host
/// ocs.home.test, realm home.test, data in ./ocs-data.redb, demo subscribers (IMSI
/// 001010000000001 and others), operator endpoint on 127.0.0.1:3871. With a file whose
/// [ocs] role is "visited" (ocs/examples/visited.toml) it runs a visited OCS: a Gy agent
/// between the visited PCEF and the home OCSs that applies the visited policy.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Exit status: 0 after a clean stop (SIGINT, SIGTERM), 1 when it cannot start (the message names the cause: a configuration FILE:LINE:COLUMN, a port in use, a data file another process holds)."
)]
struct Cli {
    /// Configuration file (TOML; see ocs/examples/home.toml and visited.toml). Unknown keys
    /// are errors.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data file, instead of [store] path.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(flatten)]
    node: diameter_service::NodeFlags,
    /// Operator endpoint address, instead of [ocs] admin.
    #[arg(long, global = true)]
    admin: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show, top up or bar an account, through the running OCS's operator endpoint, or —
    /// with --data — directly in the data file of a stopped OCS.
    ///
    /// Exit status: 0 done, 2 no such account, 1 any other failure.
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
}

#[derive(Subcommand)]
enum AccountAction {
    /// Print the account (id, IMSI, MSISDN or NAI) as JSON.
    Show {
        /// Account id, IMSI, MSISDN or NAI.
        key: String,
    },
    /// Add AMOUNT to a balance; the running OCS re-authorises the account's live sessions
    /// (RAR).
    Topup {
        /// Account id, IMSI, MSISDN or NAI.
        key: String,
        /// Units to add (negative to take away).
        #[arg(allow_negative_numbers = true)]
        amount: i64,
        /// The balance: time, total-octets, input-octets, output-octets, service-specific
        /// or money (default: money when the account has it, else its first balance).
        #[arg(long)]
        unit: Option<String>,
    },
    /// Deny service (4010 DIAMETER_END_USER_SERVICE_DENIED from the next request on); the
    /// running OCS re-authorises the account's live sessions (RAR).
    Bar {
        /// Account id, IMSI, MSISDN or NAI.
        key: String,
    },
    /// Allow service again.
    Unbar {
        /// Account id, IMSI, MSISDN or NAI.
        key: String,
    },
}

fn main() -> ExitCode {
    diameter_service::run_main("ocs", Cli::parse, run)
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::demo(),
    };
    if let Some(d) = &cli.data {
        cfg.store.path = d.clone();
    }
    if let Some(a) = cli.admin {
        cfg.ocs.admin = Some(a);
    }
    Ok(cfg)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut cfg = load(&cli)?;
    if let Some(Command::Account { action }) = &cli.command {
        return account(&cli, &cfg, action).await;
    }
    cli.node.apply(&mut cfg.node);
    let _metrics = match cfg.node.metrics {
        Some(addr) => Some(ocs::metrics::install(addr).context("metrics endpoint")?),
        None => None,
    };
    if cfg.ocs.role == ocs::config::Role::Visited {
        // Document 001: a back-to-back Gy agent in front of the home OCSs; it holds no
        // accounts (no operator endpoint), its sessions live in the [store] data file.
        let server = ocs::VisitedOcs::start(&cfg).await?;
        tracing::info!(
            origin_host = %cfg.node.origin_host,
            listen = ?server.listen_addrs(),
            data = %cfg.store.path.display(),
            "ocs running (visited role)"
        );
        diameter_service::until_stopped(None).await;
        server.shutdown(Duration::from_secs(2)).await;
        return Ok(ExitCode::SUCCESS);
    }
    let server = ocs::Ocs::start(&cfg).await?;
    let admin =
        diameter_service::start_admin(cfg.ocs.admin, |addr| server.admin().serve(addr)).await?;
    tracing::info!(
        origin_host = %cfg.node.origin_host,
        listen = ?server.listen_addrs(),
        data = %cfg.store.path.display(),
        "ocs running"
    );
    diameter_service::until_stopped(admin).await;
    server.shutdown(Duration::from_secs(2)).await;
    Ok(ExitCode::SUCCESS)
}

async fn account(cli: &Cli, cfg: &Config, action: &AccountAction) -> anyhow::Result<ExitCode> {
    let unit = match action {
        AccountAction::Topup { unit: Some(u), .. } => {
            Some(UnitKind::parse(u).ok_or_else(|| anyhow::anyhow!("unknown unit `{u}`"))?)
        }
        _ => None,
    };
    // The data file directly when --data is given; the running OCS otherwise.
    if cli.data.is_some() {
        let store = RedbStore::open(
            &cfg.store.path,
            RedbOptions::default(),
            Arc::new(Policy::from_config(cfg)),
        )?;
        // As the server would at start: the configured accounts the file lacks.
        for a in &cfg.accounts {
            store.provision(a.to_account()).await?;
        }
        let out = match action {
            AccountAction::Show { key } => store.account(key.clone()).await?,
            AccountAction::Topup { key, amount, .. } => {
                let unit = match unit {
                    Some(u) => u,
                    None => match store.account(key.clone()).await? {
                        Some(a) => default_unit(&a),
                        None => UnitKind::TotalOctets,
                    },
                };
                store
                    .modify(
                        key.clone(),
                        AccountChange::Adjust {
                            kind: unit,
                            delta: *amount,
                        },
                    )
                    .await?
                    .map(|(a, _)| a)
            }
            AccountAction::Bar { key } => store
                .modify(key.clone(), AccountChange::SetBarred(true))
                .await?
                .map(|(a, _)| a),
            AccountAction::Unbar { key } => store
                .modify(key.clone(), AccountChange::SetBarred(false))
                .await?
                .map(|(a, _)| a),
        };
        return Ok(match out {
            Some(a) => {
                println!("{}", serde_json::to_string_pretty(&account_json(&a))?);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("ocs: no such account");
                ExitCode::from(2)
            }
        });
    }
    let addr = cfg
        .ocs
        .admin
        .ok_or_else(|| anyhow::anyhow!("no operator endpoint: give --admin ADDR or --data FILE"))?;
    let (status, body) = match action {
        AccountAction::Show { key } => call(addr, Method::GET, &format!("/accounts/{key}")).await,
        AccountAction::Topup { key, amount, .. } => {
            let mut q = format!("/accounts/{key}/topup?amount={amount}");
            if let Some(u) = unit {
                q.push_str(&format!("&unit={}", u.as_str()));
            }
            call(addr, Method::POST, &q).await
        }
        AccountAction::Bar { key } => {
            call(addr, Method::POST, &format!("/accounts/{key}/bar")).await
        }
        AccountAction::Unbar { key } => {
            call(addr, Method::POST, &format!("/accounts/{key}/unbar")).await
        }
    }
    .with_context(|| format!("operator endpoint {addr}"))?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(match status {
        200 => ExitCode::SUCCESS,
        404 => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    })
}

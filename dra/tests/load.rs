//! `pcef-sim load --app gx` through the DRA (the set-up of the DRA benchmarks): through a
//! proxy DRA every request reaches the real PCRF and is answered 2001; a redirect DRA's
//! 3006 answers are counted as the sessions' answers (the sessions go on at the DRA, whose
//! CCR-T handling releases each binding), or followed to the PCRF. Either way nothing is
//! left bound at the DRA nor held by the PCRF after the run.

mod common;

use common::{T, dra, dra_config, pcrf};
use diameter_node::config::RedirectUsageToml;
use dra::binding::Mode;
use dra::config::Termination;
use pcef_sim::load::{LoadOptions, Redirects, Report, Scenario};
use std::time::Duration;

const SESSIONS: u64 = 24;
const UPDATES: u32 = 2;
/// Requests of the run: CCR-I, the CCR-Us and CCR-T per session.
const REQUESTS: u64 = SESSIONS * (UPDATES as u64 + 2);

/// Runs `SESSIONS` Gx sessions through a DRA in `mode` in front of the demo PCRF, the
/// client handling redirects by `redirects`; returns the report once the DRA and the PCRF
/// hold nothing.
async fn load(mode: Mode, termination: Termination, redirects: Option<Redirects>) -> Report {
    let p = pcrf("pcrf.home.test").await;
    let mut cfg = dra_config(mode, &[&p]);
    cfg.dra.termination = termination;
    // Every request to the DRA, none straight to the PCRF from a cached redirect.
    cfg.dra.redirect_usage = Some(RedirectUsageToml::DontCache);
    let d = dra(&cfg).await;
    let mut o = LoadOptions::gy(d.listen_addrs()[0], "dra.home.test", "home.test");
    o.scenario = Scenario::Gx;
    o.in_flight = 4;
    o.updates = UPDATES;
    o.max_sessions = Some(SESSIONS);
    o.duration = Duration::from_secs(60);
    o.timeout = T;
    o.redirects = redirects;
    o.peers = vec![("pcrf.home.test".into(), p.listen_addrs()[0])];
    let r = pcef_sim::load::run(&o).await.unwrap();
    assert_eq!(
        (r.sessions, r.all.requests, r.all.answers, r.all.errors),
        (SESSIONS, REQUESTS, REQUESTS, 0),
        "{}",
        r.text()
    );
    common::wait_bindings(&d, 0).await;
    assert_eq!(
        p.sessions().count().await.unwrap(),
        0,
        "Gx left at the PCRF"
    );
    r
}

#[tokio::test]
async fn through_a_proxy_dra_every_request_reaches_the_pcrf() {
    let r = load(Mode::Proxy, Termination::Ack, None).await;
    assert_eq!(r.count(2001), REQUESTS, "{}", r.text());
    assert_eq!(r.redirects, 0);
}

#[tokio::test]
async fn a_redirect_dras_answers_are_counted() {
    // Every request is answered 3006 by the DRA, the CCR-T too (it releases the binding).
    let r = load(
        Mode::Redirect,
        Termination::Redirect,
        Some(Redirects::Count),
    )
    .await;
    assert_eq!(r.count(3006), REQUESTS, "{}", r.text());
    assert_eq!(r.redirects, REQUESTS);
    assert!(r.redirects_per_s > 0.0);
    assert!(r.text().contains("redirects"), "{}", r.text());
    // Acknowledged terminations: CCR-T answered 2001 by the DRA itself.
    let r = load(Mode::Redirect, Termination::Ack, Some(Redirects::Count)).await;
    assert_eq!(r.count(3006), SESSIONS * (UPDATES as u64 + 1));
    assert_eq!(r.count(2001), SESSIONS, "{}", r.text());
    assert_eq!(r.redirects, SESSIONS * (UPDATES as u64 + 1));
}

#[tokio::test]
async fn a_redirect_dras_answers_are_followed_to_the_pcrf() {
    let r = load(
        Mode::Redirect,
        Termination::Redirect,
        Some(Redirects::Follow),
    )
    .await;
    assert_eq!(r.count(2001), REQUESTS, "{}", r.text());
    assert_eq!(r.redirects, REQUESTS);
}

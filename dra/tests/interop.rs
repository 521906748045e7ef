//! A Gx client nobody here wrote (python-diameter, tests/interop/python_client.py) against
//! the DRA in front of the real home PCRF: proxied to the PCRF by a proxy-mode DRA (the
//! whole `gx-pcrf` scenario, the CCAs' content as that library decodes it), and redirected
//! by a redirect-mode DRA, following the Redirect-Host URI to the PCRF (`gx-redirect`).
//! After each, the DRA's binding table is empty. Skipped without python-diameter unless
//! DIAMETER_REQUIRE_PYTHON=1 (tests/interop/harness.rs).

mod common;
#[allow(unused_qualifications)]
#[path = "../../tests/interop/harness.rs"]
mod harness;

use common::*;
use dra::binding::Mode;

async fn run(mode: Mode, scenario: &'static str) -> String {
    let Some(script) = harness::python_diameter_client() else {
        return String::new();
    };
    let p = pcrf("pcrf.home.test").await;
    let d = dra(&dra_config(mode, &[&p])).await;
    let port = d.listen_addrs()[0].port();
    let text =
        tokio::task::spawn_blocking(move || harness::run_python_scenario(&script, port, scenario))
            .await
            .unwrap();
    wait_bindings(&d, 0).await;
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_diameter_gx_session_through_the_proxy_dra() {
    let text = run(Mode::Proxy, "gx-pcrf").await;
    if !text.is_empty() {
        // The PCRF's own answers came through: rules, charging, and its 5030 and 5002.
        for what in [
            "rule named internet",
            "internet-3g installed",
            "5002",
            "10415/5030",
        ] {
            assert!(text.contains(what), "{what}:\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_diameter_follows_the_redirect_dra() {
    let text = run(Mode::Redirect, "gx-redirect").await;
    if !text.is_empty() {
        for what in [
            "3006",
            "Redirect-Host names the PCRF",
            "CCA-I",
            "CCA-T from the DRA itself",
        ] {
            assert!(text.contains(what), "{what}:\n{text}");
        }
    }
}

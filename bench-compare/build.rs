//! Compiles `csrc/fd_harness.c` against Debian's libfreediameter-dev when its headers are
//! present, and sets `cfg(have_freediameter)`; without them the crate still builds and the
//! freeDiameter comparison reports SKIP.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_freediameter)");
    println!("cargo::rerun-if-changed=csrc/fd_harness.c");
    println!("cargo::rerun-if-env-changed=FREEDIAMETER_INCLUDE_DIR");
    println!("cargo::rerun-if-env-changed=FREEDIAMETER_EXT_DIR");

    let include = std::env::var_os("FREEDIAMETER_INCLUDE_DIR")
        .map_or_else(|| PathBuf::from("/usr/include"), PathBuf::from);
    let header = include.join("freeDiameter/libfdcore.h");
    println!("cargo::rerun-if-changed={}", header.display());
    if !header.exists() {
        println!(
            "cargo::warning=freeDiameter headers not found ({}): the freeDiameter comparison will SKIP",
            header.display()
        );
        return;
    }
    let ext_dir = std::env::var("FREEDIAMETER_EXT_DIR")
        .unwrap_or_else(|_| "/usr/lib/freeDiameter".to_string());
    if !Path::new(&ext_dir).join("dict_dcca_3gpp.fdx").exists() {
        println!(
            "cargo::warning=dict_dcca_3gpp.fdx not found in {ext_dir} (Debian package freediameter-extensions)"
        );
    }
    cc::Build::new()
        .file("csrc/fd_harness.c")
        .include(&include)
        .define("FD_BENCH_EXT_DIR", Some(format!("\"{ext_dir}\"").as_str()))
        .opt_level(2)
        .warnings(true)
        .compile("fd_harness");
    println!("cargo::rustc-link-lib=dylib=fdcore");
    println!("cargo::rustc-link-lib=dylib=fdproto");
    println!("cargo::rustc-cfg=have_freediameter");
}

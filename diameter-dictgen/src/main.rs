//! `cargo run -p diameter-dictgen [OUT_DIR]`: regenerates diameter-codec/src/generated/.

use diameter_codec::Dictionary;
use std::path::PathBuf;

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../diameter-codec/src/generated")
        });
    let dict = Dictionary::embedded();
    std::fs::create_dir_all(&out).expect("create output directory");
    for (name, text) in diameter_dictgen::generate(dict) {
        let path = out.join(&name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        println!("wrote {}", path.display());
    }
}

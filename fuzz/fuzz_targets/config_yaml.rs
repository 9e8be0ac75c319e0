//! Config is operator input, but it is still input: `parse_yaml` then `build` must answer with
//! errors, never a panic (STYLE.md principle 2).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// Relative file references resolve against this directory; it is created empty once and
/// never written, so a run does not depend on what happens to sit in the working directory.
fn base_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("portcullis-fuzz-config-empty");
        // If this fails, relative references simply do not resolve, which is also fine.
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = portcullis_config::parse_yaml(yaml) {
        let _ = portcullis_config::build(&file, base_dir());
    }
});

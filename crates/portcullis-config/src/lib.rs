//! Configuration: the YAML file ([`FileConfig`]) becomes a typed, validated [`Config`] once, at
//! load. Every problem is reported with its key path and a fix; secrets come only by reference.
//!
//! ```
//! let yaml = r#"
//! listeners: [{ name: public, bind: "127.0.0.1:8080" }]
//! upstreams: { crm: { targets: ["http://127.0.0.1:3000"] } }
//! routes: [{ name: all, prefix: /, upstream: crm }]
//! "#;
//! let config = portcullis_config::from_yaml(yaml, std::path::Path::new(".")).unwrap();
//! assert_eq!(config.routes[0].upstream.targets[0].authority.as_ref(), "127.0.0.1:3000");
//!
//! let errors = portcullis_config::from_yaml("listeners: []\nupstreams: {}\nroutes: []", std::path::Path::new("."))
//!     .unwrap_err();
//! assert!(errors.iter().any(|e| e.path == "listeners"));
//! ```

mod browser;
mod contract;
mod error;
mod exposure;
mod file;
mod identity;
mod inspect;
mod pattern;
mod secret;
mod traffic;
mod typed;

use std::path::Path;

pub use browser::*;
pub use contract::*;
pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use exposure::*;
pub use file::*;
pub use identity::*;
pub use inspect::*;
pub use pattern::{HostMatch, PathPattern, PatternError};
pub use secret::{Secret, SecretError, resolve_secret};
pub use traffic::*;
pub use typed::*;

/// Parses YAML into the file-level types; errors carry the key path and the YAML location.
pub fn parse_yaml(yaml: &str) -> Result<FileConfig, ConfigErrors> {
    let mut key_path = String::new();
    let result = serde_saphyr::with_deserializer_from_str(yaml, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            key_path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let path = if key_path == "." { String::new() } else { key_path };
        ConfigErrors(vec![ConfigError {
            path,
            message: e.to_string(),
            fix: "correct the key or value; `portcullis config-schema` prints every allowed key".into(),
        }])
    })
}

/// Builds the typed config from the file-level types. Relative paths resolve against `base_dir`.
pub fn build(file: &FileConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    typed::Builder { base_dir, c: Default::default(), files: Vec::new(), contracts: Default::default() }.build(file)
}

/// Parses and builds a config from YAML text.
pub fn from_yaml(yaml: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    build(&parse_yaml(yaml)?, base_dir)
}

/// Loads a config file and everything it references.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let yaml = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
            fix: "pass the path of a readable YAML file with --config".into(),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut config = from_yaml(&yaml, base)?;
    config.files.insert(0, path.to_path_buf());
    Ok(config)
}

/// The JSON Schema of the configuration file, generated from the types.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(FileConfig)).unwrap_or_default()
}

#[cfg(test)]
mod tests;

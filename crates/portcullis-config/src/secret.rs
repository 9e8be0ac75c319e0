//! Secrets come only by reference: `${env:NAME}` or `${file:/path}`, never inline in the file.

use std::fmt;
use std::path::Path;

/// A secret value. Its `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's value. Call it only where the value is used, never to log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret reference could not be resolved. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not of the form `${env:NAME}` or `${file:/path}`.
    #[error("secrets must be references such as ${{env:NAME}} or ${{file:/path}}, never inline values")]
    NotAReference,
    /// The environment variable is not set or empty.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The file cannot be read or is empty.
    #[error("cannot read secret file {0}")]
    UnreadableFile(String),
}

/// Resolves a secret reference. Relative file paths are relative to `base_dir`. A trailing
/// newline in a secret file is dropped.
pub fn resolve_secret(reference: &str, base_dir: &Path) -> Result<Secret, SecretError> {
    let inner =
        reference.trim().strip_prefix("${").and_then(|s| s.strip_suffix('}')).ok_or(SecretError::NotAReference)?;
    if let Some(name) = inner.strip_prefix("env:") {
        return match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Secret(v)),
            _ => Err(SecretError::MissingEnv(name.to_owned())),
        };
    }
    if let Some(path) = inner.strip_prefix("file:") {
        let full = base_dir.join(path);
        return match std::fs::read_to_string(&full) {
            Ok(v) => {
                let v = v.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&v);
                if v.is_empty() {
                    Err(SecretError::UnreadableFile(full.display().to_string()))
                } else {
                    Ok(Secret(v.to_owned()))
                }
            }
            Err(_) => Err(SecretError::UnreadableFile(full.display().to_string())),
        };
    }
    Err(SecretError::NotAReference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_file_references_and_hides_them() {
        let dir = std::env::temp_dir().join(format!("pc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s"), "hunter2\n").unwrap();
        let s = resolve_secret("${file:s}", &dir).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
    }

    #[test]
    fn resolves_env_references() {
        // PATH is always set in test environments.
        assert!(resolve_secret("${env:PATH}", Path::new("/")).is_ok());
        assert_eq!(
            resolve_secret("${env:PORTCULLIS_SURELY_UNSET_VAR}", Path::new("/")),
            Err(SecretError::MissingEnv("PORTCULLIS_SURELY_UNSET_VAR".into()))
        );
    }

    #[test]
    fn rejects_inline_secrets() {
        for inline in ["hunter2", "${hunter2}", "${vault:x}", "$env:X"] {
            assert_eq!(resolve_secret(inline, Path::new("/")), Err(SecretError::NotAReference), "{inline}");
        }
        assert!(matches!(
            resolve_secret("${file:/nonexistent/x}", Path::new("/")),
            Err(SecretError::UnreadableFile(_))
        ));
    }
}

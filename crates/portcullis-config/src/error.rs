use std::fmt;

/// One problem in a configuration: where it is, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key path, e.g. `routes[2].upstream`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", if self.path.is_empty() { "<root>" } else { &self.path }, self.message, self.fix)
    }
}

/// Every problem found in a configuration; loading collects them all before failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// The errors.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

/// A configuration that loads but does something risky (`danger_` settings and the like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key path.
    pub path: String,
    /// What is risky.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects errors and warnings while a config is being built.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl Collector {
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError { path: path.into(), message: message.into(), fix: fix.into() });
    }

    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning { path: path.into(), message: message.into() });
    }
}

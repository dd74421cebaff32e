//! Configuration errors that say where they are and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Line and column (1-based), where known.
    pub location: Option<(usize, usize)>,
    /// Where in the document, e.g. `sources[0].sinks`, where known.
    pub path: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigError {
    /// A problem with the file as a whole.
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), location: None, path: None, message: message.into() }
    }

    /// A problem at a place in the document.
    pub fn at(file: &Path, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: Some(path.into()), ..Self::new(file, message) }
    }

    /// A YAML syntax or shape error, with serde_yaml's line and column.
    pub fn from_yaml(file: &Path, error: &serde_yaml::Error) -> Self {
        let location = error.location().map(|l| (l.line(), l.column()));
        // serde_yaml appends " at line L column C" itself; keep the message plain.
        let mut message = error.to_string();
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        // serde_yaml prefixes the place (`agent: unknown field ...`).
        let message = match message.split_once(": unknown field ") {
            Some((place, rest)) => {
                format!("{place}: {}", crate::suggest::unknown_field(&format!("unknown field {rest}")))
            }
            None => crate::suggest::unknown_field(&message),
        };
        Self { location, ..Self::new(file, message) }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one file, reported together.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A batch of one.
    pub fn one(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(f, "{count} problem{} in the configuration:", if count == 1 { "" } else { "s" })?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

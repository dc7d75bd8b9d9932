//! Where a value in study/ came from (file, line, column), and TOML errors
//! as one line that names it: what every reader in `study` reports with.

use std::{
    fmt,
    path::{Path, PathBuf},
};

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A TOML error as one line: `file:line:column: message`.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim_end().replace('\n', "; ");
    match e.span() {
        Some(span) => anyhow::anyhow!("{}: {message}", origin(path, text, span.start)),
        None => anyhow::anyhow!("{}: {message}", path.display()),
    }
}

pub fn origin(path: &Path, text: &str, offset: usize) -> Origin {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Origin {
        file: path.to_path_buf(),
        line,
        column,
    }
}

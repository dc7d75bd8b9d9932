//! Host tools: which command needs what, and the Debian package that
//! provides it (`study/host-tools.toml`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::util::exec::which;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub check: String,
    pub package: String,
    #[serde(rename = "for")]
    pub needed_by: Vec<String>,
    /// Only some uses need it (clang, distcc): `setup` reports, not requires.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolFile {
    tool: Vec<Tool>,
}

impl Tool {
    pub fn present(&self) -> bool {
        if self.check.starts_with('/') {
            Path::new(&self.check).exists()
        } else {
            which(&self.check).is_some()
        }
    }
}

pub fn load(study_dir: &Path) -> Result<Vec<Tool>> {
    let path = study_dir.join("host-tools.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file: ToolFile =
        toml::from_str(&text).map_err(|e| crate::spec::origin::toml_error(&path, &text, &e))?;
    Ok(file.tool)
}

/// Fails with the apt command that installs what `command` is missing.
pub fn require(study_dir: &Path, command: &str) -> Result<()> {
    let missing: Vec<Tool> = load(study_dir)?
        .into_iter()
        .filter(|t| t.needed_by.iter().any(|c| c == command))
        .filter(|t| !t.present())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    bail!("{}", missing_message(command, &missing))
}

pub fn missing_message(command: &str, missing: &[Tool]) -> String {
    let names: Vec<String> = missing
        .iter()
        .map(|t| format!("{} ({})", t.name, t.check))
        .collect();
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package.as_str()).collect();
    packages.dedup();
    format!(
        "`{command}` needs {}: run `apt-get install {}` (or `cargo xtask setup --install`)",
        names.join(", "),
        packages.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_package() {
        let study = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("study");
        let tools = load(&study).unwrap();
        let libelf: Vec<Tool> = tools
            .into_iter()
            .filter(|t| t.package == "libelf-dev")
            .collect();
        assert_eq!(
            missing_message("build", &libelf),
            "`build` needs libelf headers (/usr/include/libelf.h): run `apt-get install libelf-dev` \
             (or `cargo xtask setup --install`)"
        );
    }
}

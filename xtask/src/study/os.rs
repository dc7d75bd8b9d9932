//! Which kernel a tree holds ([`Os`]), and what a FreeBSD tree needs that a
//! Linux one does not, read from `study/os/freebsd.toml` ([`FreeBsd`]): the
//! build driver and its arguments, the architecture names make.py takes,
//! the generated kernel configuration's lines and the rules fragment's
//! fixed lines. Each key's reason is a comment in that file.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::study::origin::toml_error;

/// The kernel a tree holds: one answer, asked of the tree once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Os {
    #[default]
    Linux,
    FreeBsd,
}

impl Os {
    /// Its name in study/ (`[os.freebsd]`, `study/os/freebsd.toml`) and in
    /// build directory names.
    pub fn name(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::FreeBsd => "freebsd",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FreeBsd {
    pub min_version: String,
    pub build: Build,
    pub arch: BTreeMap<String, OsArch>,
    pub kernel_config: KernelConfig,
    pub rules: RulesData,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Build {
    pub driver: String,
    pub cross_bindir: String,
    pub cc: String,
    pub args: Vec<String>,
    /// make.py's environment beyond MAKEOBJDIRPREFIX.
    pub env: BTreeMap<String, String>,
    pub toolchain_target: String,
    pub toolchain_args: Vec<String>,
    pub kernel_target: String,
    pub kernel_args: Vec<String>,
    pub kernconf: String,
    pub images: Vec<String>,
}

/// make.py's names for one of our architectures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OsArch {
    pub target: String,
    pub target_arch: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelConfig {
    pub include: String,
    pub lines: Vec<String>,
    pub guest: Vec<String>,
    pub profiles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RulesData {
    pub head: Vec<String>,
}

impl FreeBsd {
    pub const FILE: &'static str = "os/freebsd.toml";

    pub fn load(study_dir: &Path) -> Result<FreeBsd> {
        let path = study_dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read FreeBSD's data: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))
    }

    /// make.py's TARGET and TARGET_ARCH for `arch`, or the refusal.
    pub fn arch(&self, arch: &str) -> Result<&OsArch> {
        match self.arch.get(arch) {
            Some(a) => Ok(a),
            None => bail!(
                "FreeBSD builds for {} only (study/{}'s [arch] tables); --arch {arch} has none",
                self.arch.keys().cloned().collect::<Vec<_>>().join(", "),
                Self::FILE
            ),
        }
    }

    /// The kernel configuration's lines for `profile`, after the include:
    /// every study kernel's, the guest's, then the profile's own.
    pub fn config_lines(&self, profile: &str) -> Vec<String> {
        let c = &self.kernel_config;
        c.lines
            .iter()
            .chain(&c.guest)
            .chain(c.profiles.get(profile).into_iter().flatten())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_reads() {
        let f = FreeBsd::load(&crate::study::shipped()).unwrap();
        assert_eq!(f.arch("x86_64").unwrap().target, "amd64");
        let e = f.arch("arm64").unwrap_err().to_string();
        assert!(e.contains("x86_64 only"), "{e}");
        assert!(f
            .config_lines("study")
            .contains(&"makeoptions DEBUG=-g".to_string()));
    }
}

//! How packetdrill scripts run in the guest (study/packetdrill.toml): the
//! kernel suite's place in the tree, the tolerance, and the kernel runner's
//! arguments for each IP version.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::{study::origin::toml_error, util::fsutil};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Packetdrill {
    pub suite: String,
    pub suite_config: String,
    pub tolerance_usecs: u64,
    pub ip: BTreeMap<String, IpVersion>,
    /// Failures that are packetdrill's and not the kernel's: a binary of
    /// another era than the kernel. Still failures; each is named.
    #[serde(default)]
    pub skew: Vec<Skew>,
}

/// packetdrill's own words for a mismatch with the kernel, and the fix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skew {
    /// A substring of packetdrill's failure line.
    pub says: String,
    /// Why, and what to do, in one line.
    pub why: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpVersion {
    pub args: Vec<String>,
}

impl Packetdrill {
    /// `study_dir/packetdrill.toml`.
    pub fn load(study_dir: &Path) -> Result<Packetdrill> {
        let path = &study_dir.join("packetdrill.toml");
        let text = fsutil::read_to_string(path)?;
        let spec: Packetdrill = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        for version in ["4", "6"] {
            if !spec.ip.contains_key(version) {
                bail!("{}: no [ip.{version}] arguments", path.display());
            }
        }
        Ok(spec)
    }

    /// The runner's arguments for IP version `version` ("4" or "6").
    pub fn args(&self, version: &str) -> &[String] {
        &self.ip[version].args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_has_both_versions() {
        let spec = Packetdrill::load(&crate::study::shipped()).unwrap();
        assert!(spec.args("4").contains(&"--ip_version=ipv4".to_string()));
        assert!(spec.args("6").contains(&"--ip_version=ipv6".to_string()));
        assert_eq!(spec.suite, "tools/testing/selftests/net/packetdrill");
        assert!(spec
            .skew
            .iter()
            .any(|s| s.says.contains("sizeof(struct _tcp_info)")));
    }
}

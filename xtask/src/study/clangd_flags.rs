//! The flags clangd must not read (study/clangd.toml): patterns over the
//! flags of Kbuild's gcc command lines that clang does not take.

use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use crate::{
    study::{callgraph_rules::glob, origin::toml_error},
    util::fsutil,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClangdFlags {
    /// A flag, or a prefix and `*`.
    remove: Vec<String>,
}

impl ClangdFlags {
    pub fn load(study_dir: &Path) -> Result<ClangdFlags> {
        let path = study_dir.join("clangd.toml");
        let text = fsutil::read_to_string(&path)?;
        toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))
    }

    /// Whether clangd is better without `flag`.
    pub fn removes(&self, flag: &str) -> bool {
        self.remove.iter().any(|p| glob(p, flag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_removes_the_gcc_only_flags_and_keeps_the_rest() {
        let flags = ClangdFlags::load(&crate::study::shipped()).unwrap();
        for gcc_only in [
            "-mpreferred-stack-boundary=3",
            "-fno-allow-store-data-races",
            "-fconserve-stack",
            "-mrecord-mcount",
            "-ftrivial-auto-var-init=zero",
            "-fplugin=./scripts/gcc-plugins/stackleak_plugin.so",
        ] {
            assert!(flags.removes(gcc_only), "{gcc_only} kept");
        }
        for both in [
            "-O0",
            "-mfentry",
            "-fno-PIE",
            "-Wimplicit-fallthrough=5",
            "-ftrivial-auto-var-init=pattern",
        ] {
            assert!(!flags.removes(both), "{both} removed");
        }
    }
}

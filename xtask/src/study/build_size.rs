//! How big a first build is (study/build-size.toml): the objects it
//! compiles before the link and how long the link takes, per profile,
//! kernel series and architecture, so that a first build's progress has
//! its total from its first line. What a finished build learned
//! (target/learned) comes first; this is for a machine that has built
//! nothing yet.

use std::{collections::BTreeMap, path::Path};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{study::origin::toml_error, util::fsutil};

/// One build's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildSize {
    /// Objects compiled before the link (`CC`/`AS` lines before
    /// `LD vmlinux.o`).
    pub objects: u64,
    /// From `LD vmlinux.o` to make's end.
    pub link_seconds: u64,
}

/// profile → kernel series (`6.12`) → architecture → size.
type Sizes = BTreeMap<String, BTreeMap<String, BTreeMap<String, BuildSize>>>;

/// The known size of `profile`'s first build on Linux `version` (its
/// series) for `arch`.
pub fn known(
    study_dir: &Path,
    profile: &str,
    version: &str,
    arch: &str,
) -> Result<Option<BuildSize>> {
    let path = study_dir.join("build-size.toml");
    let text = fsutil::read_to_string(&path)?;
    let sizes: Sizes = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
    Ok(sizes
        .get(profile)
        .and_then(|series| series.get(&series_of(version)))
        .and_then(|arches| arches.get(arch))
        .copied())
}

/// `6.12.118` → `6.12`.
pub fn series_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_sizes_read_by_series() {
        let study = crate::study::shipped();
        let tiny = known(&study, "tiny", "6.12.118", "x86_64").unwrap();
        assert!(tiny.is_some_and(|s| s.objects > 0));
        assert_eq!(known(&study, "tiny", "5.10.1", "x86_64").unwrap(), None);
        assert_eq!(series_of("6.12.118"), "6.12");
        assert_eq!(series_of("6.12"), "6.12");
    }
}

//! What a build directory learned: the fallbacks recorded in it
//! (`.study/fallbacks.toml`), and what every build directory of the same
//! profile, tree, architecture and compiler learned (`target/learned/`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    ctx::{Prepared, StateDir},
    util::exec::Exec,
};

/// A fallback recorded in a build directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// object → the rule's level when it failed → where it went. Keyed by the
/// rule's level so an entry applies only while that rule holds, and applies
/// again, at no cost, if the rule comes back.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedFallbacks {
    #[serde(default)]
    pub object: BTreeMap<String, BTreeMap<String, Recorded>>,
}

impl RecordedFallbacks {
    pub fn path(build_dir: &Path) -> PathBuf {
        StateDir::of(build_dir).fallbacks()
    }

    pub fn load(build_dir: &Path) -> Result<RecordedFallbacks> {
        RecordedFallbacks::load_file(&RecordedFallbacks::path(build_dir))
    }

    /// The records in `path`; none when it does not exist.
    pub fn load_file(path: &Path) -> Result<RecordedFallbacks> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{:#}; delete the file to start over",
                    crate::study::origin::toml_error(path, &text, &e)
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RecordedFallbacks::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Adds `other`'s entries, keeping ours where both have one.
    pub fn merge(&mut self, other: &RecordedFallbacks) {
        for (object, by_rule) in &other.object {
            let ours = self.object.entry(object.clone()).or_default();
            for (rule, entry) in by_rule {
                ours.entry(rule.clone()).or_insert_with(|| entry.clone());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.object.values().map(BTreeMap::len).sum()
    }

    pub fn save(&self, exec: &Exec, build_dir: &Path) -> Result<()> {
        exec.write(&RecordedFallbacks::path(build_dir), self.to_toml())?;
        Ok(())
    }

    pub fn get(&self, object: &str, rule: &str) -> Option<&Recorded> {
        self.object.get(object)?.get(rule)
    }

    pub fn insert(&mut self, object: &str, rule: &str, entry: Recorded) {
        self.object
            .entry(object.to_string())
            .or_default()
            .insert(rule.to_string(), entry);
    }

    pub fn to_toml(&self) -> String {
        let header =
            "# Objects that did not build at their level; `cargo xtask build` starts from here.\n\
                      # Delete an entry (or the file) to try the requested level again.\n\n";
        header.to_string() + &toml::to_string_pretty(self).expect("plain data serializes")
    }
}

/// What every build directory of the same profile, tree version,
/// architecture and compiler version learned, shared so that the next one
/// starts from it instead of finding every fallback again.
pub struct Learned {
    pub path: PathBuf,
}

impl Learned {
    pub fn new(root: &Path, p: &Prepared) -> Learned {
        let name = format!(
            "linux-{}-{}-{}-{}.toml",
            p.tree.version,
            p.arch.name,
            p.compiler.family,
            p.compiler_version.as_deref().unwrap_or("unknown")
        );
        Learned {
            path: root.join("target/learned").join(&p.profile.name).join(name),
        }
    }

    pub fn load(&self) -> Result<RecordedFallbacks> {
        RecordedFallbacks::load_file(&self.path)
    }

    /// Adds what a build directory learned.
    pub fn add(&self, exec: &Exec, recorded: &RecordedFallbacks) -> Result<()> {
        let mut all = self.load()?;
        all.merge(recorded);
        exec.write(&self.path, all.to_toml())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_round_trip() {
        let mut recorded = RecordedFallbacks::default();
        let entry = Recorded {
            from: "Og".into(),
            to: "O2".into(),
            reason: "check_copy_size".into(),
        };
        recorded.insert("mm/memory.o", "Og", entry);
        let text = recorded.to_toml();
        let parsed: RecordedFallbacks = toml::from_str(&text).unwrap();
        assert_eq!(parsed, recorded);
    }
}

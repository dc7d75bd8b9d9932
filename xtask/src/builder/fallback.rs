//! What a build directory learned: the fallbacks recorded in it
//! (`.study/fallbacks.toml`), and where each object stands on the ladder
//! once the known exceptions and those records are applied.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    ctx::{Prepared, StateDir},
    study::{
        opt_rules::{ObjectFlags, OptRules},
        policy::{Known, Policy},
    },
    util::fsutil,
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

    pub fn save(&self, build_dir: &Path) -> Result<()> {
        fsutil::write_if_changed(
            &RecordedFallbacks::path(build_dir),
            self.to_toml().as_bytes(),
        )?;
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

/// Where each object stands: its rule's step, raised by a known exception
/// or a recorded fallback.
pub struct Placement<'a> {
    pub policy: &'a Policy,
    pub rules: &'a OptRules,
    pub known: Option<&'a BTreeMap<String, Known>>,
    pub recorded: &'a RecordedFallbacks,
}

impl Placement<'_> {
    /// The step an object builds at, and why when it is not its rule's level.
    /// The level the rules alone give `object`.
    pub fn rule_level(&self, object: &str) -> String {
        self.rules.level_for(&source_of(object)).name().to_string()
    }

    pub fn step_for(&self, object: &str) -> (String, Option<String>) {
        let rule_level = self.rule_level(object);
        if let Some(r) = self.recorded.get(object, &rule_level) {
            return (
                r.to.clone(),
                Some(format!("fallback {}→{}: {}", r.from, r.to, r.reason)),
            );
        }
        if let Some(k) = self
            .known
            .and_then(|k| k.get(object))
            .filter(|k| k.from == rule_level)
        {
            // Relative to the checkout: study.mk reads the same from every
            // clone, so sharing a build directory rewrites nothing.
            let policy = self
                .policy
                .path
                .strip_prefix(crate::ctx::project_root())
                .unwrap_or(&self.policy.path);
            let why = format!(
                "known {}→{} ({}): {}",
                k.from,
                k.to,
                policy.display(),
                k.why
            );
            return (k.to.clone(), Some(why));
        }
        (rule_level, None)
    }

    /// Flags for every object that does not build at its rule's level.
    pub fn object_flags(&self) -> Vec<ObjectFlags> {
        let mut objects: Vec<&String> = self.recorded.object.keys().collect();
        if let Some(known) = self.known {
            objects.extend(known.keys());
        }
        objects.sort();
        objects.dedup();
        objects
            .into_iter()
            .filter_map(|object| {
                let (step, why) = self.step_for(object);
                let step = self.policy.step(&step)?;
                Some(ObjectFlags {
                    object: object.clone(),
                    cflags: step.cflags(),
                    why: why?,
                })
            })
            .collect()
    }
}

/// `net/ipv4/tcp.c` for `net/ipv4/tcp.o`.
pub fn source_of(object: &str) -> String {
    format!("{}.c", object.strip_suffix(".o").unwrap_or(object))
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
    pub fn add(&self, recorded: &RecordedFallbacks) -> Result<()> {
        let mut all = self.load()?;
        all.merge(recorded);
        fsutil::write_if_changed(&self.path, all.to_toml().as_bytes())?;
        Ok(())
    }
}

/// When study/fallback.toml has no measurements for this compiler version
/// but has some for another of its family: said once per build, since the
/// first build then finds its objects by discovery.
pub fn unmeasured_note(p: &Prepared) -> Option<String> {
    let series = p.tree.series();
    let family = p.compiler.family.name();
    let others = p.policy.measured_versions(&series, family, &p.arch.name);
    let this = p.measured_compiler()?.name();
    if others.is_empty() || others.contains(&this.as_str()) {
        return None;
    }
    Some(format!(
        "fallback: study/fallback.toml has no measurements for {this} on Linux {series}/{} \
         (it has {}); this build finds its own fallbacks by discovery and records them",
        p.arch.name,
        others.join(", ")
    ))
}

/// Where each object of `p` stands, with what its build directory recorded.
pub fn placement<'a>(p: &'a Prepared, recorded: &'a RecordedFallbacks) -> Placement<'a> {
    Placement {
        policy: &p.policy,
        rules: &p.profile.rules,
        known: p
            .measured_compiler()
            .and_then(|cc| p.policy.known(&p.tree.series(), &cc.name(), &p.arch.name)),
        recorded,
    }
}

/// The overrides make fragment: the profile's rules, plus known exceptions
/// and the fallbacks recorded in the build dir.
pub fn overrides_text(p: &Prepared) -> Result<String> {
    let recorded = RecordedFallbacks::load(&p.build_dir)?;
    Ok(overrides_text_with(p, &recorded))
}

pub fn overrides_text_with(p: &Prepared, recorded: &RecordedFallbacks) -> String {
    crate::study::opt_rules::render_makefile(
        &p.profile.name,
        &p.profile.rules,
        &placement(p, recorded).object_flags(),
        &p.compiler.extra_kcflags(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{opt_rules::Level, origin::Origin, policy::Policy};

    fn policy() -> Policy {
        Policy::load(&crate::study::shipped()).unwrap()
    }

    #[test]
    fn placement_raises_known_and_recorded_objects_only() {
        let p = policy();
        let origin = Origin {
            file: "s".into(),
            line: 1,
            column: 1,
        };
        let rules = OptRules::new(
            Level::Og,
            vec![crate::study::opt_rules::Rule {
                path: "net/ipv4".into(),
                level: Level::O0,
                origin,
            }],
        );
        let mut recorded = RecordedFallbacks::default();
        let entry = |from: &str, to: &str, reason: &str| Recorded {
            from: from.into(),
            to: to.into(),
            reason: reason.into(),
        };
        recorded.insert("net/ipv4/foo.o", "O0", entry("O0", "Og", "error: x"));
        // Recorded under another rule: it does not apply while the rule says O0.
        recorded.insert("net/ipv4/bar.o", "Og", entry("Og", "O2", "error: y"));
        let placement = Placement {
            policy: &p,
            rules: &rules,
            known: p.known("6.12", "gcc-12", "x86_64"),
            recorded: &recorded,
        };
        assert_eq!(placement.step_for("mm/readahead.o"), ("Og".into(), None));
        assert_eq!(placement.step_for("net/ipv4/tcp.o"), ("O0".into(), None));
        let (step, why) = placement.step_for("mm/page_alloc.o");
        assert_eq!(step, "O2");
        assert!(why.unwrap().starts_with("known Og→O2"));
        assert_eq!(placement.step_for("net/ipv4/foo.o").0, "Og");
        assert_eq!(placement.step_for("net/ipv4/bar.o"), ("O0".into(), None));
        let flags = placement.object_flags();
        // Every known exception, and the one recorded move that applies.
        assert_eq!(
            flags.len(),
            p.known("6.12", "gcc-12", "x86_64").unwrap().len() + 1
        );
        let foo = flags.iter().find(|f| f.object == "net/ipv4/foo.o").unwrap();
        assert_eq!(foo.cflags, ["-Og"]);
        assert_eq!(foo.why, "fallback O0→Og: error: x");
    }

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

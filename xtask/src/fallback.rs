//! Fallback bookkeeping: the ladder of steps an object climbs when it does
//! not build at its level, the failure classes that say which step fixes an
//! error, the known exceptions per kernel series, and the fallbacks recorded
//! in a build directory.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::opt_rules::{Level, ObjectFlags, OptRules};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    ladder: Vec<String>,
    #[serde(default)]
    step: BTreeMap<String, RawStep>,
    #[serde(default)]
    class: Vec<RawClass>,
    #[serde(default)]
    known: BTreeMap<String, BTreeMap<String, BTreeMap<String, RawKnown>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    level: String,
    #[serde(default)]
    cflags: Vec<String>,
    checks_off: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClass {
    name: String,
    pattern: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKnown {
    from: String,
    to: String,
    why: String,
}

/// One rung of the ladder: a level plus extra flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub level: Level,
    pub extra: Vec<String>,
    /// Compile-time checks this step turns off, for the report and README.
    pub checks_off: Option<String>,
}

impl Step {
    pub fn cflags(&self) -> Vec<String> {
        std::iter::once(self.level.flag().to_string())
            .chain(self.extra.iter().cloned())
            .collect()
    }
}

#[derive(Debug)]
pub struct Class {
    pub name: String,
    pub pattern: Regex,
    pub to: String,
}

#[derive(Debug, Clone)]
pub struct Known {
    pub from: String,
    pub to: String,
    pub why: String,
}

#[derive(Debug)]
pub struct Policy {
    pub ladder: Vec<Step>,
    pub classes: Vec<Class>,
    /// series -> compiler -> object -> exception
    known: BTreeMap<String, BTreeMap<String, BTreeMap<String, Known>>>,
    pub path: PathBuf,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Policy::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Policy> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| crate::profile::toml_error(path, text, &e))?;
        let mut ladder = Vec::new();
        for name in &raw.ladder {
            let step = match raw.step.get(name) {
                Some(s) => Step {
                    name: name.clone(),
                    level: s
                        .level
                        .parse()
                        .map_err(|e| anyhow::anyhow!("{}: [step.{name}]: {e}", path.display()))?,
                    extra: s.cflags.clone(),
                    checks_off: s.checks_off.clone(),
                },
                None => Step {
                    name: name.clone(),
                    level: name.parse().map_err(|e| {
                        anyhow::anyhow!(
                            "{}: ladder step \"{name}\" is no level and has no [step.{name}]: {e}",
                            path.display()
                        )
                    })?,
                    extra: Vec::new(),
                    checks_off: None,
                },
            };
            ladder.push(step);
        }
        let policy_step = |name: &str, context: &str| -> Result<()> {
            if !raw.ladder.iter().any(|s| s == name) {
                bail!(
                    "{}: {context}: \"{name}\" is not on the ladder ({})",
                    path.display(),
                    raw.ladder.join(", ")
                );
            }
            Ok(())
        };
        let mut classes = Vec::new();
        for class in raw.class {
            policy_step(&class.to, &format!("class {}", class.name))?;
            let pattern = Regex::new(&class.pattern).with_context(|| {
                format!("{}: class {}: bad pattern", path.display(), class.name)
            })?;
            classes.push(Class {
                name: class.name,
                pattern,
                to: class.to,
            });
        }
        let mut known = BTreeMap::new();
        for (series, compilers) in raw.known {
            for (compiler, objects) in compilers {
                for (object, k) in objects {
                    policy_step(&k.from, &object)?;
                    policy_step(&k.to, &object)?;
                    known
                        .entry(series.clone())
                        .or_insert_with(BTreeMap::new)
                        .entry(compiler.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(
                            object,
                            Known {
                                from: k.from,
                                to: k.to,
                                why: k.why,
                            },
                        );
                }
            }
        }
        Ok(Policy {
            ladder,
            classes,
            known,
            path: path.to_path_buf(),
        })
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.ladder.iter().find(|s| s.name == name)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.ladder.iter().position(|s| s.name == name)
    }

    /// The step to move to after failing at `current` with `error`: the
    /// class's step when the error matches one above `current`, else the
    /// next rung. `None` at the top of the ladder.
    pub fn next_step(&self, current: &str, error: &str) -> Option<(&Step, Option<&str>)> {
        let here = self.position(current)?;
        for class in &self.classes {
            if class.pattern.is_match(error) {
                let to = self.position(&class.to).expect("checked at load");
                if to > here {
                    return Some((&self.ladder[to], Some(&class.name)));
                }
            }
        }
        self.ladder.get(here + 1).map(|s| (s, None))
    }

    pub fn known(&self, series: &str, compiler: &str) -> Option<&BTreeMap<String, Known>> {
        self.known.get(series)?.get(compiler)
    }
}

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
        build_dir.join(".study/fallbacks.toml")
    }

    pub fn load(build_dir: &Path) -> Result<RecordedFallbacks> {
        let path = RecordedFallbacks::path(build_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{:#}; delete the file to start over",
                    crate::profile::toml_error(&path, &text, &e)
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RecordedFallbacks::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, build_dir: &Path) -> Result<()> {
        crate::fsutil::write_if_changed(
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
            let why = format!(
                "known {}→{} ({}): {}",
                k.from,
                k.to,
                self.policy.path.display(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Origin;

    fn policy() -> Policy {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        Policy::load(&root.join("study/fallback.toml")).unwrap()
    }

    #[test]
    fn shipped_policy_loads() {
        let p = policy();
        let names: Vec<&str> = p.ladder.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["O0", "Og", "Og-nocheck", "O2"]);
        assert_eq!(
            p.step("Og-nocheck").unwrap().cflags(),
            ["-Og", "-U__OPTIMIZE__", "-Wno-return-type"]
        );
        assert_eq!(p.known("6.12", "gcc").unwrap().len(), 41);
    }

    #[test]
    fn errors_pick_their_step() {
        let p = policy();
        let minmax =
            "include/linux/compiler_types.h:517:45: error: call to '__compiletime_assert_597' \
                      declared with attribute error: min(size, 4096) signedness error";
        let (step, class) = p.next_step("Og", minmax).unwrap();
        assert_eq!(
            (step.name.as_str(), class),
            ("Og-nocheck", Some("minmax-signedness"))
        );
        let copy =
            "./include/linux/thread_info.h:259:25: error: call to '__bad_copy_to' declared with \
                    attribute error: copy destination size is too small";
        assert_eq!(p.next_step("Og", copy).unwrap().0.name, "O2");
        assert_eq!(p.next_step("Og-nocheck", copy).unwrap().0.name, "O2");
        // An unknown error climbs one rung; a class below the current step does too.
        assert_eq!(
            p.next_step("O0", "error: something new").unwrap().0.name,
            "Og"
        );
        assert_eq!(p.next_step("Og-nocheck", minmax).unwrap().0.name, "O2");
        assert!(p.next_step("O2", minmax).is_none());
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
            vec![crate::opt_rules::Rule {
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
            known: p.known("6.12", "gcc"),
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
        assert_eq!(flags.len(), 42);
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

//! The fallback policy (study/fallback.toml): the ladder of steps an object
//! climbs when it does not build at its level, the failure classes that say
//! which step fixes an error, and the known exceptions per kernel series and
//! compiler.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Deserialize;

use crate::study::{opt_rules::Level, origin::toml_error, toolchain::Toolchain};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    ladder: Vec<String>,
    #[serde(default)]
    step: BTreeMap<String, RawStep>,
    #[serde(default)]
    class: Vec<RawClass>,
    /// series → compiler → architecture → object.
    #[serde(default)]
    known: BTreeMap<String, BTreeMap<String, BTreeMap<String, RawObjects>>>,
}

/// Known exceptions of one series, compiler and architecture, by object.
type RawObjects = BTreeMap<String, RawKnown>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    level: String,
    #[serde(default)]
    cflags: Vec<String>,
    checks_off: Option<String>,
    #[serde(default)]
    only_by_class: bool,
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
    /// Reached only through a failure class that names it; other errors
    /// climb past it.
    pub only_by_class: bool,
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
    known: BTreeMap<(String, String, String), BTreeMap<String, Known>>,
    pub path: PathBuf,
}

impl Policy {
    /// `study_dir/fallback.toml`.
    pub fn load(study_dir: &Path) -> Result<Policy> {
        let path = &study_dir.join("fallback.toml");
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Policy::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Policy> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
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
                    only_by_class: s.only_by_class,
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
                    only_by_class: false,
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
            for (compiler, arches) in compilers {
                let measured: Option<Toolchain> = compiler.parse().ok();
                if measured.is_none_or(|t| t.version.is_none()) {
                    bail!(
                        "{}: [known.\"{series}\".{compiler}]: known exceptions are keyed by the \
                         compiler version they were measured with; write it as gcc-12 or clang-14",
                        path.display()
                    );
                }
                for (arch, objects) in arches {
                    for (object, k) in objects {
                        policy_step(&k.from, &object)?;
                        // An exception applies to the level a rule asks
                        // for, never to a rung only the ladder reaches.
                        if k.from.parse::<Level>().is_err() {
                            bail!(
                                "{}: [known.\"{series}\".{compiler}.{arch}] {object}: from = \"{}\" is \
                                 no level a rule can ask for, so it would never apply; write the \
                                 rule's level (O0, Og, O2)",
                                path.display(),
                                k.from
                            );
                        }
                        policy_step(&k.to, &object)?;
                        known
                            .entry((series.clone(), compiler.clone(), arch.clone()))
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
        // An object's errors can match several classes (af_packet.c has a
        // min() signedness error and a __bad_copy_to): the highest step any
        // of them needs, or the object fails again one rung up.
        let highest = self
            .classes
            .iter()
            .filter(|c| c.pattern.is_match(error))
            .map(|c| (self.position(&c.to).expect("checked at load"), c))
            .filter(|(to, _)| *to > here)
            // max_by_key keeps the last of equals: reversed, the file's first.
            .rev()
            .max_by_key(|(to, _)| *to);
        if let Some((to, class)) = highest {
            return Some((&self.ladder[to], Some(&class.name)));
        }
        self.ladder[here + 1..]
            .iter()
            .find(|s| !s.only_by_class)
            .map(|s| (s, None))
    }

    /// What was measured for this kernel series, compiler version
    /// (`gcc-12`) and architecture: another version or architecture fails
    /// differently, and finds its own by discovery.
    pub fn known(
        &self,
        series: &str,
        compiler: &str,
        arch: &str,
    ) -> Option<&BTreeMap<String, Known>> {
        self.known
            .get(&(series.to_string(), compiler.to_string(), arch.to_string()))
    }

    /// The compiler versions with known exceptions for this series, family
    /// and architecture: what a build of another version is told it lacks.
    pub fn measured_versions(&self, series: &str, family: &str, arch: &str) -> Vec<&str> {
        self.known
            .keys()
            .filter(|(s, c, a)| s == series && a == arch && c.split('-').next() == Some(family))
            .map(|(_, c, _)| c.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::load(&crate::study::shipped()).unwrap()
    }

    #[test]
    fn shipped_policy_loads() {
        let p = policy();
        let names: Vec<&str> = p.ladder.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["O0", "O0-nocheck", "Og", "Og-nocheck", "O2"]);
        assert_eq!(
            p.step("O0-nocheck").unwrap().cflags(),
            ["-O0", "-Wno-return-type"]
        );
        assert_eq!(
            p.step("Og-nocheck").unwrap().cflags(),
            ["-Og", "-U__OPTIMIZE__", "-Wno-return-type"]
        );
        assert!(!p.known("6.12", "gcc-12", "x86_64").unwrap().is_empty());
        assert!(p.known("6.12", "gcc-12", "arm64").is_none());
        // Each version's measurements are its own: gcc 10 has none.
        assert!(p.known("6.12", "gcc-10", "x86_64").is_none());
        assert_eq!(
            p.measured_versions("6.12", "gcc", "x86_64"),
            ["gcc-11", "gcc-12"]
        );
        assert!(p.measured_versions("6.12", "clang", "arm64").is_empty());
    }

    #[test]
    fn known_data_from_a_rung_no_rule_asks_for_is_refused() {
        let text = "ladder = [\"Og\", \"Og-nocheck\", \"O2\"]\n[step.Og-nocheck]\nlevel = \"Og\"\n\
                    [known.\"6.12\".gcc-11.x86_64]\n\"a.o\" = { from = \"Og-nocheck\", to = \"O2\", why = \"x\" }\n";
        let err = Policy::parse(Path::new("f.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.o: from = \"Og-nocheck\" is no level a rule can ask for"),
            "{err}"
        );
    }

    #[test]
    fn known_data_without_a_compiler_version_is_refused() {
        let text = "ladder = [\"Og\", \"O2\"]\n[known.\"6.12\".gcc.x86_64]\n\"a.o\" = { from = \"Og\", to = \"O2\", why = \"x\" }\n";
        let err = Policy::parse(Path::new("f.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[known.\"6.12\".gcc]"), "{err}");
        assert!(err.contains("gcc-12"), "{err}");
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
        // Both at once (net/packet/af_packet.c on 6.1): the higher step.
        let both = format!("{minmax}\n{copy}");
        let (step, class) = p.next_step("Og", &both).unwrap();
        assert_eq!((step.name.as_str(), class), ("O2", Some("check_copy_size")));
        assert!(p.next_step("O2", minmax).is_none());
    }

    /// BUILD_BUG() as a non-void stub's body (include/linux/swapops.h:589 on
    /// 6.12, mm/ at -O0): -O0 keeps its level with -Wno-return-type; -Og
    /// needs Og-nocheck; no other error stops at O0-nocheck.
    #[test]
    fn a_build_bug_stub_keeps_o0() {
        let p = policy();
        let stub = "/work/main/target/kernel-test/linux/include/linux/swapops.h:589:1: error: \
                    no return statement in function returning non-void [-Werror=return-type]";
        let (step, class) = p.next_step("O0", stub).unwrap();
        assert_eq!(
            (step.name.as_str(), class),
            ("O0-nocheck", Some("build-bug-stub"))
        );
        assert_eq!(p.next_step("Og", stub).unwrap().0.name, "Og-nocheck");
        // static_cpu_has() at -O0, as gcc words it in a UTF-8 locale; with
        // the stub in the same object, the higher step.
        let asm = "arch/x86/include/asm/cpufeature.h:178:9: error: impossible constraint in ‘asm’";
        let (step, class) = p.next_step("O0", asm).unwrap();
        assert_eq!(
            (step.name.as_str(), class),
            ("Og", Some("asm-constant-at-O0"))
        );
        assert_eq!(
            p.next_step("O0", &format!("{stub}\n{asm}")).unwrap().0.name,
            "Og"
        );
        // clang on arm64 (alternative_has_cap_unlikely at -O0).
        let clang = "arch/arm64/include/asm/alternative-macros.h:255:2: error: invalid operand for inline asm constraint 'i'";
        assert_eq!(
            p.next_step("O0", clang).unwrap(),
            (p.step("Og").unwrap(), Some("asm-constant-at-O0"))
        );
        assert_eq!(
            p.next_step("O0", "error: something new").unwrap().0.name,
            "Og"
        );
        assert_eq!(
            p.next_step("O0-nocheck", "error: something new")
                .unwrap()
                .0
                .name,
            "Og"
        );
    }
}

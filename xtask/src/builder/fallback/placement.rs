//! Where each object stands on the ladder: its rule's step, raised by a
//! known exception (study/fallback.toml) or a recorded fallback, and the
//! make fragment that says so to Kbuild.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::{
    builder::fallback::RecordedFallbacks,
    ctx::Prepared,
    study::{
        opt_rules::{ObjectFlags, OptRules},
        policy::{Known, Policy},
    },
};

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
        &p.linker.vmlinux_ldflags(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        builder::fallback::Recorded,
        study::{opt_rules::Level, origin::Origin, policy::Policy},
    };

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
                strict: true,
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
}

//! The fallback ladder, in one place: where each object stands
//! ([`placement`]), what a build directory and every build of its kind
//! learned ([`record`]), and [`Ladder`], which after a failed pass decides
//! which objects move up and why, or stops the build in one line. Its
//! deciders, one per stage that can fail: [`compile`], [`link`] and
//! [`post_link`].

mod compile;
mod link;
pub mod placement;
mod post_link;
pub mod record;

use std::{collections::HashSet, path::Path};

use anyhow::Result;

pub use placement::{overrides_text, overrides_text_with, placement, source_of, unmeasured_note};
pub use record::{Learned, Recorded, RecordedFallbacks};

use crate::{ctx::Prepared, kernel::buildlog::BuildLog, study::policy::Policy, util::exec::Exec};

/// One build's walk up the ladder: what its directory recorded, and what
/// this build moved.
pub struct Ladder<'a> {
    exec: &'a Exec,
    p: &'a Prepared,
    /// `--suggest-config`: a link or post-link failure of any object stops
    /// with the fix, as it does for objects under a strict rule.
    suggest_config: bool,
    pub recorded: RecordedFallbacks,
    /// What moved in this build, in order.
    pub moved: Vec<(String, Recorded)>,
    /// Objects built once more where they are, before a move for good.
    retried: HashSet<String>,
}

impl<'a> Ladder<'a> {
    pub fn new(
        exec: &'a Exec,
        p: &'a Prepared,
        suggest_config: bool,
        recorded: RecordedFallbacks,
    ) -> Ladder<'a> {
        Ladder {
            exec,
            p,
            suggest_config,
            recorded,
            moved: Vec::new(),
            retried: HashSet::new(),
        }
    }

    /// After a failed pass: moves what one step fixes, stage by stage
    /// (compile errors first, since a link needs every object). Returns
    /// whether anything moved; an error is a failure no step fixes.
    pub fn after_failure(&mut self, log: &BuildLog) -> Result<bool> {
        let moved = self.compile_failures(log)?
            || self.link_failures(log)?
            || self.post_link_checks(log)?;
        if moved {
            self.save()?;
        }
        Ok(moved)
    }

    /// Records a move of `object` under its rule's level `rule`. A second
    /// move under the same rule (O0 → Og at the link, then Og → Og-nocheck
    /// at the compile) keeps where it started and every reason, in order.
    fn record(&mut self, object: &str, rule: &str, entry: Recorded) {
        let entry = match self.recorded.get(object, rule) {
            Some(earlier) if earlier.to == entry.from => Recorded {
                from: earlier.from.clone(),
                to: entry.to,
                reason: format!("{}; then {}", earlier.reason, entry.reason),
            },
            _ => entry,
        };
        self.recorded.insert(object, rule, entry.clone());
        self.moved.push((object.to_string(), entry));
    }

    pub fn save(&self) -> Result<()> {
        self.recorded.save(self.exec, &self.p.build_dir)
    }

    fn placement(&self) -> placement::Placement<'_> {
        placement(self.p, &self.recorded)
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.p.state().build_log()
    }

    /// A link failure is not fixed by extra flags at the same level: the
    /// next rung with a different -O level.
    fn next_higher_level(&self, current: &str) -> Option<String> {
        next_higher_level(&self.p.policy, current)
    }

    /// Whether `source`'s rule is strict: its level a promise the build
    /// keeps, so a failure after the compile stops it with the fix.
    fn strict(&self, source: &str) -> bool {
        self.p
            .profile
            .rules
            .rule_for(source)
            .is_some_and(|r| r.strict)
    }
}

fn next_higher_level(policy: &Policy, current: &str) -> Option<String> {
    let level = policy.step(current)?.level;
    let position = policy.ladder.iter().position(|s| s.name == current)?;
    policy.ladder[position + 1..]
        .iter()
        .find(|s| s.level != level)
        .map(|s| s.name.clone())
}

/// Whether a recorded reason carries `error`, line and column numbers aside.
pub(crate) fn same_error(reason: &str, error: &str) -> bool {
    let digitless = |s: &str| {
        s.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    digitless(reason).ends_with(&digitless(error))
}

/// The file name of a tree-relative source, for "accept X at -Og".
fn file_name(source: &str) -> String {
    Path::new(source)
        .file_name()
        .map_or(source.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_error_ignores_numbers_and_the_class() {
        let reason = "minmax-signedness: net/ipv4/tcp.c:12:3: error: call to '__compiletime_assert_490' failed";
        assert!(same_error(
            reason,
            "net/ipv4/tcp.c:14:3: error: call to '__compiletime_assert_512' failed"
        ));
        assert!(!same_error(
            reason,
            "net/ipv4/tcp.c:14:3: error: expected ';' before 'return'"
        ));
    }

    #[test]
    fn a_link_failure_skips_the_rungs_of_the_same_level() {
        let policy = Policy::load(&crate::study::shipped()).unwrap();
        let position = |name: &str| policy.ladder.iter().position(|s| s.name == name).unwrap();
        for step in &policy.ladder {
            let Some(next) = next_higher_level(&policy, &step.name) else {
                continue;
            };
            let (from, to) = (position(&step.name), position(&next));
            assert!(to > from, "{} → {next} goes down", step.name);
            assert_ne!(policy.ladder[to].level, step.level);
            for between in &policy.ladder[from + 1..to] {
                assert_eq!(
                    between.level, step.level,
                    "{} skips {}",
                    step.name, between.name
                );
            }
        }
    }
}

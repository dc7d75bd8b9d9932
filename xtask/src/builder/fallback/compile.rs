//! An object the compiler (or objtool on it, or a tool around it) did not
//! build: one step up the ladder, or the step its failure class names, or
//! a stop when no step fixes it.

use anyhow::{bail, Result};

use crate::{
    builder::fallback::{same_error, source_of, Ladder, Recorded},
    kernel::buildlog::{BuildLog, FailedBy},
};

impl Ladder<'_> {
    /// Moves each object that did not compile one step up (or to the step its
    /// failure class names). Returns whether any moved.
    pub(super) fn compile_failures(&mut self, log: &BuildLog) -> Result<bool> {
        let mut any = false;
        let mut not_the_level = Vec::new();
        for failure in &log.failures {
            let (current, _) = self.placement().step_for(&failure.object);
            let rule = self.placement().rule_level(&failure.object);
            let source = source_of(&failure.object);
            match &failure.by {
                // fixdep or objtool that could not open a file, the compiler
                // killed: another make in this directory, or a killed one, leaves
                // such files half-made. No level fixes that, so nothing moves:
                // once more as it is, then stop.
                FailedBy::Tool(tool) => {
                    if self.retried.insert(failure.object.clone()) {
                        eprintln!(
                            "{}: {tool} failed, and not on the code; building it once more at -{current}: {}",
                            failure.object, failure.error
                        );
                        any = true;
                    } else {
                        not_the_level.push(format!(
                            "{}: {tool} failed, and not on the code: {}",
                            failure.object, failure.error
                        ));
                    }
                    continue;
                }
                // objtool on the object the compiler made: code the level shaped
                // (at -O0, an out-of-line helper called with UACCESS enabled, say);
                // extra flags at the same level do not change it.
                FailedBy::Objtool => {
                    let Some(next) = self.next_higher_level(&current) else {
                        bail!(
                            "objtool: {}: {}; fix: a rule that builds {source} at another level; see {}",
                            failure.object,
                            failure.error,
                            self.log_path().display()
                        );
                    };
                    let entry = Recorded {
                        from: current,
                        to: next,
                        reason: failure.error.clone(),
                    };
                    self.record(&failure.object, &rule, entry);
                    any = true;
                    continue;
                }
                FailedBy::Compiler => {}
            }
            // The same error one rung up, or at the top: not an optimization
            // problem (a typo, say). Undo this object's moves so that, once it is
            // fixed, it builds at its rule's level again.
            let same_again = self
                .recorded
                .get(&failure.object, &rule)
                .filter(|r| same_error(&r.reason, &failure.error))
                .map(|r| r.from.clone());
            let next = self.p.policy.next_step(&current, &failure.block);
            if same_again.is_some() || next.is_none() {
                self.recorded.object.remove(&failure.object);
                self.save()?;
                let levels = match same_again {
                    Some(before) => format!("at -{before} and at -{current}"),
                    None => format!("even at -{current}"),
                };
                bail!(
                    "{source} fails {levels}, so it is not the optimization level: {}; see {}",
                    failure.error,
                    self.log_path().display()
                );
            }
            let (next, class) = next.expect("checked above");
            // An error no failure class explains may not be the level at all (a
            // generated header a killed build left half-made): build the object
            // once more where it is before recording a move for good.
            if class.is_none() && self.retried.insert(failure.object.clone()) {
                eprintln!(
                    "{source}: an error no failure class explains; building it once more at -{current}: {}",
                    failure.error
                );
                any = true;
                continue;
            }
            let reason = match class {
                Some(class) => format!("{class}: {}", failure.error),
                None => failure.error.clone(),
            };
            let entry = Recorded {
                from: current,
                to: next.name.clone(),
                reason,
            };
            self.record(&failure.object, &rule, entry);
            any = true;
        }
        if let Some(first) = not_the_level.first() {
            for line in &not_the_level[1..] {
                eprintln!("{line}");
            }
            self.save()?;
            bail!(
                "{first} (twice): no optimization level fixes that, so nothing moved; \
                 is another make running in {}? see {}",
                self.p.build_dir.display(),
                self.log_path().display()
            );
        }
        Ok(any)
    }
}

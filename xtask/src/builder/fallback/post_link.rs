//! The checks Kbuild runs after the link (modpost, objtool on vmlinux.o),
//! when they fail the build, traced back to the objects at fault.

use std::collections::HashSet;

use anyhow::{bail, Result};

use crate::{
    builder::fallback::{file_name, source_of, Ladder, Recorded},
    kernel::{buildlog::BuildLog, linkfix},
};

impl Ladder<'_> {
    /// The checks Kbuild runs on vmlinux.o, when they fail the build: modpost's
    /// section mismatches and objtool's errors, each mapped back to the objects
    /// that define the function it names. An object under a strict rule (or any,
    /// with `--suggest-config`) stops the build with a one-line fix, as it would
    /// lose the level its rule promises; others move to the next step with a
    /// higher level (at -O0 and -Og a `static inline` helper stays out of line,
    /// in .text, calling the `__init` function it wraps).
    pub(super) fn post_link_checks(&mut self, log: &BuildLog) -> Result<bool> {
        let objtool_errors: Vec<_> = log
            .objtool
            .iter()
            .filter(|m| m.error && m.object == "vmlinux.o")
            .collect();
        if log.modpost_errors.is_empty() && objtool_errors.is_empty() {
            return Ok(false);
        }
        if !log.modpost_errors.is_empty() && log.section_mismatches.is_empty() {
            bail!(
                "modpost: {}; see {}",
                log.modpost_errors[0],
                self.log_path().display()
            );
        }
        // (check, function, what it found, the fix the user can make)
        let mut faults = Vec::new();
        let mut seen = HashSet::new();
        for m in &log.section_mismatches {
            if seen.insert(("modpost", m.from.clone())) {
                faults.push((
                    "modpost",
                    m.from.clone(),
                    format!(
                        "section mismatch {} ({}) -> {} ({})",
                        m.from, m.from_section, m.to, m.to_section
                    ),
                    "add SECTION_MISMATCH_WARN_ONLY = true to the profile",
                ));
            }
        }
        for m in &objtool_errors {
            let Some(function) = &m.function else {
                bail!(
                    "objtool: vmlinux.o: {}; see {}",
                    m.message,
                    self.log_path().display()
                );
            };
            if seen.insert(("objtool", function.clone())) {
                faults.push((
                    "objtool",
                    function.clone(),
                    m.message.clone(),
                    "a rule that builds it at another level",
                ));
            }
        }
        let mut fixes = Vec::new();
        let mut any = false;
        let functions: Vec<&str> = faults.iter().map(|(_, f, _, _)| f.as_str()).collect();
        let defining = linkfix::defining_objects(&self.p.build_dir, &self.p.tree.path, &functions)?;
        for (check, function, what, fix) in &faults {
            let objects = &defining[function];
            if objects.is_empty() {
                fixes.push(format!(
                    "{check}: vmlinux: {what} (no compiled object defines {function}); fix: {fix}"
                ));
            }
            for object in objects {
                let source = source_of(object);
                let (current, _) = self.placement().step_for(object);
                let strict = self.strict(&source);
                let next = self.next_higher_level(&current);
                match next {
                    Some(next) if !(strict || self.suggest_config) => {
                        let rule = self.placement().rule_level(object);
                        let entry = Recorded {
                            from: current,
                            to: next,
                            reason: format!("{check}: {what}"),
                        };
                        self.record(object, &rule, entry);
                        any = true;
                    }
                    Some(_) => fixes.push(format!(
                        "{check}: {object} at -{current}: {what}; fix: {fix}, or accept {} at -Og",
                        file_name(&source)
                    )),
                    None => fixes.push(format!(
                        "{check}: {object} at -{current}: {what}; fix: {fix}"
                    )),
                }
            }
        }
        if !fixes.is_empty() {
            fixes.sort();
            fixes.dedup();
            for fix in &fixes {
                eprintln!("{fix}");
            }
            bail!(
                "the checks after the link stopped the build for {} object(s) the tool leaves at their level (see above); see {}",
                fixes.len(),
                self.log_path().display()
            );
        }
        Ok(any)
    }
}

//! A link that stopped on undefined symbols: the objects that reference
//! each, and the config option that would define it.

use std::collections::HashSet;

use anyhow::{bail, Result};

use crate::{
    builder::fallback::{file_name, source_of, Ladder, Recorded},
    kernel::{
        buildlog::BuildLog,
        linkfix::{self, Provider},
    },
};

impl Ladder<'_> {
    /// For each undefined symbol: the objects that reference it, and the option
    /// that would define it. Objects under a strict rule (or all, with
    /// `--suggest-config`) stop the build with the one-line fix; others move to
    /// the next step with a higher level.
    pub(super) fn link_failures(&mut self, log: &BuildLog) -> Result<bool> {
        if log.undefined.is_empty() {
            return Ok(false);
        }
        let config = self.p.config()?;
        let mut fixes = Vec::new();
        let mut any = false;
        let mut moved_now = HashSet::new();
        let symbols: Vec<&str> = log.undefined.iter().map(|u| u.symbol.as_str()).collect();
        let referencing = linkfix::referencing_objects(&self.p.build_dir, &symbols)?;
        for undefined in &log.undefined {
            let objects = &referencing[&undefined.symbol];
            let provider = linkfix::find_provider(
                &self.p.tree.path,
                &self.p.arch.src_arch,
                &undefined.symbol,
                &config,
            );
            for object in objects {
                let source = source_of(object);
                let (current, _) = self.placement().step_for(object);
                let strict = self.strict(&source);
                if let Some(Provider {
                    option: Some(option),
                    gated_at: Some(at),
                    ..
                }) = &provider
                {
                    if strict || self.suggest_config {
                        let line = format!(
                            "{source} at -{current} calls {}, built only with CONFIG_{option}=y ({at}): \
                             add {option} = true to the profile, or accept {} at -Og",
                            undefined.symbol,
                            file_name(&source),
                        );
                        fixes.push((line, option.clone()));
                        continue;
                    }
                }
                // One object, several undefined symbols (__start_BTF and
                // __stop_BTF): one move per link, not one per symbol; every
                // fix line above is still said.
                if !moved_now.insert(object.clone()) {
                    continue;
                }
                let Some(next) = self.next_higher_level(&current) else {
                    bail!(
                        "{object} references undefined {} even at {current}",
                        undefined.symbol
                    );
                };
                let rule = self.placement().rule_level(object);
                let entry = Recorded {
                    from: current,
                    to: next,
                    reason: format!("link: undefined {}", undefined.symbol),
                };
                self.record(object, &rule, entry);
                any = true;
            }
            if objects.is_empty() {
                bail!(
                    "undefined {} at link time, and no object references it; see {}",
                    undefined.symbol,
                    self.log_path().display()
                );
            }
        }
        if !fixes.is_empty() {
            fixes.sort();
            fixes.dedup();
            for (fix, _) in &fixes {
                eprintln!("{fix}");
            }
            let mut options: Vec<&str> = fixes.iter().map(|(_, o)| o.as_str()).collect();
            options.sort();
            options.dedup();
            bail!(
                "the link needs {} for objects under strict rules (see above): add {} to the profile, or rerun without --suggest-config to move the others up",
                options.iter().map(|o| format!("CONFIG_{o}")).collect::<Vec<_>>().join(", "),
                options.iter().map(|o| format!("{o} = true")).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(any)
    }
}

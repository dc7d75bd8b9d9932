//! `cargo xtask opt-report`: the proof that the rules worked, read from the
//! DWARF of every built object: the -O level the compiler really used
//! (DW_AT_producer, where the last -O wins) and the share of parameters and
//! locals GDB can show, against the level the rules and fallbacks promise.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Result;
use serde::Serialize;

use crate::{
    analysis::dwarf,
    build::fallback::{placement, source_of, RecordedFallbacks},
    ctx::Prepared,
    spec::{opt_rules::Level, policy::Step},
};

#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    pub object: String,
    pub source: String,
    /// The step the rules, known exceptions and fallbacks put it at.
    pub expected_step: String,
    pub expected: String,
    /// From DW_AT_producer; None when the object has no C debug info.
    pub actual: Option<String>,
    /// The object is at the default level, and its own Makefile sets the last
    /// -O flag (boot code and vdso replace KBUILD_CFLAGS; lib/zstd adds -O3).
    /// Objects under a path rule or a fallback are always checked.
    pub own_flags: bool,
    /// Under a path rule or a fallback, not just the default level.
    pub ruled: bool,
    /// Compile-time checks its step turns off.
    pub checks_off: Option<String>,
    pub params: usize,
    pub params_located: usize,
    pub locals: usize,
    pub locals_located: usize,
    /// The share of parameters and locals with a location (1.0 when none).
    pub located_share: f64,
}

impl ObjectReport {
    pub fn mismatched(&self) -> bool {
        match self.actual.as_deref() {
            _ if self.own_flags => false,
            Some(actual) => actual != self.expected,
            // No DWARF to prove it: a failure where a rule or fallback asked.
            None => self.ruled,
        }
    }
}

/// Every kernel C object in the build dir, with what its `.cmd` says and
/// what its DWARF says.
pub fn collect(p: &Prepared, filters: &[String]) -> Result<Vec<ObjectReport>> {
    let recorded = RecordedFallbacks::load(&p.build_dir)?;
    let placement = placement(p, &recorded);
    let mut candidates = Vec::new();
    for entry in walkdir::WalkDir::new(&p.build_dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".study")
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy();
        let Some(object_name) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".cmd")) else {
            continue;
        };
        if !object_name.ends_with(".o") || object_name.ends_with(".mod.o") {
            continue;
        }
        let object = entry.path().with_file_name(object_name);
        let rel = object
            .strip_prefix(&p.build_dir)
            .unwrap_or(&object)
            .display()
            .to_string();
        if !filters.is_empty()
            && !filters
                .iter()
                .any(|f| rel.starts_with(f.trim_end_matches('/')))
        {
            continue;
        }
        let Ok(cmd) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Some(command) = cmd.lines().next() else {
            continue;
        };
        // Kernel C objects only: not host programs, not assembly.
        if !command.contains("-D__KERNEL__")
            || !command.contains(".c")
            || !object.is_file()
            || command.contains("-D__ASSEMBLY__")
        {
            continue;
        }
        candidates.push((rel, object, command.to_string()));
    }
    candidates.sort();
    let summaries = summarize_all(candidates.iter().map(|(_, o, _)| o.clone()).collect());
    let mut reports = Vec::new();
    for ((rel, path, command), summary) in candidates.into_iter().zip(summaries) {
        let (step_name, why) = placement.step_for(&rel);
        let source = source_of(&rel);
        let default_level = why.is_none() && p.profile.rules.rule_for(&source).is_none();
        let Some(step) = p.policy.step(&step_name).cloned().or_else(|| {
            step_name.parse().ok().map(|level| Step {
                name: step_name.clone(),
                level,
                extra: vec![],
                checks_off: None,
            })
        }) else {
            continue;
        };
        let last_level = command.split_whitespace().rev().find_map(Level::from_flag);
        let own_flags = default_level && last_level != Some(step.level);
        let summary = summary.ok();
        reports.push(ObjectReport {
            source,
            object: rel,
            expected_step: step.name.clone(),
            expected: step.level.name().to_string(),
            actual: summary
                .as_ref()
                .and_then(|s| s.level)
                .map(|l| l.name().to_string()),
            own_flags,
            // An object with no code has nothing to debug, and clang gives it no DWARF.
            ruled: !default_level && has_code(&path),
            checks_off: step.checks_off.clone(),
            params: summary.as_ref().map_or(0, |s| s.params),
            params_located: summary.as_ref().map_or(0, |s| s.params_located),
            locals: summary.as_ref().map_or(0, |s| s.locals),
            locals_located: summary.as_ref().map_or(0, |s| s.locals_located),
            located_share: summary.as_ref().map_or(1.0, |s| s.located_share()),
        });
    }
    Ok(reports)
}

/// Whether an object holds any machine code (a non-empty executable section).
fn has_code(path: &Path) -> bool {
    use object::{Object, ObjectSection, SectionKind};
    let Ok(data) = std::fs::read(path) else {
        return true;
    };
    let Ok(file) = object::File::parse(&*data) else {
        return true;
    };
    file.sections()
        .any(|s| s.kind() == SectionKind::Text && s.size() > 0)
}

/// Reads the DWARF of many objects on every core.
fn summarize_all(objects: Vec<PathBuf>) -> Vec<Result<dwarf::ObjectSummary>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = objects.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|o| dwarf::summarize(o)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("summarize does not panic"))
            .collect()
    })
}

fn share(located: usize, total: usize) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * located as f64 / total as f64)
    }
}

fn levels(reports: &[&ObjectReport]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in reports {
        *counts
            .entry(r.actual.clone().unwrap_or_else(|| "no-dwarf".into()))
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|(l, n)| format!("{l} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per directory: objects, levels found, located share.
pub fn render_dirs(reports: &[ObjectReport]) -> String {
    let mut dirs: BTreeMap<String, Vec<&ObjectReport>> = BTreeMap::new();
    for r in reports {
        let dir = Path::new(&r.object)
            .parent()
            .map_or(".".into(), |d| d.display().to_string());
        dirs.entry(dir).or_default().push(r);
    }
    let mut out = format!(
        "{:<36} {:>7}  {:<28} {:>8}\n",
        "directory", "objects", "levels (DW_AT_producer)", "located"
    );
    for (dir, rs) in &dirs {
        let (loc, total) = rs.iter().fold((0, 0), |(l, t), r| {
            (
                l + r.params_located + r.locals_located,
                t + r.params + r.locals,
            )
        });
        out.push_str(&format!(
            "{dir:<36} {:>7}  {:<28} {:>8}\n",
            rs.len(),
            levels(rs),
            share(loc, total)
        ));
    }
    out.push_str(&checks_off_summary(reports));
    out
}

/// One line per object.
pub fn render_files(reports: &[ObjectReport]) -> String {
    let mut out = format!(
        "{:<48} {:<12} {:<8} {:>8}\n",
        "object", "rule/step", "actual", "located"
    );
    for r in reports {
        let mark = if r.mismatched() {
            "  MISMATCH"
        } else if r.own_flags {
            "  (own flags)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<48} {:<12} {:<8} {:>8}{mark}\n",
            r.object,
            r.expected_step,
            r.actual.as_deref().unwrap_or("-"),
            share(r.params_located + r.locals_located, r.params + r.locals)
        ));
    }
    out.push_str(&checks_off_summary(reports));
    out
}

fn checks_off_summary(reports: &[ObjectReport]) -> String {
    let mut by_checks: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in reports {
        if let Some(checks) = &r.checks_off {
            by_checks
                .entry(checks.as_str())
                .or_default()
                .push(&r.object);
        }
    }
    let mut out = String::new();
    for (checks, objects) in by_checks {
        out.push_str(&format!(
            "\n{} object(s) build with {checks} off: {}\n",
            objects.len(),
            objects.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        object: &str,
        expected: &str,
        actual: Option<&str>,
        own_flags: bool,
        located: usize,
    ) -> ObjectReport {
        ObjectReport {
            object: object.into(),
            source: object.replace(".o", ".c"),
            expected_step: expected.into(),
            expected: expected.into(),
            actual: actual.map(String::from),
            own_flags,
            ruled: true,
            checks_off: None,
            params: 10,
            params_located: located,
            locals: 0,
            locals_located: 0,
            located_share: located as f64 / 10.0,
        }
    }

    #[test]
    fn directory_table_and_mismatches() {
        let reports = vec![
            report("net/ipv4/tcp.o", "O0", Some("O0"), false, 10),
            report("net/ipv4/udp.o", "O0", Some("O0"), false, 9),
            report("mm/memory.o", "Og", Some("O2"), false, 5),
            report("arch/x86/boot/a.o", "Og", Some("O2"), true, 5),
        ];
        assert!(reports[2].mismatched());
        assert!(!reports[3].mismatched());
        expect_test::expect![[r#"
            directory                            objects  levels (DW_AT_producer)       located
            arch/x86/boot                              1  O2 1                            50.0%
            mm                                         1  O2 1                            50.0%
            net/ipv4                                   2  O0 2                            95.0%
        "#]]
        .assert_eq(&render_dirs(&reports));
    }
}

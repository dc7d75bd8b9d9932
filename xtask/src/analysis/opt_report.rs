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
    builder::fallback::{placement, source_of, RecordedFallbacks},
    ctx::{Prepared, StateDir},
    study::{opt_rules::Level, policy::Step},
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
    /// The last -O flag on the object's command line (its `.cmd`).
    pub command_level: Option<String>,
    /// The object is at the default level, and its own Makefile sets the last
    /// -O flag (boot code and vdso replace KBUILD_CFLAGS; lib/zstd adds -O3):
    /// `flag_source` names the line. Objects under a path rule or a fallback
    /// are always checked.
    pub own_flags: bool,
    /// Where an own level comes from: `lib/lz4/Makefile:2`.
    pub flag_source: Option<String>,
    /// Why the object's DWARF could not be read: a failure, not a pass.
    pub dwarf_error: Option<String>,
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
    /// Whether the object fails `--check`: built at another level than its
    /// rule's, unexcused, or unreadable.
    pub fn mismatched(&self) -> bool {
        if self.dwarf_error.is_some() {
            return true;
        }
        match self.actual.as_deref() {
            _ if self.own_flags => false,
            Some(actual) => actual != self.expected,
            // No DWARF to prove it: a failure where a rule or fallback
            // asked, or where the command line itself says otherwise.
            None => {
                self.ruled
                    || self
                        .command_level
                        .as_deref()
                        .is_some_and(|l| l != self.expected)
            }
        }
    }
}

/// The line of an object's own Makefile that sets its -O level, when its
/// last -O flag (`last`) is not the default: one that names that flag (in
/// its directory's Makefile or Kbuild, or a parent's `subdir-ccflags`), or,
/// when the default flag is not on its command line at all
/// (`default_in_command`), one that replaces KBUILD_CFLAGS. The top
/// Makefile and the architecture's are everyone's, never an object's own.
pub fn own_flag_source(
    tree: &Path,
    object: &str,
    last: Level,
    default_in_command: bool,
) -> Option<String> {
    let flag = last.flag();
    let names_flag = |line: &str| {
        line.split(|c: char| c.is_whitespace() || c == ')' || c == ',')
            .any(|w| w == flag)
    };
    let replaces = |line: &str| {
        let line = line.trim_start();
        // `KBUILD_CFLAGS := ...`, or target-specific `$(objs): KBUILD_CFLAGS := ...`.
        let line = line
            .rsplit_once(": KBUILD_CFLAGS")
            .map_or(line, |(_, rest)| rest);
        let rest = line.strip_prefix("KBUILD_CFLAGS").unwrap_or(line);
        line.len() != rest.len() && {
            let rest = rest.trim_start();
            rest.starts_with(":=") || rest.starts_with('=')
        }
    };
    let object_dir = Path::new(object).parent()?;
    for (depth, dir) in object_dir.ancestors().enumerate() {
        let components = dir.components().count();
        if components == 0 || (dir.starts_with("arch") && components <= 2) {
            break;
        }
        for name in ["Kbuild", "Makefile"] {
            let rel = dir.join(name);
            let Ok(text) = std::fs::read_to_string(tree.join(&rel)) else {
                continue;
            };
            // Joined: arm64's `KBUILD_CFLAGS := ... \` has `-Os` on its
            // second line.
            for (i, line) in crate::kernel::linkfix::logical_lines(&text) {
                let line = line.split('#').next().unwrap_or("");
                let own = if depth == 0 {
                    (names_flag(line) && line.contains('='))
                        || (!default_in_command && replaces(line))
                } else {
                    line.contains("subdir-ccflags") && names_flag(line)
                };
                if own {
                    return Some(format!("{}:{}", rel.display(), i + 1));
                }
            }
        }
    }
    None
}

/// One compiled C object to report on.
struct Candidate {
    /// Tree-relative, as the rules key it: `net/ipv4/tcp.o`.
    rel: String,
    /// The object file.
    path: PathBuf,
    /// Its command line (Kbuild's `.cmd`), or the flags the FreeBSD build
    /// recorded for it: the last -O there is the level it was asked for.
    command: String,
    /// A FreeBSD object's own compile command, which may set its level
    /// after the rules' (a `compile-with` of sys/conf/files*).
    own_command: Option<String>,
}

/// Every kernel C object in a Kbuild directory, with what its `.cmd` says.
fn kbuild_candidates(p: &Prepared) -> Result<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for entry in walkdir::WalkDir::new(&p.build_dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != StateDir::NAME)
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
        candidates.push(Candidate {
            rel,
            path: object,
            command: command.to_string(),
            own_command: None,
        });
    }
    Ok(candidates)
}

/// Every C object of a FreeBSD kernel: config(8)'s Makefile names each
/// object's source, and the build recorded the flags it asked for.
fn freebsd_candidates(p: &Prepared) -> Result<Vec<Candidate>> {
    let plan = crate::builder::freebsd::Plan::new(&crate::ctx::project_root(), p)?;
    let recorded = std::fs::read_to_string(p.state().object_flags()).unwrap_or_default();
    let flags: BTreeMap<&str, &str> = recorded
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(' '))
        .collect();
    let dir = plan.kernel_objdir();
    Ok(plan
        .objects()
        .into_iter()
        .filter(|o| dir.join(&o.file).is_file())
        .map(|o| Candidate {
            rel: o.object(),
            path: dir.join(&o.file),
            command: flags.get(o.file.as_str()).unwrap_or(&"").to_string(),
            own_command: o.own_command().map(String::from),
        })
        .collect())
}

/// Every kernel C object in the build dir, with what its command line says
/// and what its DWARF says.
pub fn collect(p: &Prepared, filters: &[String]) -> Result<Vec<ObjectReport>> {
    let recorded = RecordedFallbacks::load(&p.build_dir)?;
    let placement = placement(p, &recorded);
    let mut candidates = match p.freebsd {
        Some(_) => freebsd_candidates(p)?,
        None => kbuild_candidates(p)?,
    };
    candidates.retain(|c| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| c.rel.starts_with(f.trim_end_matches('/')))
    });
    candidates.sort_by(|a, b| a.rel.cmp(&b.rel));
    let summaries = summarize_all(candidates.iter().map(|c| c.path.clone()).collect());
    let mut reports = Vec::new();
    for (candidate, summary) in candidates.into_iter().zip(summaries) {
        let Candidate {
            rel,
            path,
            command,
            own_command,
        } = candidate;
        let (step_name, why) = placement.step_for(&rel);
        let source = source_of(&rel);
        let default_level = why.is_none() && p.profile.rules.rule_for(&source).is_none();
        let Some(step) = p.policy.step(&step_name).cloned().or_else(|| {
            step_name.parse().ok().map(|level| Step {
                name: step_name.clone(),
                level,
                extra: vec![],
                checks_off: None,
                only_by_class: false,
            })
        }) else {
            continue;
        };
        let last_level = command.split_whitespace().rev().find_map(Level::from_flag);
        let default_flag = p.profile.rules.default.flag();
        let default_in_command = command.split_whitespace().any(|w| w == default_flag);
        let (summary, dwarf_error) = match summary {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let actual = summary.as_ref().and_then(|s| s.level);
        let flag_source = match (last_level, own_command) {
            // Its own compile command, and a level other than its rule's.
            (_, Some(own)) if actual.is_some_and(|a| a != step.level) => {
                Some(format!("compile-with \"{own}\" (sys/conf/files*)"))
            }
            (Some(last), _) if default_level && last != step.level => {
                own_flag_source(&p.tree.path, &rel, last, default_in_command)
            }
            _ => None,
        };
        let own_flags = flag_source.is_some();
        reports.push(ObjectReport {
            source,
            object: rel,
            expected_step: step.name.clone(),
            expected: step.level.name().to_string(),
            actual: actual.map(|l| l.name().to_string()),
            command_level: last_level.map(|l| l.name().to_string()),
            own_flags,
            flag_source,
            dwarf_error,
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
        let mark = if r.dwarf_error.is_some() {
            "  UNREADABLE".to_string()
        } else if r.mismatched() {
            "  MISMATCH".to_string()
        } else if let Some(source) = &r.flag_source {
            format!("  (own flags: {source})")
        } else {
            String::new()
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
            command_level: actual.map(String::from),
            own_flags,
            flag_source: own_flags.then(|| "arch/x86/boot/Makefile:55".into()),
            dwarf_error: None,
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

    /// An object at the default level is excused only when its own Makefile
    /// sets its level; one whose level came from nowhere, or whose DWARF
    /// cannot be read, fails.
    #[test]
    fn only_an_objects_own_makefile_excuses_it() {
        let tree = std::env::temp_dir().join(format!("opt-report-tree-{}", std::process::id()));
        let write = |rel: &str, text: &str| {
            let path = tree.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "lib/lz4/Makefile",
            "# SPDX\nccflags-y += -O3\nobj-y += lz4.o\n",
        );
        write(
            "arch/x86/boot/Makefile",
            "# The real mode code\nKBUILD_CFLAGS\t:= $(REALMODE_CFLAGS) -D_SETUP\n",
        );
        write(
            "arch/x86/Makefile",
            "REALMODE_CFLAGS := -m16 -g -Os\nKBUILD_CFLAGS += -O2\n",
        );
        write("Makefile", "KBUILD_CFLAGS += -O2\n");
        write("kernel/Makefile", "obj-y = fork.o\n# -O2 in a comment\n");
        write("drivers/foo/Makefile", "subdir-ccflags-y += -O1\n");
        write("drivers/foo/bar/Makefile", "obj-y += baz.o\n");
        // arm64's early boot code: the flag on a continued line.
        write(
            "arch/arm64/kernel/pi/Makefile",
            "# SPDX\nKBUILD_CFLAGS\t:= $(KBUILD_CFLAGS) -fpie \\\n\t\t   -Os -DDISABLE_BRANCH_PROFILING \\\n\t\t   -ffreestanding\n",
        );
        let source = |object: &str, last: Level, default_in: bool| {
            own_flag_source(&tree, object, last, default_in)
        };
        assert_eq!(
            source("lib/lz4/lz4_decompress.o", Level::O3, true).as_deref(),
            Some("lib/lz4/Makefile:2")
        );
        // The boot code replaces KBUILD_CFLAGS: -Og never reaches it.
        assert_eq!(
            source("arch/x86/boot/main.o", Level::Os, false).as_deref(),
            Some("arch/x86/boot/Makefile:2")
        );
        // Had -Og been on its command line, the replacement is not the story.
        assert_eq!(source("arch/x86/boot/main.o", Level::Os, true), None);
        assert_eq!(
            source("drivers/foo/bar/baz.o", Level::O1, true).as_deref(),
            Some("drivers/foo/Makefile:1")
        );
        // The default never reached the compiler: the top Makefile's -O2 is
        // everyone's, not kernel/fork.o's own.
        assert_eq!(source("kernel/fork.o", Level::O2, false), None);
        assert_eq!(
            source("arch/arm64/kernel/pi/map_range.o", Level::Os, true).as_deref(),
            Some("arch/arm64/kernel/pi/Makefile:2")
        );
        std::fs::remove_dir_all(&tree).unwrap();

        let mut fork = report("kernel/fork.o", "Og", Some("O2"), false, 5);
        fork.ruled = false;
        assert!(fork.mismatched(), "no own Makefile flag: a mismatch");
        let mut unreadable = report("kernel/exit.o", "Og", None, false, 0);
        unreadable.ruled = false;
        unreadable.command_level = Some("Og".into());
        assert!(!unreadable.mismatched());
        unreadable.dwarf_error = Some("cannot read the DWARF of kernel/exit.o".into());
        assert!(unreadable.mismatched(), "an unreadable object fails");
    }
}

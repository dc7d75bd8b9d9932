//! Optimization rules: a default level and per-path levels, resolved by the
//! most specific path, and rendered as the make fragment that carries them to
//! the compiler.
//!
//! The fragment lives in the build directory and reaches Kbuild through
//! `make --eval='include FILE'`: GNU make passes `--eval` to every sub-make
//! through MAKEFLAGS, so no tracked Makefile is edited. It sets target- and
//! pattern-specific variables; Kbuild records each object's command line in
//! its `.cmd` file, so a changed rule rebuilds exactly the objects it covers.

use std::{fmt, str::FromStr};

use crate::study::origin::Origin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    O0,
    O1,
    Og,
    O2,
    O3,
    Os,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::O0,
        Level::O1,
        Level::Og,
        Level::O2,
        Level::O3,
        Level::Os,
    ];

    pub fn flag(self) -> &'static str {
        match self {
            Level::O0 => "-O0",
            Level::O1 => "-O1",
            Level::Og => "-Og",
            Level::O2 => "-O2",
            Level::O3 => "-O3",
            Level::Os => "-Os",
        }
    }

    pub fn name(self) -> &'static str {
        &self.flag()[1..]
    }

    /// The level a gcc or clang `-O` flag selects (the last one wins).
    pub fn from_flag(flag: &str) -> Option<Level> {
        match flag {
            "-O0" => Some(Level::O0),
            "-O1" | "-O" => Some(Level::O1),
            "-Og" => Some(Level::Og),
            "-O2" => Some(Level::O2),
            "-O3" => Some(Level::O3),
            "-Os" | "-Oz" => Some(Level::Os),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = Level::ALL.iter().map(|l| l.name()).collect();
                format!(
                    "unknown optimization level \"{s}\"; valid: {}",
                    valid.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A directory (`net/core`) or a C file (`net/socket.c`), tree-relative.
    pub path: String,
    pub level: Level,
    /// The level is a promise: a link or post-link failure of an object
    /// under it stops the build with the fix, instead of moving the object
    /// up the ladder.
    pub strict: bool,
    pub origin: Origin,
}

impl Rule {
    pub fn is_file(&self) -> bool {
        self.path.ends_with(".c") || self.path.ends_with(".S")
    }

    /// How many path components deep the rule is: deeper is more specific.
    fn depth(&self) -> usize {
        self.path.split('/').count() + usize::from(self.is_file())
    }

    fn covers(&self, source: &str) -> bool {
        if self.is_file() {
            return source == self.path;
        }
        source
            .strip_prefix(&self.path)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptRules {
    pub default: Level,
    /// Sorted from the least to the most specific.
    pub rules: Vec<Rule>,
}

impl OptRules {
    pub fn new(default: Level, mut rules: Vec<Rule>) -> OptRules {
        rules.sort_by(|a, b| a.depth().cmp(&b.depth()).then_with(|| a.path.cmp(&b.path)));
        OptRules { default, rules }
    }

    /// The rule that decides `source` (a tree-relative `.c` path), if any.
    pub fn rule_for(&self, source: &str) -> Option<&Rule> {
        self.rules.iter().rev().find(|r| r.covers(source))
    }

    pub fn level_for(&self, source: &str) -> Level {
        self.rule_for(source).map_or(self.default, |r| r.level)
    }
}

/// Flags for one object beyond its rule: a fallback or a known exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFlags {
    /// Tree-relative object path, e.g. `mm/page_alloc.o`.
    pub object: String,
    pub cflags: Vec<String>,
    pub why: String,
}

/// The make targets one source path stands for: the object, and the `.s` and
/// `.i` Kbuild makes from the same flags (`make net/ipv4/tcp.s`).
fn targets(stem: &str) -> String {
    format!("{stem}.o {stem}.s {stem}.i")
}

/// With split DWARF, each object finds its `.dwo` through DW_AT_comp_dir,
/// the build directory. ccache hands one object to every build directory of
/// a tree (it does not hash the working directory: builder/ccache.rs), so an
/// absolute comp_dir would send gdb to the directory that filled the cache,
/// gone or rebuilt since. `.` reads as the directory of whoever reads it:
/// gdb, libdw (drgn) and analysis/dwarf/split.rs look beside vmlinux. GCC
/// maps by string prefix, the last match first: the identity map after it
/// keeps a tree beside the build directory (`/x/b-kernel` by `/x/b`)
/// absolute, unless the build directory is inside the tree. Recursive, so it
/// expands where Kbuild appends KCFLAGS, after it has read the .config.
const SPLIT_DWARF_MAPS: &str = "study-split-dwarf-maps = -fdebug-prefix-map=$(abs_objtree)=. \
$(if $(filter $(abs_srctree)/%,$(abs_objtree)),,-fdebug-prefix-map=$(abs_srctree)=$(abs_srctree))\n";

/// The make fragment for a profile's rules plus per-object flags, and the
/// linker's flags for vmlinux (`vmlinux_ldflags`).
///
/// Precedence follows GNU make: pattern-specific values with shorter stems
/// (more specific directories) are applied after longer ones, and
/// target-specific values after all patterns, so one `study-cflags` value,
/// the most specific, reaches each object.
pub fn render_makefile(
    profile: &str,
    rules: &OptRules,
    objects: &[ObjectFlags],
    extra_kcflags: &[String],
    vmlinux_ldflags: &[String],
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Generated by `cargo xtask config` for profile `{profile}`; do not edit.\n\
         # Kbuild reads it through `make --eval='include <this file>'`, which GNU make\n\
         # passes to every sub-make. Kbuild records each object's command line in its\n\
         # .cmd file, so a changed line here rebuilds exactly the objects it covers.\n\n"
    ));
    let kcflags: Vec<String> = std::iter::once(rules.default.flag().to_string())
        .chain(extra_kcflags.iter().cloned())
        .collect();
    out.push_str(&format!(
        "# The default level, for the whole kernel.\nKCFLAGS = {}$(if $(CONFIG_DEBUG_INFO_SPLIT), $(study-split-dwarf-maps))\n",
        kcflags.join(" ")
    ));
    out.push_str(SPLIT_DWARF_MAPS);
    if !vmlinux_ldflags.is_empty() {
        // Kbuild's top Makefile resets LDFLAGS_vmlinux and exports it to
        // scripts/Makefile.vmlinux, the sub-make that links vmlinux: the
        // append lands there, and expands there, after auto.conf.
        out.push_str(&format!(
            "\n# The links of vmlinux: lld writes gdb's index (xtask/src/study/toolchain.rs, Linker::vmlinux_ldflags).\n\
             LDFLAGS_vmlinux += {}\n",
            vmlinux_ldflags.join(" ")
        ));
    }
    if !rules.rules.is_empty() {
        out.push_str("\n# Rules from the profile, least specific first.\n");
    }
    for rule in &rules.rules {
        let stem = if rule.is_file() {
            targets(&rule.path[..rule.path.len() - 2])
        } else {
            targets(&format!("{}/%", rule.path))
        };
        // The rule's own line, by file name: the same text from every
        // clone, and a layer's rules (follow.toml) told from the profile's.
        let from = rule
            .origin
            .file
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        out.push_str(&format!(
            "# {from}:{}\n{stem}: private study-cflags := {}\n",
            rule.origin.line,
            rule.level.flag()
        ));
    }
    if !objects.is_empty() {
        out.push_str("\n# Per-object flags: known exceptions and recorded fallbacks.\n");
    }
    for object in objects {
        let stem = object.object.strip_suffix(".o").unwrap_or(&object.object);
        out.push_str(&format!("# {}\n", object.why.replace('\n', " ")));
        out.push_str(&format!(
            "{}: private study-cflags := {}\n",
            targets(stem),
            object.cflags.join(" ")
        ));
    }
    out.push_str("\n%.o %.s %.i: private ccflags-y += $(study-cflags)\n");
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use expect_test::expect;

    use super::*;

    fn rule(path: &str, level: Level) -> Rule {
        let origin = Origin {
            file: PathBuf::from("study.toml"),
            line: 1,
            column: 1,
        };
        Rule {
            path: path.into(),
            level,
            strict: false,
            origin,
        }
    }

    fn sample() -> OptRules {
        OptRules::new(
            Level::Og,
            vec![
                rule("net/core/sock.c", Level::Og),
                rule("net", Level::O2),
                rule("net/core", Level::O0),
                rule("net/socket.c", Level::O0),
            ],
        )
    }

    #[test]
    fn most_specific_rule_wins() {
        let rules = sample();
        assert_eq!(rules.level_for("mm/memory.c"), Level::Og);
        assert_eq!(rules.level_for("net/ipv4/tcp.c"), Level::O2);
        assert_eq!(rules.level_for("net/core/dev.c"), Level::O0);
        assert_eq!(rules.level_for("net/core/sub/x.c"), Level::O0);
        assert_eq!(rules.level_for("net/core/sock.c"), Level::Og);
        assert_eq!(rules.level_for("net/socket.c"), Level::O0);
        // A prefix is not a parent directory.
        assert_eq!(rules.level_for("network/x.c"), Level::Og);
        assert_eq!(rules.level_for("net/core2/x.c"), Level::O2);
    }

    #[test]
    fn makefile_text() {
        let objects = vec![ObjectFlags {
            object: "mm/page_alloc.o".into(),
            cflags: vec!["-O2".into()],
            why: "fallback from Og: BUILD_BUG()".into(),
        }];
        expect![[r#"
            # Generated by `cargo xtask config` for profile `study`; do not edit.
            # Kbuild reads it through `make --eval='include <this file>'`, which GNU make
            # passes to every sub-make. Kbuild records each object's command line in its
            # .cmd file, so a changed line here rebuilds exactly the objects it covers.

            # The default level, for the whole kernel.
            KCFLAGS = -Og$(if $(CONFIG_DEBUG_INFO_SPLIT), $(study-split-dwarf-maps))
            study-split-dwarf-maps = -fdebug-prefix-map=$(abs_objtree)=. $(if $(filter $(abs_srctree)/%,$(abs_objtree)),,-fdebug-prefix-map=$(abs_srctree)=$(abs_srctree))

            # Rules from the profile, least specific first.
            # study.toml:1
            net/%.o net/%.s net/%.i: private study-cflags := -O2
            # study.toml:1
            net/core/%.o net/core/%.s net/core/%.i: private study-cflags := -O0
            # study.toml:1
            net/socket.o net/socket.s net/socket.i: private study-cflags := -O0
            # study.toml:1
            net/core/sock.o net/core/sock.s net/core/sock.i: private study-cflags := -Og

            # Per-object flags: known exceptions and recorded fallbacks.
            # fallback from Og: BUILD_BUG()
            mm/page_alloc.o mm/page_alloc.s mm/page_alloc.i: private study-cflags := -O2

            %.o %.s %.i: private ccflags-y += $(study-cflags)
        "#]]
        .assert_eq(&render_makefile("study", &sample(), &objects, &[], &[]));
    }

    /// Real make in `dir`, study.mk evaluated first, as on the tool's make
    /// command line; what it printed.
    fn make_with_study_mk(dir: &Path, targets: &[&str]) -> String {
        let output = std::process::Command::new("make")
            .current_dir(dir)
            .args(["-s", "--eval=include study.mk"])
            .args(targets)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs the real GNU make on the generated text, the way Kbuild's
    /// sub-makes see it, and checks that each object gets the flags
    /// `level_for` promises.
    #[test]
    fn real_make_applies_the_most_specific_rule() {
        let dir = std::env::temp_dir().join(format!("opt-rules-make-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let objects = vec![ObjectFlags {
            object: "net/core/dev.o".into(),
            cflags: vec!["-Og".into(), "-U__OPTIMIZE__".into()],
            why: "test".into(),
        }];
        std::fs::write(
            dir.join("study.mk"),
            render_makefile("t", &sample(), &objects, &[], &[]),
        )
        .unwrap();
        // Like scripts/Makefile.build: ccflags-y is reset, then appended to.
        std::fs::write(
            dir.join("Makefile"),
            "ccflags-y := -Ikbuild\n%.o %.s:\n\t@echo $@: $(KCFLAGS) $(ccflags-y)\n",
        )
        .unwrap();
        let output = make_with_study_mk(
            &dir,
            &[
                "mm/memory.o",
                "net/ipv4/tcp.o",
                "net/core/sock.o",
                "net/core/dev.o",
                "net/core/skbuff.o",
                "net/socket.s",
            ],
        );
        expect![[r#"
            mm/memory.o: -Og -Ikbuild
            net/ipv4/tcp.o: -Og -Ikbuild -O2
            net/core/sock.o: -Og -Ikbuild -Og
            net/core/dev.o: -Og -Ikbuild -Og -U__OPTIMIZE__
            net/core/skbuff.o: -Og -Ikbuild -O0
            net/socket.s: -Og -Ikbuild -O0
        "#]]
        .assert_eq(&output);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The linker's flags reach the sub-make that links vmlinux, through
    /// real make laid out as Kbuild's: the top Makefile resets
    /// LDFLAGS_vmlinux and exports it to scripts/Makefile.vmlinux, which
    /// reads auto.conf. gdb's index only where split DWARF is on.
    #[test]
    fn the_linkers_flags_reach_the_link_of_vmlinux_only_with_split_dwarf() {
        let dir = std::env::temp_dir().join(format!("opt-rules-ld-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ldflags = crate::study::toolchain::Linker::Lld.vmlinux_ldflags();
        std::fs::write(
            dir.join("study.mk"),
            render_makefile("t", &OptRules::new(Level::Og, vec![]), &[], &[], &ldflags),
        )
        .unwrap();
        std::fs::write(
            dir.join("Makefile"),
            "LDFLAGS_vmlinux =\nLDFLAGS_vmlinux += --build-id=sha1\n\
             vmlinux: private _LDFLAGS_vmlinux := $(LDFLAGS_vmlinux)\n\
             vmlinux: export LDFLAGS_vmlinux = $(_LDFLAGS_vmlinux)\n\
             vmlinux:\n\t@$(MAKE) -s -f Makefile.vmlinux\n\
             other:\n\t@echo other: $(LDFLAGS_vmlinux)\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("Makefile.vmlinux"),
            "include auto.conf\nvmlinux:\n\t@echo link: $(LDFLAGS_vmlinux)\n",
        )
        .unwrap();
        let make = |config: &str| {
            std::fs::write(dir.join("auto.conf"), config).unwrap();
            make_with_study_mk(&dir, &["vmlinux", "other"])
        };
        assert_eq!(
            make("CONFIG_DEBUG_INFO_SPLIT=y\n"),
            "link: --build-id=sha1 --gdb-index\nother: --build-id=sha1\n"
        );
        assert_eq!(make(""), "link: --build-id=sha1\nother: --build-id=sha1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Split DWARF's comp_dir maps, through real make and gcc: the build
    /// directory becomes `.`, and a tree whose path the build directory's
    /// is a prefix of (`b` and `b-kernel`) keeps its absolute source names.
    #[test]
    fn split_dwarf_names_the_build_directory_dot_and_keeps_the_tree_absolute() {
        let dir = std::env::temp_dir().join(format!("opt-rules-split-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (objtree, srctree) = (dir.join("b"), dir.join("b-kernel"));
        std::fs::create_dir_all(&objtree).unwrap();
        std::fs::create_dir_all(&srctree).unwrap();
        std::fs::write(
            srctree.join("t.c"),
            "int study_t(int x) { return x + 1; }\n",
        )
        .unwrap();
        std::fs::write(
            objtree.join("study.mk"),
            render_makefile("t", &OptRules::new(Level::Og, vec![]), &[], &[], &[]),
        )
        .unwrap();
        // As Kbuild's top Makefile: the .config first, KCFLAGS after it.
        std::fs::write(
            objtree.join("Makefile"),
            "CONFIG_DEBUG_INFO_SPLIT := y\nflags := $(KCFLAGS)\n\
             t.o: $(abs_srctree)/t.c\n\tgcc -g -gsplit-dwarf $(flags) -c $< -o $@\n",
        )
        .unwrap();
        let make = |objtree: &Path, srctree: &Path| {
            std::process::Command::new("make")
                .current_dir(objtree)
                .arg("-s")
                .arg("--eval=include study.mk")
                .arg(format!("abs_objtree={}", objtree.display()))
                .arg(format!("abs_srctree={}", srctree.display()))
                .arg("t.o")
                .output()
                .unwrap()
        };
        let output = make(&objtree, &srctree);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let contains = |file: &Path, text: &str| {
            let bytes = std::fs::read(file).unwrap();
            bytes.windows(text.len()).any(|w| w == text.as_bytes())
        };
        let source = srctree.join("t.c").display().to_string();
        assert!(
            contains(&objtree.join("t.dwo"), &source),
            "the .dwo names {source}"
        );
        // comp_dir, a string of its own: the source's name holds the
        // build directory's path as a prefix.
        let comp_dir = |dir: &Path| format!("{}\0", dir.display());
        assert!(!contains(&objtree.join("t.o"), &comp_dir(&objtree)));
        assert!(contains(&objtree.join("t.o"), "\0.\0"));
        assert!(!contains(&objtree.join("t.dwo"), ".-kernel"));

        // A build directory inside the tree: the identity map would win over
        // the build directory's, so it is left out.
        let inside = srctree.join("out");
        std::fs::create_dir_all(&inside).unwrap();
        for file in ["study.mk", "Makefile"] {
            std::fs::copy(objtree.join(file), inside.join(file)).unwrap();
        }
        let output = make(&inside, &srctree);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!contains(&inside.join("t.o"), &comp_dir(&inside)));
        assert!(contains(&inside.join("t.dwo"), &source));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

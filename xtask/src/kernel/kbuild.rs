//! Pure builders for the `make` command lines Kbuild is driven with.

use std::path::{Path, PathBuf};

use xshell::{cmd, Cmd, Shell};

/// The generated make fragment in a build directory.
pub fn overrides_path(build_dir: &Path) -> PathBuf {
    build_dir.join("study.mk")
}

/// What Kbuild keeps of one compiled object (`kernel/sched/core.o`,
/// relative to the build directory): the object, its split DWARF (`.dwo`,
/// written by the same compile when DEBUG_INFO_SPLIT is on) and the
/// command it was made with (`.core.o.cmd`, which if_changed compares
/// with the next command line).
pub fn object_outputs(build_dir: &Path, object: &str) -> [PathBuf; 3] {
    let path = build_dir.join(object);
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    [
        path.with_extension("dwo"),
        path.with_file_name(format!(".{name}.cmd")),
        path,
    ]
}

/// `make -C TREE O=DIR ARCH=A [VARS] TARGET`: the Kconfig steps.
pub fn config_make<'a>(
    sh: &'a Shell,
    tree: &Path,
    out_dir: &Path,
    make_arch: &str,
    vars: &[String],
    target: &str,
) -> Cmd<'a> {
    cmd!(
        sh,
        "make -C {tree} O={out_dir} ARCH={make_arch} {vars...} {target}"
    )
}

/// How a build invocation is set up beyond the targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    pub jobs: usize,
    pub keep_going: bool,
    /// `CC=...`: e.g. `ccache gcc`.
    pub cc: Option<String>,
    pub env: Vec<(String, String)>,
    pub extra: Vec<String>,
}

/// `make -C TREE O=DIR ARCH=A --eval='include DIR/study.mk' -jN TARGETS`.
pub fn build_make<'a>(
    sh: &'a Shell,
    tree: &Path,
    build_dir: &Path,
    make_arch: &str,
    opts: &BuildOptions,
    targets: &[&str],
) -> Cmd<'a> {
    let eval = format!("--eval=include {}", overrides_path(build_dir).display());
    let jobs = opts.jobs.to_string();
    let keep_going = opts.keep_going.then_some("-k");
    let cc = opts.cc.as_ref().map(|cc| format!("CC={cc}"));
    let extra = &opts.extra;
    cmd!(
        sh,
        "make -C {tree} O={build_dir} ARCH={make_arch} {eval} -j{jobs} {keep_going...} {cc...} {extra...} {targets...}"
    )
    .envs(opts.env.iter().map(|(k, v)| (k, v)))
}

/// The directories make must enter to rebuild `objects` (paths relative
/// to the build directory), each with every directory above it: Kbuild
/// reaches a directory only through its parent's walk, and links what a
/// directory built through each archive above it. Sorted, `.` first.
pub fn walked_dirs<S: AsRef<str>>(objects: &[S]) -> Vec<String> {
    let mut dirs = std::collections::BTreeSet::from([".".to_string()]);
    for object in objects {
        let mut dir = Path::new(object.as_ref()).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.display().to_string());
            dir = d.parent();
        }
    }
    dirs.into_iter().collect()
}

/// A makefile that stands in for scripts/Makefile.build (through
/// [`walk_filter_var`]): in the directories named, and in every
/// directory under a prefix, it is Makefile.build; anywhere else it makes
/// nothing and says nothing. make then walks only the path to what
/// changed, with Kbuild's own rules, flags and `.cmd` files, so its result
/// is the full walk's. tools/ (objtool) reads `build` too, and is left as
/// it was built.
pub fn walk_filter(tree: &Path, dirs: &[String], prefixes: &[String]) -> String {
    let patterns: Vec<String> = dirs
        .iter()
        .cloned()
        .chain(prefixes.iter().flat_map(|p| [p.clone(), format!("{p}/%")]))
        .collect();
    format!(
        "# Written by linux-study for one build of what changed: make enters only\n\
         # these directories (the path to each changed object) and does nothing elsewhere.\n\
         ifneq ($(filter {patterns},$(obj)),)\n\
         include {build}\n\
         else\n\
         __build:\n\
         \t@:\n\
         $(MAKEFILE_LIST): ;\n\
         %::\n\
         \t@:\n\
         .PHONY: __build\n\
         endif\n",
        patterns = patterns.join(" "),
        build = tree.join("scripts/Makefile.build").display(),
    )
}

/// make's command-line variable that puts `filter` where every recursive
/// make names scripts/Makefile.build (Kbuild.include's `build`); a
/// command-line variable reaches every sub-make.
pub fn walk_filter_var(filter: &Path) -> String {
    format!("build=-f {} obj", filter.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::exec::cmd_text;

    #[test]
    fn the_walk_enters_each_changed_objects_directory_and_those_above() {
        assert_eq!(
            walked_dirs(&["net/ipv4/tcp.o", "net/core/dev.o", ".vmlinux.export.o"]),
            [".", "net", "net/core", "net/ipv4"]
        );
        assert_eq!(walked_dirs::<&str>(&[]), ["."]);
    }

    #[test]
    fn the_walk_filter_is_makefile_build_only_where_named() {
        let text = walk_filter(
            Path::new("/k"),
            &[".".into(), "net".into()],
            &["arch/x86/boot".into()],
        );
        assert!(text.contains(
            "ifneq ($(filter . net arch/x86/boot arch/x86/boot/%,$(obj)),)\ninclude /k/scripts/Makefile.build\nelse\n"
        ));
        assert!(text.contains("%::\n\t@:\n"), "{text}");
        assert_eq!(
            walk_filter_var(Path::new("/b/.study/walk.mk")),
            "build=-f /b/.study/walk.mk obj"
        );
    }

    #[test]
    fn an_objects_outputs_are_the_object_its_dwo_and_its_cmd() {
        assert_eq!(
            object_outputs(Path::new("/b"), "kernel/sched/core.o"),
            [
                PathBuf::from("/b/kernel/sched/core.dwo"),
                PathBuf::from("/b/kernel/sched/.core.o.cmd"),
                PathBuf::from("/b/kernel/sched/core.o"),
            ]
        );
    }

    #[test]
    fn config_argv() {
        let sh = Shell::new().unwrap();
        let cmd = config_make(
            &sh,
            Path::new("/src/linux"),
            Path::new("/b/tiny/.study/kconfig"),
            "x86_64",
            &[],
            "tinyconfig",
        );
        assert_eq!(
            cmd_text(cmd),
            "make -C /src/linux O=/b/tiny/.study/kconfig ARCH=x86_64 tinyconfig"
        );
        let llvm = ["LLVM=1".to_string()];
        let cmd = config_make(
            &sh,
            Path::new("/src/linux"),
            Path::new("/b/k"),
            "x86_64",
            &llvm,
            "olddefconfig",
        );
        assert_eq!(
            cmd_text(cmd),
            "make -C /src/linux O=/b/k ARCH=x86_64 LLVM=1 olddefconfig"
        );
    }

    #[test]
    fn build_argv() {
        let opts = BuildOptions {
            jobs: 24,
            keep_going: true,
            cc: Some("ccache gcc".into()),
            env: vec![("KBUILD_BUILD_TIMESTAMP".into(), "@0".into())],
            extra: vec!["V=1".into()],
        };
        let sh = Shell::new().unwrap();
        let cmd = build_make(
            &sh,
            Path::new("/src/linux"),
            Path::new("/b/tiny"),
            "x86_64",
            &opts,
            &["vmlinux", "bzImage"],
        );
        assert_eq!(
            cmd_text(cmd),
            "KBUILD_BUILD_TIMESTAMP=@0 make -C /src/linux O=/b/tiny ARCH=x86_64 \
             '--eval=include /b/tiny/study.mk' -j24 -k 'CC=ccache gcc' V=1 vmlinux bzImage"
        );
    }
}

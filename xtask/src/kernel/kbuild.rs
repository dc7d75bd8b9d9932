//! Pure builders for the `make` command lines Kbuild is driven with.

use std::path::{Path, PathBuf};

use xshell::{cmd, Cmd, Shell};

/// The generated make fragment in a build directory.
pub fn overrides_path(build_dir: &Path) -> PathBuf {
    build_dir.join("study.mk")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::exec::cmd_text;

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

//! Pure builders for the `make` command lines Kbuild is driven with.

use std::path::{Path, PathBuf};

use crate::exec::Command;

/// The generated make fragment in a build directory.
pub fn overrides_path(build_dir: &Path) -> PathBuf {
    build_dir.join("study.mk")
}

/// `make -C TREE O=DIR ARCH=A [VARS] TARGET`: the Kconfig steps.
pub fn config_make(
    tree: &Path,
    out_dir: &Path,
    make_arch: &str,
    vars: &[String],
    target: &str,
) -> Command {
    Command::new("make")
        .arg("-C")
        .arg(tree.display().to_string())
        .arg(format!("O={}", out_dir.display()))
        .arg(format!("ARCH={make_arch}"))
        .args(vars.iter().cloned())
        .arg(target)
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
pub fn build_make(
    tree: &Path,
    build_dir: &Path,
    make_arch: &str,
    opts: &BuildOptions,
    targets: &[&str],
) -> Command {
    let mut cmd = Command::new("make")
        .arg("-C")
        .arg(tree.display().to_string())
        .arg(format!("O={}", build_dir.display()))
        .arg(format!("ARCH={make_arch}"))
        .arg(format!(
            "--eval=include {}",
            overrides_path(build_dir).display()
        ))
        .arg(format!("-j{}", opts.jobs));
    if opts.keep_going {
        cmd = cmd.arg("-k");
    }
    if let Some(cc) = &opts.cc {
        cmd = cmd.arg(format!("CC={cc}"));
    }
    for (key, value) in &opts.env {
        cmd = cmd.env(key, value);
    }
    cmd.args(opts.extra.iter().cloned())
        .args(targets.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_argv() {
        let cmd = config_make(
            Path::new("/src/linux"),
            Path::new("/b/tiny/.study/kconfig"),
            "x86_64",
            &[],
            "tinyconfig",
        );
        assert_eq!(
            cmd.to_shell(),
            "make -C /src/linux O=/b/tiny/.study/kconfig ARCH=x86_64 tinyconfig"
        );
        let llvm = ["LLVM=1".to_string()];
        let cmd = config_make(
            Path::new("/src/linux"),
            Path::new("/b/k"),
            "x86_64",
            &llvm,
            "olddefconfig",
        );
        assert_eq!(
            cmd.to_shell(),
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
        let cmd = build_make(
            Path::new("/src/linux"),
            Path::new("/b/tiny"),
            "x86_64",
            &opts,
            &["vmlinux", "bzImage"],
        );
        assert_eq!(
            cmd.to_shell(),
            "KBUILD_BUILD_TIMESTAMP=@0 make -C /src/linux O=/b/tiny ARCH=x86_64 \
             '--eval=include /b/tiny/study.mk' -j24 -k 'CC=ccache gcc' V=1 vmlinux bzImage"
        );
    }
}

//! The CI matrix (ci/matrix.toml): the test run, the kernel trees, the
//! entries and their steps.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::{
    study::{origin::toml_error, toolchain::Toolchain},
    util::fsutil,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub test: Test,
    pub kernel: Vec<Kernel>,
    pub step: Vec<Step>,
    pub entry: Vec<Entry>,
}

/// The README's test command: once per CI run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub run: Vec<String>,
}

/// A kernel tree an entry builds, and where it comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub name: String,
    /// Where `cargo xtask ci` keeps it, relative to the repo root.
    pub dir: String,
    /// Debian's release tarball, unpacked into `dir` when `dir` is empty.
    #[serde(default)]
    pub tarball: Option<String>,
    /// A submodule holding the tree (GitHub checks it out).
    #[serde(default)]
    pub submodule: Option<String>,
    /// A git repository and tag the workflow clones into `dir`.
    #[serde(default)]
    pub git: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub run: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub profile: String,
    /// A `[[kernel]]`'s name.
    pub kernel: String,
    pub cc: String,
    /// A file under study/arch/: x86_64, arm64, um.
    pub arch: String,
    #[serde(default)]
    pub local: bool,
    /// Steps that do not apply to this entry (`trace` on UML, which has no
    /// function_graph): reported as n/a.
    #[serde(default)]
    pub skip: Vec<String>,
}

pub const MATRIX: &str = "ci/matrix.toml";
/// The name `cargo xtask ci` gives the test run.
pub const TEST: &str = "test";
/// How `cargo xtask ci` gets an entry's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    /// `dir`, or the submodule, holds it.
    Ready(PathBuf),
    /// Unpack the tarball into the directory first.
    Unpack { tarball: PathBuf, dir: PathBuf },
    /// Nothing here: how to get it.
    Missing(String),
}

fn has_tree(dir: &Path) -> bool {
    dir.join("Makefile").is_file() && dir.join("Kconfig").is_file()
}

impl Kernel {
    /// The tree's directory here: `dir` when it holds a tree, else the
    /// tarball unpacked into it, else the submodule when checked out.
    /// Paths stay relative to `root` (the steps run there).
    pub fn resolve(&self, root: &Path) -> TreeSource {
        let dir = PathBuf::from(&self.dir);
        if has_tree(&root.join(&dir)) {
            return TreeSource::Ready(dir);
        }
        if let Some(tarball) = &self.tarball {
            if Path::new(tarball).is_file() {
                return TreeSource::Unpack {
                    tarball: tarball.into(),
                    dir,
                };
            }
        }
        if let Some(sub) = &self.submodule {
            if has_tree(&root.join(sub)) {
                return TreeSource::Ready(sub.into());
            }
        }
        TreeSource::Missing(self.how_to_get())
    }

    fn how_to_get(&self) -> String {
        let mut ways = Vec::new();
        if let Some(tarball) = &self.tarball {
            let package = Path::new(tarball)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split(".tar").next())
                .unwrap_or("linux-source");
            ways.push(format!(
                "on Debian `apt-get install {package}` (`cargo xtask ci` then unpacks {tarball} into {})",
                self.dir
            ));
        }
        if let Some(sub) = &self.submodule {
            ways.push(format!("`git submodule update --init --depth 1 {sub}`"));
        }
        if let Some(clone) = self.clone_command() {
            ways.push(format!("`{clone}`"));
        }
        format!(
            "no Linux {} tree in {}: {}",
            self.name,
            self.dir,
            ways.join(", or ")
        )
    }

    /// `git clone --depth 1 --branch TAG URL DIR`, for a kernel with `git`.
    pub fn clone_command(&self) -> Option<String> {
        let (git, tag) = (self.git.as_ref()?, self.tag.as_ref()?);
        Some(format!(
            "git clone --depth 1 --branch {tag} {git} {}",
            self.dir
        ))
    }
}

impl Matrix {
    /// The matrix in `ci_dir` (the repository's `ci/`).
    pub fn load(ci_dir: &Path) -> Result<Matrix> {
        let path = ci_dir.join("matrix.toml");
        let text = fsutil::read_to_string(&path)?;
        let matrix: Matrix = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
        matrix
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(matrix)
    }

    fn check(&self) -> Result<()> {
        if self.test.run.is_empty() {
            bail!("[test] has an empty `run`");
        }
        if let Some(step) = self.step.iter().find(|s| s.run.is_empty()) {
            bail!(
                "step `{}` has an empty `run`; give the command as a list, e.g. [\"cargo\", \"test\"]",
                step.name
            );
        }
        for k in &self.kernel {
            if k.git.is_some() != k.tag.is_some() {
                bail!("kernel `{}`: `git` and `tag` go together", k.name);
            }
            if k.git.is_none() && k.submodule.is_none() {
                bail!(
                    "kernel `{}`: GitHub's runners have no linux-source packages; give it a \
                     `submodule` or `git` and `tag`",
                    k.name
                );
            }
        }
        for e in &self.entry {
            if e.name == TEST {
                bail!("`{TEST}` is the test run's name; name the entry otherwise");
            }
            self.kernel_of(e)?;
            if let Err(why) = e.cc.parse::<Toolchain>() {
                bail!("entry `{}`: cc: {why}", e.name);
            }
            if let Some(bad) = e
                .skip
                .iter()
                .find(|s| !self.step.iter().any(|st| &st.name == *s))
            {
                bail!(
                    "entry `{}`: skip names `{bad}`, which is not a step; steps: {}",
                    e.name,
                    self.step
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(())
    }

    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.entry.iter().find(|e| e.name == name).ok_or_else(|| {
            let mut valid: Vec<&str> = vec![TEST];
            valid.extend(self.entry.iter().map(|e| e.name.as_str()));
            anyhow::anyhow!("unknown CI entry '{name}'; valid: {}", valid.join(", "))
        })
    }

    pub fn kernel_of(&self, entry: &Entry) -> Result<&Kernel> {
        self.kernel
            .iter()
            .find(|k| k.name == entry.kernel)
            .ok_or_else(|| {
                let valid: Vec<&str> = self.kernel.iter().map(|k| k.name.as_str()).collect();
                anyhow::anyhow!(
                    "entry `{}`: no [[kernel]] named '{}'; valid: {}",
                    entry.name,
                    entry.kernel,
                    valid.join(", ")
                )
            })
    }
}

impl Entry {
    /// A step's argv for this entry, on the tree in `kernel_dir`.
    pub fn argv(&self, step: &Step, kernel_dir: &str) -> Vec<String> {
        step.run
            .iter()
            .map(|a| {
                a.replace("{profile}", &self.profile)
                    .replace("{cc}", &self.cc)
                    .replace("{arch}", &self.arch)
                    .replace("{entry}", &self.name)
                    .replace("{kernel}", kernel_dir)
            })
            .collect()
    }
}

/// The argv that gets and describes an entry's tree: `cargo xtask kernel`,
/// with `--tarball` when it unpacks; `None` when the tree is missing.
pub fn kernel_argv(source: &TreeSource) -> Option<Vec<String>> {
    let words = |dir: &Path| {
        vec!["cargo", "xtask", "kernel", "--kernel"]
            .into_iter()
            .map(String::from)
            .chain([dir.display().to_string()])
            .collect::<Vec<_>>()
    };
    match source {
        TreeSource::Ready(dir) => Some(words(dir)),
        TreeSource::Unpack { tarball, dir } => {
            let mut argv = words(dir);
            argv.extend(["--tarball".to_string(), tarball.display().to_string()]);
            Some(argv)
        }
        TreeSource::Missing(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_argv_names_the_tree() {
        let matrix = Matrix::load(&crate::ctx::project_root().join("ci")).unwrap();
        let entry = matrix.entry("tiny-6.12-clang-x86_64").unwrap();
        let build = matrix.step.iter().find(|s| s.name == "build").unwrap();
        assert_eq!(
            entry.argv(build, "target/kernels/linux-6.12").join(" "),
            "cargo xtask build --kernel target/kernels/linux-6.12 --profile tiny --cc clang \
             --arch x86_64 --build-dir build/tiny-6.12-clang-x86_64"
        );
        for step in &matrix.step {
            assert!(
                entry
                    .argv(step, "K")
                    .windows(2)
                    .any(|w| w == ["--kernel", "K"]),
                "step {} has no --kernel",
                step.name
            );
        }
        let names: Vec<&str> = matrix.entry.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            matrix.entry("nope").unwrap_err().to_string(),
            format!("unknown CI entry 'nope'; valid: test, {}", names.join(", "))
        );
        let local: Vec<(&str, &str)> = matrix
            .entry
            .iter()
            .filter(|e| e.local)
            .map(|e| (e.name.as_str(), e.kernel.as_str()))
            .collect();
        // `.ci/run` proves the pinned tree and UML, whose builds fit its
        // budget; GitHub proves both trees.
        assert!(local.iter().any(|(_, k)| *k == "6.12"), "{local:?}");
        assert!(matrix.entry.iter().any(|e| e.local && e.arch == "um"));
        for kernel in ["6.12", "6.1"] {
            assert!(matrix.entry.iter().any(|e| e.kernel == kernel));
        }
    }

    #[test]
    fn trees_resolve_dir_then_tarball_then_submodule() {
        let tmp = std::env::temp_dir().join(format!("study-matrix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("sub")).unwrap();
        let tarball = tmp.join("linux-source-6.1.tar.xz");
        std::fs::write(&tarball, "").unwrap();
        let mut k = Kernel {
            name: "6.1".into(),
            dir: "kernels/linux-6.1".into(),
            tarball: Some(tarball.display().to_string()),
            submodule: Some("sub".into()),
            git: Some("https://example.invalid/linux.git".into()),
            tag: Some("v6.1".into()),
        };
        let unpack = k.resolve(&tmp);
        assert_eq!(
            unpack,
            TreeSource::Unpack {
                tarball: tarball.clone(),
                dir: "kernels/linux-6.1".into()
            }
        );
        assert_eq!(
            kernel_argv(&unpack).unwrap().join(" "),
            format!(
                "cargo xtask kernel --kernel kernels/linux-6.1 --tarball {}",
                tarball.display()
            )
        );
        std::fs::remove_file(&tarball).unwrap();
        let missing = k.resolve(&tmp);
        assert_eq!(
            missing,
            TreeSource::Missing(format!(
                "no Linux 6.1 tree in kernels/linux-6.1: on Debian `apt-get install \
                 linux-source-6.1` (`cargo xtask ci` then unpacks {} into kernels/linux-6.1), or \
                 `git submodule update --init --depth 1 sub`, or `git clone --depth 1 --branch \
                 v6.1 https://example.invalid/linux.git kernels/linux-6.1`",
                tarball.display()
            ))
        );
        assert_eq!(kernel_argv(&missing), None);
        for f in ["Makefile", "Kconfig"] {
            std::fs::write(tmp.join("sub").join(f), "").unwrap();
        }
        assert_eq!(k.resolve(&tmp), TreeSource::Ready("sub".into()));
        std::fs::create_dir_all(tmp.join(&k.dir)).unwrap();
        for f in ["Makefile", "Kconfig"] {
            std::fs::write(tmp.join(&k.dir).join(f), "").unwrap();
        }
        k.submodule = None;
        assert_eq!(
            kernel_argv(&k.resolve(&tmp)).unwrap().join(" "),
            "cargo xtask kernel --kernel kernels/linux-6.1"
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

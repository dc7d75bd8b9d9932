//! The compiler a build uses: a family (gcc, or clang with the LLVM tools)
//! and, when the user names one, a version (`gcc-11`, `clang-19`), which
//! Kbuild gets as `CC=gcc-11` or `LLVM=-19`.

use std::{fmt, str::FromStr};

/// gcc, or clang with the LLVM tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Family {
    #[default]
    Gcc,
    Clang,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Gcc => "gcc",
            Family::Clang => "clang",
        }
    }

    /// Flags added to the default level: clang records its command line in
    /// DW_AT_producer only when asked, and opt-report reads the level there.
    pub fn extra_kcflags(self) -> Vec<String> {
        match self {
            Family::Gcc => Vec::new(),
            Family::Clang => vec!["-grecord-command-line".to_string()],
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Family, String> {
        match s {
            "gcc" => Ok(Family::Gcc),
            "clang" => Ok(Family::Clang),
            other => Err(format!(
                "unknown compiler family \"{other}\"; valid: gcc, clang"
            )),
        }
    }
}

/// A compiler as the user names it: `gcc` (whatever `gcc` is on PATH),
/// `gcc-11`, `clang`, `clang-19`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Toolchain {
    pub family: Family,
    /// The major version in the program's name (`gcc-11`); `None` for the
    /// unversioned program.
    pub version: Option<u32>,
}

impl Toolchain {
    pub const GCC: Toolchain = Toolchain {
        family: Family::Gcc,
        version: None,
    };
    #[cfg(test)]
    pub const CLANG: Toolchain = Toolchain {
        family: Family::Clang,
        version: None,
    };

    /// `gcc`, `gcc-11`, `clang-19`: the name the user gave, and the C
    /// compiler's program name for a native build.
    pub fn name(self) -> String {
        match self.version {
            Some(v) => format!("{}-{v}", self.family),
            None => self.family.name().to_string(),
        }
    }

    /// Variables for every make invocation, Kconfig's included: the
    /// compiler decides CONFIG_CC_IS_CLANG and friends. `cross` is the
    /// CROSS_COMPILE prefix of a foreign gcc build. A versioned clang uses
    /// Kbuild's own suffix form (`LLVM=-19`: clang-19, ld.lld-19, llvm-ar-19).
    pub fn make_vars(self, cross: Option<&str>) -> Vec<String> {
        match (self.family, self.version) {
            (Family::Gcc, None) => Vec::new(),
            (Family::Gcc, Some(v)) => vec![format!("CC={}gcc-{v}", cross.unwrap_or(""))],
            (Family::Clang, None) => vec!["LLVM=1".to_string()],
            (Family::Clang, Some(v)) => vec![format!("LLVM=-{v}")],
        }
    }

    pub fn extra_kcflags(self) -> Vec<String> {
        self.family.extra_kcflags()
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Toolchain {
    type Err = String;
    fn from_str(s: &str) -> Result<Toolchain, String> {
        let bad = || {
            format!(
                "unknown compiler \"{s}\"; valid: gcc, clang, or one with its major version \
                 (gcc-11, clang-19)"
            )
        };
        let (family, version) = match s.split_once('-') {
            Some((family, version)) => {
                let version: u32 = version.parse().map_err(|_| bad())?;
                (family, Some(version))
            }
            None => (s, None),
        };
        let family = family.parse().map_err(|_| bad())?;
        Ok(Toolchain { family, version })
    }
}

/// The linker of a gcc build: GNU ld, or LLVM's lld (`LD=ld.lld`). A
/// clang build links with lld already (`LLVM=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Linker {
    #[default]
    Bfd,
    Lld,
}

impl Linker {
    pub fn name(self) -> &'static str {
        match self {
            Linker::Bfd => "bfd",
            Linker::Lld => "lld",
        }
    }

    /// Variables for every make invocation, Kconfig's included (it
    /// decides CONFIG_LD_IS_LLD): lld is one program for every target,
    /// without a cross prefix.
    pub fn make_vars(self, compiler: Toolchain) -> Result<Vec<String>, String> {
        match (compiler.family, self) {
            (Family::Gcc, Linker::Bfd) | (Family::Clang, Linker::Lld) => Ok(Vec::new()),
            (Family::Gcc, Linker::Lld) => Ok(vec!["LD=ld.lld".to_string()]),
            (Family::Clang, Linker::Bfd) => Err(format!(
                "{compiler} links with lld (LLVM=1); the linker is a choice for gcc builds: \
                 drop `ld = \"bfd\"` or --ld bfd"
            )),
        }
    }

    /// The host-tool groups (study/host-tools.toml's `for`) a build with
    /// `compiler` and this linker needs beyond `config` and `build`'s.
    pub fn tool_groups(self, compiler: Toolchain) -> Vec<&'static str> {
        match (compiler.family, self) {
            (Family::Clang, _) => vec!["clang"],
            (Family::Gcc, Linker::Lld) => vec!["lld"],
            (Family::Gcc, Linker::Bfd) => Vec::new(),
        }
    }

    /// Flags for the links of vmlinux, as make text (study.mk appends them to
    /// Kbuild's LDFLAGS_vmlinux). lld writes gdb's index, `.gdb_index`, from
    /// the `.debug_gnu_pubnames` that gcc emits with split DWARF: gdb then
    /// starts on vmlinux in 0.18 s against 0.8 s (`tiny`), and the index
    /// costs the link 0.04 s (docs/src/measurements.md). clang emits the same
    /// sections with split DWARF, and links with lld. Without split DWARF
    /// neither emits pubnames, and an index without names would hide every
    /// symbol from gdb, which trusts an index.
    pub fn vmlinux_ldflags(self) -> Vec<String> {
        match self {
            Linker::Lld => vec!["$(if $(CONFIG_DEBUG_INFO_SPLIT),--gdb-index)".to_string()],
            Linker::Bfd => Vec::new(),
        }
    }
}

impl fmt::Display for Linker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Linker {
    type Err = String;
    fn from_str(s: &str) -> Result<Linker, String> {
        match s {
            "bfd" => Ok(Linker::Bfd),
            "lld" => Ok(Linker::Lld),
            other => Err(format!(
                "unknown linker \"{other}\"; valid: bfd (GNU ld), lld"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lld_links_gcc_builds_through_ld_and_clang_builds_already() {
        let gcc = Toolchain::GCC;
        assert_eq!(Linker::Lld.make_vars(gcc).unwrap(), ["LD=ld.lld"]);
        assert!(Linker::Bfd.make_vars(gcc).unwrap().is_empty());
        assert!(Linker::Lld.make_vars(Toolchain::CLANG).unwrap().is_empty());
        let err = Linker::Bfd.make_vars(Toolchain::CLANG).unwrap_err();
        assert!(err.contains("clang links with lld"), "{err}");
        assert_eq!("lld".parse::<Linker>(), Ok(Linker::Lld));
        assert!("gold".parse::<Linker>().unwrap_err().contains("valid: bfd"));
    }

    #[test]
    fn a_build_needs_its_compilers_and_linkers_tools() {
        assert_eq!(Linker::Lld.tool_groups(Toolchain::GCC), ["lld"]);
        assert!(Linker::Bfd.tool_groups(Toolchain::GCC).is_empty());
        assert_eq!(Linker::Lld.tool_groups(Toolchain::CLANG), ["clang"]);
    }

    #[test]
    fn only_lld_writes_gdbs_index() {
        let index = ["$(if $(CONFIG_DEBUG_INFO_SPLIT),--gdb-index)"];
        assert_eq!(Linker::Lld.vmlinux_ldflags(), index);
        assert!(Linker::Bfd.vmlinux_ldflags().is_empty());
    }

    #[test]
    fn versioned_compilers_reach_kbuild_in_its_own_words() {
        let tc = |s: &str| s.parse::<Toolchain>().unwrap();
        assert_eq!(tc("gcc"), Toolchain::GCC);
        assert_eq!(tc("gcc-11").make_vars(None), ["CC=gcc-11"]);
        assert_eq!(
            tc("gcc-12").make_vars(Some("aarch64-linux-gnu-")),
            ["CC=aarch64-linux-gnu-gcc-12"]
        );
        assert!(tc("gcc").make_vars(None).is_empty());
        assert_eq!(tc("clang").make_vars(None), ["LLVM=1"]);
        assert_eq!(tc("clang-19").make_vars(None), ["LLVM=-19"]);
        assert_eq!(tc("clang-19").name(), "clang-19");
        assert_eq!(tc("clang-19").extra_kcflags(), ["-grecord-command-line"]);
        for bad in ["icc", "gcc-", "gcc-x", "clang-19-1", "-12"] {
            let err = bad.parse::<Toolchain>().unwrap_err();
            assert!(err.contains("gcc-11, clang-19"), "{bad}: {err}");
        }
    }
}

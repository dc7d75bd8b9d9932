//! The compiler family a build uses: gcc, or clang with the LLVM tools
//! (`LLVM=1`).

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Toolchain {
    #[default]
    Gcc,
    Clang,
}

impl Toolchain {
    pub fn name(self) -> &'static str {
        match self {
            Toolchain::Gcc => "gcc",
            Toolchain::Clang => "clang",
        }
    }

    /// Variables for every make invocation, Kconfig's included: the
    /// compiler decides CONFIG_CC_IS_CLANG and friends.
    pub fn make_vars(self) -> Vec<String> {
        match self {
            Toolchain::Gcc => Vec::new(),
            Toolchain::Clang => vec!["LLVM=1".to_string()],
        }
    }

    /// Flags added to the default level: clang records its command line in
    /// DW_AT_producer only when asked, and opt-report reads the level there.
    pub fn extra_kcflags(self) -> Vec<String> {
        match self {
            Toolchain::Gcc => Vec::new(),
            Toolchain::Clang => vec!["-grecord-command-line".to_string()],
        }
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Toolchain {
    type Err = String;
    fn from_str(s: &str) -> Result<Toolchain, String> {
        match s {
            "gcc" => Ok(Toolchain::Gcc),
            "clang" => Ok(Toolchain::Clang),
            other => Err(format!("unknown compiler \"{other}\"; valid: gcc, clang")),
        }
    }
}

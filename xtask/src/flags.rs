//! The command line: every command and flag, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A Linux kernel you can step through in GDB: net/ at -O0, the rest at -Og.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// Kernel source tree [default: kernel/ at the repo root]
    #[arg(long, global = true, value_name = "DIR")]
    pub kernel: Option<PathBuf>,
    /// Profiles file [default: study/study.toml at the repo root]
    #[arg(long, global = true, value_name = "FILE")]
    pub profiles: Option<PathBuf>,
    /// Print the exact commands and the files it would write, then do nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Show every command's full output
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Target architecture, a file under study/arch/ [default: the host's]
    #[arg(long, global = true, value_name = "ARCH")]
    pub arch: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the host tools (install them with --install) and get the kernel tree
    Setup(Setup),
    /// Fill kernel/ from a release tarball, or print the tree's version
    Kernel(Kernel),
    /// Write the profile's fragment and overrides, and make the build dir's .config
    Config(Config),
    /// Build vmlinux, the boot image, gdb scripts and compile_commands.json
    Build(Build),
    /// Prove from the DWARF which -O level each object got, and how much GDB can see
    OptReport(OptReport),
}

/// Which profile, and where it builds.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// Profile from study/study.toml [default: its default-profile]
    #[arg(long, short = 'p', value_name = "NAME")]
    pub profile: Option<String>,
    /// Build directory [default: build/PROFILE at the repo root]
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct Setup {
    /// Install the missing Debian packages with apt-get (needs root)
    #[arg(long)]
    pub install: bool,
}

#[derive(Args, Debug)]
pub struct Kernel {
    /// A release tarball (.tar.xz, .tar.gz) to unpack into the kernel tree
    #[arg(long, value_name = "PATH")]
    pub tarball: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct Config {
    #[command(flatten)]
    pub target: Target,
    /// Print the optimization overrides (the make fragment) and exit
    #[arg(long)]
    pub show_overrides: bool,
    /// Regenerate .config from the profile, dropping edits made by hand
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct Build {
    #[command(flatten)]
    pub target: Target,
    /// Parallel jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Fail on the first object that does not build at its level
    #[arg(long)]
    pub no_fallback: bool,
    /// On an undefined symbol, stop and name the config option that provides it
    #[arg(long)]
    pub suggest_config: bool,
    /// Compiler cache
    #[arg(long, value_enum, default_value_t = Cache::Auto)]
    pub cache: Cache,
    /// Extra make arguments, after `--`
    #[arg(last = true, value_name = "MAKE_ARGS")]
    pub make_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct OptReport {
    #[command(flatten)]
    pub target: Target,
    /// One line per object instead of per directory
    #[arg(long)]
    pub files: bool,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    /// Fail when an object's level differs from its rule
    #[arg(long)]
    pub check: bool,
    /// Only objects under these build-dir-relative paths (net/ipv4, mm/memory.o)
    pub paths: Vec<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// ccache when it is installed
    Auto,
    Ccache,
    None,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}

//! The command line: every command and flag, in one place, and how each
//! flag value becomes a domain value of the layers below (which know
//! nothing of clap).

use std::path::PathBuf;

use anyhow::Result;

use clap::{Args, Parser, Subcommand};

use crate::{
    builder::ccache::CacheMode,
    ctx,
    guest::{kvm::AccelChoice, trace_script::Tracer},
    study::toolchain::{Linker, Toolchain},
    util::exec::Exec,
};

/// A Linux kernel you can step through in GDB: net/ at -O0, the rest at -Og.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct GlobalArgs {
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
    /// When another command holds the build directory, fail at once instead of waiting
    #[arg(long, global = true)]
    pub no_wait: bool,
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
    /// Boot the kernel in QEMU and run a command in it (or a shell)
    Run(Run),
    /// gdb on vmlinux, connected to `run --gdb`, with breakpoints after the prologue
    Gdb(Gdb),
    /// Measure the tool against bare make, as ratios from one run
    Bench(Bench),
    /// ftrace a function while a command runs in the guest: raw trace, chain, flame graph
    Trace(Trace),
    /// Run CI matrix entries (ci/matrix.toml) locally, step by step
    Ci(Ci),
    /// Build, boot with the gdb stub waiting, and stop in gdb at FUNC: one command
    Debug(Debug),
    /// Record one run of CMD in QEMU (an initramfs guest), to replay and step backwards through
    Record(Record),
    /// Replay a recording, under gdb with -b/-x/--batch (reverse-next, reverse-finish, watch -l)
    Replay(Replay),
    /// Run packetdrill scripts in the guest (the kernel tree's suite by default)
    Packetdrill(Packetdrill),
    /// The static call graph around FUNC, from vmlinux; with --run, what one run reached of it
    Callgraph(Callgraph),
    /// Put the whole path of one run (entry from user space to the driver) at -O0, and rebuild
    Follow(Follow),
    /// drgn on the guest while CMD runs (or --attach, or --core FILE), with the study helpers
    Drgn(Drgn),
    /// Write a vmcore of the guest: once CMD has started, or at a stop in FUNC (--at)
    Dump(Dump),
    /// Print a completion script for bash, zsh or fish (the README says how to install it)
    Completions(Completions),
}

/// Which profile, and where it builds.
#[derive(Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Profile from study/study.toml [default: its default-profile]
    #[arg(long, short = 'p', value_name = "NAME")]
    pub profile: Option<String>,
    /// Build directory [default: build/PROFILE, or build/PROFILE-clang]
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
    /// Compiler: gcc, clang, or a version of either (gcc-11, clang-19) [default: the
    /// profile's `cc`, else gcc]; clang builds with LLVM=1, clang-19 with LLVM=-19
    #[arg(long, value_name = "CC")]
    pub cc: Option<Toolchain>,
    /// Linker of a gcc build: bfd (GNU ld) or lld (LD=ld.lld) [default: the profile's `ld`,
    /// else bfd]; another linker than the profile's builds in build/PROFILE-LD
    #[arg(long, value_name = "LD")]
    pub ld: Option<Linker>,
}

impl TargetArgs {
    pub fn to_target(&self) -> ctx::Target {
        ctx::Target {
            profile: self.profile.clone(),
            build_dir: self.build_dir.clone(),
            cc: self.cc,
            ld: self.ld,
        }
    }
}

impl GlobalArgs {
    pub fn to_global(&self) -> ctx::Global {
        ctx::Global {
            kernel: self.kernel.clone(),
            profiles: self.profiles.clone(),
            arch: self.arch.clone(),
            no_wait: self.no_wait,
        }
    }

    /// The one executor, which alone knows whether this is a dry run.
    pub fn executor(&self) -> Result<Exec> {
        Exec::new(self.dry_run, self.verbose)
    }
}

#[derive(Args, Debug)]
pub struct Setup {
    /// Install what is missing, the optional tools too: apt-get (needs root), pip into a venv
    #[arg(long)]
    pub install: bool,
    /// Print the apt packages this host wants (with --arch's), on one line, and exit
    #[arg(long, conflicts_with = "install")]
    pub list_packages: bool,
    /// Also the tools of this compiler (gcc-11: gcc-11; clang-19: clang-19, lld-19, llvm-19)
    #[arg(long, value_name = "CC")]
    pub cc: Option<Toolchain>,
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
    pub target: TargetArgs,
    /// Print the optimization overrides (the make fragment) and exit
    #[arg(long)]
    pub show_overrides: bool,
    /// Regenerate .config from the profile, dropping edits made by hand
    #[arg(long)]
    pub force: bool,
    /// Make clangd follow this build: its compile commands, without gcc's own flags, in
    /// build/compile_commands.json [default: the default profile's]
    #[arg(long)]
    pub clangd: bool,
}

#[derive(Args, Debug)]
pub struct Build {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Parallel jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N", value_parser = jobs)]
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
    /// Compile on a distcc farm: a DISTCC_HOSTS list [default: $DISTCC_HOSTS]
    #[arg(long, value_name = "HOSTS")]
    pub distcc: Option<String>,
    /// Build nothing: show the last build's compiler warnings, by object, from its build log
    #[arg(long)]
    pub warnings: bool,
    /// Extra make arguments, after `--`
    #[arg(last = true, value_name = "MAKE_ARGS")]
    pub make_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct OptReport {
    #[command(flatten)]
    pub target: TargetArgs,
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

#[derive(Args, Debug)]
pub struct Run {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Accelerator: auto uses KVM only when a probe boot shows it works
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Guest memory
    #[arg(long, default_value = "1G")]
    pub mem: String,
    /// Guest CPUs
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Extra kernel command line words
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub append: Vec<String>,
    /// An extra QEMU argument (repeat for several)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub qemu_arg: Vec<String>,
    /// Start QEMU's gdb stub on 127.0.0.1:PORT [default port: 1234]
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true)]
    pub gdb: Option<Option<u16>>,
    /// Wait for the debugger before running the kernel (QEMU's -S); implies --gdb
    #[arg(long)]
    pub wait_gdb: bool,
    /// Seconds before a guest that has not reported an exit status is killed
    /// (no bound once a debugger has attached)
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// With --wait-gdb: seconds the guest waits for a debugger before it is killed
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub attach_timeout: u64,
    /// Run `build` first even when the image looks up to date (after source edits)
    #[arg(long)]
    pub build: bool,
    /// Boot a busybox initramfs instead of sharing the host's root over 9p
    #[arg(long)]
    pub initramfs: bool,
    /// Restore a guest saved where init waits for a command instead of booting
    /// (made by the first such run; initramfs programs only)
    #[arg(long, conflicts_with_all = ["gdb", "wait_gdb", "qemu_arg"])]
    pub snapshot: bool,
    /// The command to run in the guest, after `--`; none for a shell
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// What gdb does once connected: `gdb` and `debug` take the same flags.
#[derive(Args, Debug)]
pub struct Session {
    /// Break at FUNC's first line after the prologue (repeat for several)
    #[arg(short = 'b', long = "break", value_name = "FUNC")]
    pub breaks: Vec<String>,
    /// A gdb script to source after connecting (repeat for several)
    #[arg(short = 'x', value_name = "FILE")]
    pub scripts: Vec<PathBuf>,
    /// Run CMD at the first stop, in order (repeat); then detach and exit
    #[arg(long, value_name = "CMD")]
    pub batch: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Gdb {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The stub's port on 127.0.0.1
    #[arg(long, default_value_t = 1234)]
    pub port: u16,
    #[command(flatten)]
    pub session: Session,
    /// Hardware breakpoints (needed under KVM before the kernel maps itself)
    #[arg(long)]
    pub hbreak: bool,
}

#[derive(Args, Debug)]
pub struct Bench {
    /// What to measure
    #[arg(value_enum)]
    pub what: BenchWhat,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Parallel jobs [default: the number of CPUs]
    #[arg(short, long, value_name = "N", value_parser = jobs)]
    pub jobs: Option<usize>,
    /// Runs of each measure (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Skip the two full builds of the ccache measure
    #[arg(long)]
    pub skip_ccache: bool,
    /// For `run`: seconds before a virtme-ng boot counts as hung and is killed
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// For `arches` and `loop`: the architectures to compare, the first the
    /// baseline [default for `arches`: every file under study/arch/, the
    /// host's first]
    #[arg(long, value_delimiter = ',', value_name = "ARCH,...")]
    pub arches: Vec<String>,
    /// For `arches` and `loop`: an architecture's build directory, if not the default
    #[arg(long = "dir", value_name = "ARCH=DIR")]
    pub dirs: Vec<String>,
    /// For `loop`: gdb reads vmlinux before the boot, as `debug --from-boot`
    /// [default: during it, the command held until gdb's breakpoints are in]
    #[arg(long)]
    pub from_boot: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchWhat {
    /// No-op build, rebuild after a touch, ccache warm against cold
    Build,
    /// Boot-to-command (`run -- true`) against virtme-ng on the same bzImage
    Run,
    /// Edit net/ipv4/tcp.c → rebuild → boot → gdb stopped in tcp_sendmsg_locked, by phase
    Loop,
    /// Boot-to-command (`run -- true`) on each architecture, as ratios to the first
    Arches,
}

#[derive(Args, Debug)]
pub struct Trace {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Functions to trace (set_graph_function, or set_ftrace_filter with --tracer function)
    #[arg(required = true, value_name = "FUNC")]
    pub functions: Vec<String>,
    /// Deepest call level to record (max_graph_depth; 0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub depth: u32,
    /// The ftrace tracer
    #[arg(long, value_enum, default_value_t = TracerArg::FunctionGraph)]
    pub tracer: TracerArg,
    /// Durations without the time a task slept (the sleep-time option off)
    #[arg(long)]
    pub cpu_times: bool,
    /// Write the raw trace to FILE instead of printing it
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the call chain below FUNC, one line per layer
    #[arg(long)]
    pub chain: bool,
    /// Write folded stacks (for flame-graph tools) to FILE
    #[arg(long, value_name = "FILE")]
    pub folded: Option<PathBuf>,
    /// Render a flame graph to FILE (SVG)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Accelerator, as for `run`
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Seconds before the guest is killed
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Boot a busybox initramfs instead of sharing the host's root over 9p (as a foreign
    /// architecture's guest always does)
    #[arg(long)]
    pub initramfs: bool,
    /// The command to trace, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Debug {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub session: Session,
    /// The stub's port on 127.0.0.1 [default: a free one]
    #[arg(long)]
    pub port: Option<u16>,
    /// Do not run make first (only build when the image is missing or stale)
    #[arg(long)]
    pub no_build: bool,
    /// Stop the CPU at the reset vector until gdb is in, so that breakpoints
    /// in the boot are hit too [default: the kernel boots while gdb reads
    /// vmlinux, and the command starts at gdb's first continue]
    #[arg(long)]
    pub from_boot: bool,
    /// Record from the first stop on (gdb's process record, `study-record`):
    /// reverse-next, reverse-step, reverse-finish and a watchpoint run
    /// backwards then answer at once, back to that stop. The guest's CPU has
    /// no SMAP, whose stac/clac gdb cannot record
    #[arg(long)]
    pub record: bool,
    /// The command to run in the guest, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Packetdrill {
    #[command(flatten)]
    pub target: TargetArgs,
    /// .pkt scripts or directories of them [default: the tree's tools/testing/selftests/net/packetdrill]
    #[arg(value_name = "SCRIPT")]
    pub scripts: Vec<PathBuf>,
    /// The packetdrill binary [default: packetdrill on PATH]
    #[arg(long, value_name = "BIN")]
    pub packetdrill: Option<PathBuf>,
    /// IP versions to run each script with
    #[arg(long, value_enum, default_value_t = IpChoice::Both)]
    pub ip: IpChoice,
    /// packetdrill's --tolerance_usecs [default: study/packetdrill.toml's]
    #[arg(long, value_name = "USECS")]
    pub tolerance_usecs: Option<u64>,
    /// Machine-readable results
    #[arg(long)]
    pub json: bool,
    /// Accelerator, as for `run`
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Seconds before the guest is killed
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpChoice {
    #[value(name = "4")]
    V4,
    #[value(name = "6")]
    V6,
    Both,
}

impl IpChoice {
    pub fn versions(self) -> Vec<&'static str> {
        match self {
            IpChoice::V4 => vec!["4"],
            IpChoice::V6 => vec!["6"],
            IpChoice::Both => vec!["4", "6"],
        }
    }
}

#[derive(Args, Debug)]
pub struct Ci {
    /// Entries to run [default: those marked local, which fit a 2-core CI run]
    #[arg(value_name = "ENTRY")]
    pub entries: Vec<String>,
    /// Regenerate .github/workflows/ci.yml from ci/matrix.toml
    #[arg(long)]
    pub write_workflow: bool,
    /// Check that `run --accel auto` picks KVM for the entries
    #[arg(long)]
    pub check_kvm: bool,
}

/// `-j N`: at least one job; make's `-j0` is no limit at all.
fn jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err(
            "make needs at least one job: give -j 1 or more, or leave -j out for one per CPU"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{text:?} is not a number of jobs: give -j 1 or more"
        )),
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracerArg {
    FunctionGraph,
    Function,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// ccache when it is installed
    Auto,
    Ccache,
    None,
}

impl From<Cache> for CacheMode {
    fn from(cache: Cache) -> CacheMode {
        match cache {
            Cache::Auto => CacheMode::Auto,
            Cache::Ccache => CacheMode::Ccache,
            Cache::None => CacheMode::None,
        }
    }
}

impl From<AccelArg> for AccelChoice {
    fn from(accel: AccelArg) -> AccelChoice {
        match accel {
            AccelArg::Auto => AccelChoice::Auto,
            AccelArg::Kvm => AccelChoice::Kvm,
            AccelArg::Tcg => AccelChoice::Tcg,
        }
    }
}

impl From<TracerArg> for Tracer {
    fn from(tracer: TracerArg) -> Tracer {
        match tracer {
            TracerArg::FunctionGraph => Tracer::FunctionGraph,
            TracerArg::Function => Tracer::Function,
        }
    }
}

pub mod completions;
mod live_state;
mod map;
mod time_travel;
pub use completions::Completions;
pub use live_state::{Drgn, Dump};
pub use map::{Callgraph, Follow, GraphFormat};
pub use time_travel::{Record, Replay};

#[cfg(test)]
mod tests;

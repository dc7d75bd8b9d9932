//! What every command works on: [`Ctx`] (where things are, and the
//! executor) and [`Prepared`] (a profile resolved against a kernel tree, an
//! architecture, a compiler and a build directory), and the lock that
//! keeps two commands from writing one build directory at once
//! ([`BuildLock`]). It uses `kernel`, `study` and `util`; the layers above
//! take these values.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::{
    kernel::{
        kconfig::{Kconfig, SymbolIndex},
        tree::KernelTree,
        uml_host,
    },
    study::{
        arch::Arch,
        os::{FreeBsd, Os},
        policy::Policy,
        profile::Profile,
        profile::Profiles,
        toolchain::{Family, Linker, Toolchain},
    },
    util::{
        exec::Exec,
        fsutil,
        lock::{Access, Wait},
    },
};

mod build_dir;
pub mod clangd;
pub use build_dir::{BuildLock, StateDir};

/// Where the global flags point, before anything is read.
pub struct Global {
    pub kernel: Option<PathBuf>,
    pub profiles: Option<PathBuf>,
    pub arch: Option<String>,
    pub no_wait: bool,
}

/// What every command needs: where things are, and the executor.
pub struct Ctx {
    pub root: PathBuf,
    pub kernel_dir: PathBuf,
    /// `--kernel` was given: a wrong tree is the user's path, not a
    /// missing checkout.
    pub kernel_explicit: bool,
    pub profiles_path: PathBuf,
    pub arch_name: String,
    pub exec: Exec,
    /// What a command does when another holds the lock it needs.
    pub wait: Wait,
}

/// Which profile, compiler and build directory a command works on.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub profile: Option<String>,
    pub build_dir: Option<PathBuf>,
    pub cc: Option<Toolchain>,
    pub ld: Option<Linker>,
}

impl Ctx {
    pub fn new(global: &Global, exec: Exec) -> Result<Ctx> {
        let root = project_root();
        let cwd = std::env::current_dir()?;
        let kernel_dir = match &global.kernel {
            Some(dir) => cwd.join(dir),
            None => root.join("kernel"),
        };
        let profiles_path = match &global.profiles {
            Some(path) => cwd.join(path),
            None => root.join("study/study.toml"),
        };
        Ok(Ctx {
            root,
            kernel_dir,
            kernel_explicit: global.kernel.is_some(),
            profiles_path,
            arch_name: global
                .arch
                .clone()
                .unwrap_or_else(|| Arch::default_name().to_string()),
            exec,
            wait: if global.no_wait {
                Wait::Refuse
            } else {
                Wait::Block
            },
        })
    }

    /// The same context for another architecture.
    pub fn with_arch(&self, arch: &str) -> Result<Ctx> {
        Ok(Ctx {
            root: self.root.clone(),
            kernel_dir: self.kernel_dir.clone(),
            kernel_explicit: self.kernel_explicit,
            profiles_path: self.profiles_path.clone(),
            arch_name: arch.to_string(),
            exec: self.exec.again()?,
            wait: self.wait,
        })
    }

    /// What the project says, each file read by its own loader.
    pub fn study_dir(&self) -> PathBuf {
        self.root.join("study")
    }

    /// The CI matrix's folder.
    pub fn ci_dir(&self) -> PathBuf {
        self.root.join("ci")
    }

    pub fn profiles(&self) -> Result<Profiles> {
        Profiles::load(&self.profiles_path, &self.study_dir())
    }

    pub fn tree(&self) -> Result<KernelTree> {
        KernelTree::open_given(&self.kernel_dir, self.kernel_explicit)
    }

    pub fn arch(&self) -> Result<Arch> {
        Arch::load(&self.study_dir(), &self.arch_name)
    }

    pub fn policy(&self) -> Result<Policy> {
        Policy::load(&self.study_dir())
    }

    /// `--build-dir`, made absolute, or `build/NAME` at the repo root.
    pub fn build_dir(&self, explicit: Option<&Path>, name: &str) -> PathBuf {
        match explicit {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(dir) => std::env::current_dir().unwrap_or_default().join(dir),
            None => self.root.join("build").join(name),
        }
    }
}

/// The profile with each renamed symbol under the name this tree gives it
/// (MITIGATION_RETPOLINE was RETPOLINE before 6.9), said once per tree. Finding the names reads every Kconfig file (under half a second),
/// so the answer is kept under target/, per tree and version: not in the
/// build directory, which a `config` rerun must leave untouched.
fn names_for_tree(exec: &Exec, mut profile: Profile, tree: &KernelTree, root: &Path) -> Profile {
    if profile.renamed.is_empty() {
        return profile;
    }
    let tree_name = fsutil::name_for(&tree.path);
    let cache = root
        .join("target/kconfig-names")
        .join(format!("{tree_name}-{}", tree.version));
    let key = format!("Linux {} in {}\n", tree.version, tree.path.display());
    let cached = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|text| text.strip_prefix(&key).map(String::from));
    let uses: Vec<(String, String)> = match cached {
        Some(lines) => lines
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(new, old)| (new.to_string(), old.to_string()))
            .collect(),
        None => {
            let index = SymbolIndex::scan(&tree.path);
            let uses: Vec<(String, String)> = profile
                .renamed
                .iter()
                .filter(|(new, _)| !index.contains(new))
                .filter_map(|(new, olds)| {
                    let old = olds.iter().find(|o| index.contains(o))?;
                    Some((new.clone(), old.clone()))
                })
                .collect();
            let text: String = uses.iter().map(|(n, o)| format!("{n}={o}\n")).collect();
            // A cache: a write that fails costs the next command a scan.
            let _ = exec.write(&cache, format!("{key}{text}"));
            for (new, old) in &uses {
                eprintln!(
                    "config: Linux {} calls {new} by its older name {old}; using {old}",
                    tree.version
                );
            }
            uses
        }
    };
    for (new, old) in uses {
        profile = profile.with_name(&new, &old);
    }
    profile
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// A profile resolved against a kernel tree, an architecture and a build dir.
pub struct Prepared {
    pub profile: Profile,
    pub tree: KernelTree,
    pub arch: Arch,
    pub build_dir: PathBuf,
    pub policy: Policy,
    /// The compiler as the user named it (`gcc`, `gcc-11`, `clang-19`).
    pub compiler: Toolchain,
    pub linker: Linker,
    /// Its full version (`12.2.0`), asked of the compiler itself; `None`
    /// when it is not installed. Known exceptions are keyed by its major.
    pub compiler_version: Option<String>,
    /// CROSS_COMPILE= for a foreign architecture with gcc, CC= or LLVM=.
    make_vars: Vec<String>,
    /// study/os/freebsd.toml, for a FreeBSD tree (`tree.os`); `None` for Linux.
    pub freebsd: Option<FreeBsd>,
}

impl Prepared {
    pub fn new(ctx: &Ctx, target: &Target) -> Result<Prepared> {
        let profiles = ctx.profiles()?;
        let profile = profiles.get(target.profile.as_deref())?.clone();
        let tree = ctx.tree()?;
        let arch = ctx.arch()?;
        if tree.os == Os::FreeBsd {
            return Prepared::new_freebsd(ctx, target, &profiles, profile, tree, arch);
        }
        let compiler = target.cc.unwrap_or(profile.cc);
        let linker = target.ld.unwrap_or(match compiler.family {
            Family::Gcc => profile.linker_for(&arch.name),
            Family::Clang => Linker::Lld,
        });
        let profile_linker = profile.linker_for(&arch.name);
        let profile = profile.for_target(compiler, &arch.name);
        // One directory per profile, compiler, linker and architecture: the
        // host's architecture, plain gcc and the profile's linker go unnamed.
        let mut dir_name = profile.name.clone();
        if compiler != Toolchain::GCC {
            dir_name = format!("{dir_name}-{compiler}");
        }
        if compiler.family == Family::Gcc && linker != profile_linker {
            dir_name = format!("{dir_name}-{linker}");
        }
        if arch.name != Arch::default_name() {
            dir_name = format!("{dir_name}-{}", arch.name);
        }
        let build_dir = ctx.build_dir(target.build_dir.as_deref(), &dir_name);
        for (what, path) in [("kernel tree", &tree.path), ("build directory", &build_dir)] {
            refuse_kbuild_unsafe(what, path)?;
        }
        let profile = names_for_tree(&ctx.exec, profile, &tree, &ctx.root);
        let profile = with_follow_rules(profile, &build_dir)?;
        let mut make_vars = arch.make_vars(compiler)?;
        make_vars.extend(linker.make_vars(compiler).map_err(anyhow::Error::msg)?);
        let compiler_version = arch
            .cc(compiler)
            .ok()
            .and_then(|cc| compiler_version(&ctx.exec, &cc));
        Ok(Prepared {
            make_vars,
            compiler_version,
            profile,
            tree,
            arch,
            build_dir,
            policy: ctx.policy()?,
            compiler,
            linker,
            freebsd: None,
        })
    }

    /// A profile on a FreeBSD tree: its rules are study.toml's
    /// `[os.freebsd.optimization]`, its compiler make.py's cross clang, and
    /// its build directory `NAME-freebsd`, beside the Linux one.
    fn new_freebsd(
        ctx: &Ctx,
        target: &Target,
        profiles: &Profiles,
        mut profile: Profile,
        tree: KernelTree,
        arch: Arch,
    ) -> Result<Prepared> {
        let data = FreeBsd::load(&ctx.study_dir())?;
        data.arch(&arch.name)?;
        let older = |v: &str| crate::kernel::tree::parse_version(v).map(|(a, b, _)| (a, b));
        if older(&tree.version) < older(&data.min_version) {
            bail!(
                "{}: FreeBSD {} is older than {}, the oldest this tool builds (study/{})",
                tree.path.display(),
                tree.version,
                data.min_version,
                FreeBsd::FILE
            );
        }
        let compiler: Toolchain = data.build.cc.parse().map_err(anyhow::Error::msg)?;
        if let Some(cc) = target.cc.filter(|cc| *cc != compiler) {
            bail!(
                "--cc {cc}: a FreeBSD kernel builds with {compiler}, make.py's cross compiler \
                 from {} (study/{})",
                data.build.cross_bindir,
                FreeBsd::FILE
            );
        }
        profile.rules = profiles
            .os_rules
            .get(Os::FreeBsd.name())
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no [os.freebsd.optimization] table: the rules for a FreeBSD tree",
                    profiles.path.display()
                )
            })?;
        let mut dir_name = format!("{}-{}", profile.name, Os::FreeBsd.name());
        if arch.name != Arch::default_name() {
            dir_name = format!("{dir_name}-{}", arch.name);
        }
        let build_dir = ctx.build_dir(target.build_dir.as_deref(), &dir_name);
        for (what, path) in [("kernel tree", &tree.path), ("build directory", &build_dir)] {
            refuse_kbuild_unsafe(what, path)?;
        }
        let profile = with_follow_rules(profile, &build_dir)?;
        let cc = Path::new(&data.build.cross_bindir).join("clang");
        let compiler_version = compiler_version(&ctx.exec, &cc.display().to_string());
        Ok(Prepared {
            make_vars: vec![],
            compiler_version,
            profile,
            tree,
            arch,
            build_dir,
            policy: ctx.policy()?,
            compiler,
            linker: Linker::Lld,
            freebsd: Some(data),
        })
    }

    /// The host-tool groups (study/host-tools.toml's `for`) this build's
    /// compiler and linker need beyond `config` and `build`'s.
    pub fn toolchain_groups(&self) -> Vec<&'static str> {
        self.linker.tool_groups(self.compiler)
    }

    /// Variables for every make, Kconfig's included: the cross build's,
    /// the compiler's and the linker's.
    pub fn make_vars(&self) -> Vec<String> {
        self.make_vars.clone()
    }

    /// The compiler with the major version it reported (`gcc-12` for a
    /// plain `gcc` that is gcc 12): what the known exceptions were
    /// measured with. `None` when the compiler did not answer.
    pub fn measured_compiler(&self) -> Option<Toolchain> {
        let major = self
            .compiler_version
            .as_deref()?
            .split('.')
            .next()?
            .parse()
            .ok()?;
        Some(Toolchain {
            family: self.compiler.family,
            version: Some(major),
        })
    }

    /// Whether this host can run what this build makes: UML's FP state
    /// against the host's XSAVE area ([`uml_host`]), in one line when not.
    /// Asked by [`Prepared::lock`], so before anything configures, builds,
    /// boots or writes the build directory.
    fn check_host_runs_it(&self) -> Result<()> {
        if let Some(uml) = &self.arch.uml {
            uml_host::check(&self.tree.path, &self.tree.version, &uml.host_fp)
                .map_err(|unfit| anyhow::anyhow!("{unfit}"))?;
        }
        Ok(())
    }

    /// The build dir's `.config`, parsed.
    pub fn config(&self) -> Result<Kconfig> {
        let path = self.build_dir.join(".config");
        Kconfig::parse(&path, &fsutil::read_to_string(&path)?)
    }

    /// The build directory's own state, every file of it named once.
    pub fn state(&self) -> StateDir {
        StateDir::of(&self.build_dir)
    }

    /// Whether QEMU boots this build's `vmlinux` directly.
    pub fn boots_vmlinux(&self) -> bool {
        let Some(option) = &self.arch.boots_vmlinux_with else {
            return false;
        };
        self.config().is_ok_and(|c| c.get(option) == "y")
    }

    /// The linked kernel with its DWARF, what gdb and opt-report read:
    /// `vmlinux`, or a FreeBSD build's `kernel.full`.
    pub fn debug_image(&self) -> PathBuf {
        match &self.freebsd {
            Some(f) => self.build_dir.join(&f.build.images[0]),
            None => self.build_dir.join("vmlinux"),
        }
    }

    /// What QEMU boots: `vmlinux` where it can, else the boot image; a
    /// FreeBSD build's `kernel`.
    pub fn image(&self) -> PathBuf {
        if let Some(f) = &self.freebsd {
            return self
                .build_dir
                .join(f.build.images.last().expect("images is not empty"));
        }
        if self.boots_vmlinux() {
            self.build_dir.join("vmlinux")
        } else {
            self.build_dir.join(&self.arch.image)
        }
    }

    /// Takes the build directory's lock for the rest of the command:
    /// `Exclusive` to configure or build, `Shared` to read it or boot what
    /// it holds. A second command waits, saying for whom, or with
    /// `--no-wait` refuses. No lock under `--dry-run`, which writes nothing.
    pub fn lock(&self, ctx: &Ctx, access: Access) -> Result<BuildLock> {
        self.check_host_runs_it()?;
        // The first directory this lock brings into being, to take away
        // again if the command leaves nothing else in it.
        let created = self
            .state()
            .path()
            .ancestors()
            .filter(|d| !d.exists())
            .last()
            .map(Path::to_path_buf);
        let what = format!("build directory {}", self.build_dir.display());
        let lock = ctx
            .exec
            .lock(&self.state().lock(), &what, access, ctx.wait)?;
        Ok(BuildLock {
            created: lock.as_ref().and(created),
            lock,
            state_dir: self.state().path().to_path_buf(),
        })
    }
}

/// The profile with `follow`'s rules for this build directory laid over
/// its own.
fn with_follow_rules(mut profile: Profile, build_dir: &Path) -> Result<Profile> {
    let layer = StateDir::of(build_dir).follow();
    if let Ok(text) = std::fs::read_to_string(&layer) {
        let mut rules = profile.rules.rules.clone();
        rules.extend(crate::study::profile::layer_rules(&layer, &text)?);
        profile.rules = crate::study::opt_rules::OptRules::new(profile.rules.default, rules);
    }
    Ok(profile)
}

/// `CC -dumpfullversion -dumpversion`: gcc's full version (clang answers
/// both). A read-only query, asked under `--dry-run` too.
fn compiler_version(exec: &Exec, cc: &str) -> Option<String> {
    let out = exec
        .query(xshell::cmd!(
            exec.sh(),
            "{cc} -dumpfullversion -dumpversion"
        ))
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !version.is_empty()).then_some(version)
}

/// Kbuild cannot build in, or from, a path with whitespace (or a colon,
/// which make reads as a rule): refused up front, in one line.
fn refuse_kbuild_unsafe(what: &str, path: &Path) -> Result<()> {
    let text = path.display().to_string();
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || *c == ':') {
        bail!(
            "the {what} {text:?} holds {c:?}, which Kbuild cannot cope with; \
             use a path without it (--build-dir DIR, --kernel DIR)"
        );
    }
    Ok(())
}

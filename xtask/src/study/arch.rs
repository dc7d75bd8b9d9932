//! Per-architecture Kbuild, QEMU and UML facts, read from
//! `study/arch/NAME.toml`: everything that differs by architecture is data;
//! the code knows two ways of running a guest (QEMU, or the UML kernel as a
//! host program) and two roots (the host's, or an initramfs for a guest
//! that cannot run the host's programs).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::study::toolchain::{Family, Toolchain};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Arch {
    #[serde(skip)]
    pub name: String,
    pub make_arch: String,
    pub src_arch: String,
    pub image: String,
    pub image_target: String,
    /// The machine whose programs the guest runs, as Rust names it
    /// (`std::env::consts::ARCH`): another one than the host's means a
    /// cross build, guest programs of its own, and no KVM.
    pub runs: String,
    #[serde(default)]
    pub runner: Runner,
    /// Whether ftrace's function_graph exists there (not on UML).
    #[serde(default = "yes")]
    pub ftrace: bool,
    /// The option with which QEMU boots `vmlinux` itself (x86's PVH entry
    /// point): then the edit loop skips building the compressed image.
    #[serde(default)]
    pub boots_vmlinux_with: Option<String>,
    /// How to build and debug for it from a host of another architecture.
    #[serde(default)]
    pub cross: Option<Cross>,
    #[serde(default)]
    pub qemu: Option<Qemu>,
    #[serde(default)]
    pub uml: Option<Uml>,
    /// How `debug --record` gets a guest whose instructions gdb's process
    /// record can follow; none where that is not set up.
    #[serde(default)]
    pub record: Option<Record>,
    /// Which QEMU `record` and `replay` take; none where they are not set
    /// up.
    #[serde(default)]
    pub replay: Option<Replay>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replay {
    /// The oldest QEMU whose reverse execution works, `MAJOR.MINOR`.
    pub min_qemu: String,
    /// The host tool (study/host-tools.toml) to take when the QEMU on PATH
    /// is older.
    pub qemu_tool: String,
    /// Kernel command-line words a recording boots with (and so its
    /// replays): they cut the boot's busy-wait calibration loops, whose
    /// every clock read is an event in QEMU's log.
    #[serde(default)]
    pub cmdline: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Record {
    /// Appended to QEMU's `-cpu` model (`smap=off`).
    pub cpu_features: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// A system emulator boots the image.
    #[default]
    Qemu,
    /// User-Mode Linux: the kernel is a host program.
    Uml,
}

impl Runner {
    pub fn name(self) -> &'static str {
        match self {
            Runner::Qemu => "qemu",
            Runner::Uml => "uml",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Cross {
    /// Kbuild's CROSS_COMPILE= with gcc; also the guest programs' compiler.
    pub prefix: String,
    /// A debugger that reads this architecture's vmlinux.
    pub gdb: String,
    /// The busybox of the initramfs, this architecture's, where `cargo
    /// xtask setup --install --arch NAME` unpacks it (relative to the repo).
    pub busybox: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Qemu {
    pub binary: String,
    pub package: String,
    pub machine: String,
    pub cpu_tcg: String,
    pub cpu_kvm: String,
    pub console: String,
    pub virtio_9p: String,
    /// Kernel command-line words under TCG only (the guest clock).
    #[serde(default)]
    pub cmdline_tcg: Vec<String>,
    /// The kernel parameter that takes the host's TSC rate in kHz under
    /// TCG, whose guest TSC ticks at the host's rate (`tsc_early_khz`).
    #[serde(default)]
    pub host_tsc_khz_param_tcg: Option<String>,
    /// Kernel command-line words that let the guest find QEMU's fw_cfg
    /// device, which it writes its vmcoreinfo to (drgn, `dump`): needed
    /// where no firmware table describes the device.
    #[serde(default)]
    pub cmdline_fw_cfg: Vec<String>,
    /// The guest's device that `run --snapshot`'s restored init reads its
    /// command from: a second serial port of the machine (QEMU's second
    /// `-serial`). None: the machine has none, and a snapshot run is refused.
    #[serde(default)]
    pub command_port: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Uml {
    /// The root: the host's `/` over hostfs, read-only.
    pub root_args: Vec<String>,
    /// Words every run gets.
    pub args: Vec<String>,
    /// con0 for a command (stdin closed) and for a shell.
    pub con0_batch: String,
    pub con0_interactive: String,
    /// `mem=`: prefix of the guest memory word.
    pub mem_arg: String,
    /// `uml_dir=`: prefix of the word that moves UML's own run files.
    pub dir_arg: String,
    /// Runs the kernel stopped before its first instruction for gdb.
    pub gdbserver: String,
    pub gdbserver_package: String,
    /// gdb commands after `target remote`: UML's own signals.
    pub gdb_init: Vec<String>,
    /// How the tree sizes the host's FP state, on an x86 host.
    pub host_fp: UmlHostFp,
}

/// Where a tree's UML keeps the size of the host's FP state it hands
/// ptrace, and the upstream release that asks the host instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UmlHostFp {
    /// The tree's file with `DEFINE_LONGS(HOST_FP_SIZE, N)`.
    pub constant_in: String,
    /// The first release that sizes it at run time.
    pub fixed_in: String,
    /// The upstream change that did.
    pub fix: String,
}

impl Arch {
    /// Loads `study/arch/NAME.toml`; an unknown name lists the valid ones.
    pub fn load(study_dir: &Path, name: &str) -> Result<Arch> {
        let dir = study_dir.join("arch");
        let path = dir.join(format!("{name}.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) => {
                bail!(
                    "unknown architecture '{name}': no {}; valid: {}",
                    path.display(),
                    Arch::names(study_dir).join(", ")
                );
            }
        };
        let mut arch: Arch = toml::from_str(&text)
            .map_err(|e| crate::study::origin::toml_error(&path, &text, &e))
            .context("architecture data")?;
        arch.name = name.to_string();
        let missing = match arch.runner {
            Runner::Qemu if arch.qemu.is_none() => Some("[qemu]"),
            Runner::Uml if arch.uml.is_none() => Some("[uml]"),
            _ => None,
        };
        if let Some(table) = missing {
            bail!(
                "{}: runner = \"{}\" needs a {table} table",
                path.display(),
                arch.runner.name()
            );
        }
        Ok(arch)
    }

    /// Every architecture study/arch/ describes, sorted.
    pub fn names(study_dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(study_dir.join("arch"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(String::from)
            })
            .collect();
        names.sort();
        names
    }

    /// The architectures whose arch file passes `has` (one with a
    /// `[replay]` table, say), for the line that refuses the others.
    pub fn names_where(study_dir: &Path, has: impl Fn(&Arch) -> bool) -> Vec<String> {
        Self::names(study_dir)
            .into_iter()
            .filter(|name| Self::load(study_dir, name).is_ok_and(|a| has(&a)))
            .collect()
    }

    /// The host's machine, as Rust names it.
    pub fn host() -> &'static str {
        std::env::consts::ARCH
    }

    /// The architecture a command targets without `--arch`: the host's
    /// (Rust's "aarch64" is Kbuild's "arm64").
    pub fn default_name() -> &'static str {
        match Arch::host() {
            "aarch64" => "arm64",
            other => other,
        }
    }

    /// Whether the guest runs programs the host cannot: a cross build.
    pub fn is_foreign(&self) -> bool {
        self.runs != Arch::host()
    }

    /// How to cross-build from this host, or why it cannot.
    pub fn cross(&self) -> Result<Option<&Cross>> {
        if !self.is_foreign() {
            return Ok(None);
        }
        match &self.cross {
            Some(cross) => Ok(Some(cross)),
            None => bail!(
                "study/arch/{}.toml has no [cross] table, so it cannot be built on this {} host",
                self.name,
                Arch::host()
            ),
        }
    }

    /// Variables for every make, Kconfig's included: Kconfig probes the
    /// compiler (CC_HAS_*, the ftrace flavours), so .config depends on it.
    /// clang targets ARCH by itself (LLVM=1); gcc needs the cross prefix.
    pub fn make_vars(&self, compiler: Toolchain) -> Result<Vec<String>> {
        let cross = self.cross()?.filter(|_| compiler.family == Family::Gcc);
        let mut vars: Vec<String> = cross
            .iter()
            .map(|c| format!("CROSS_COMPILE={}", c.prefix))
            .collect();
        vars.extend(compiler.make_vars(cross.map(|c| c.prefix.as_str())));
        Ok(vars)
    }

    /// The C compiler Kbuild runs, for its version.
    pub fn cc(&self, compiler: Toolchain) -> Result<String> {
        Ok(match (self.cross()?, compiler.family) {
            (Some(cross), Family::Gcc) => format!("{}{}", cross.prefix, compiler.name()),
            _ => compiler.name(),
        })
    }

    /// The debugger for this architecture's vmlinux.
    pub fn gdb(&self) -> Result<String> {
        Ok(match self.cross()? {
            Some(cross) => cross.gdb.clone(),
            None => "gdb".to_string(),
        })
    }

    pub fn qemu(&self) -> Result<&Qemu> {
        self.qemu
            .as_ref()
            .with_context(|| format!("{} runs without QEMU (runner = uml)", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study() -> std::path::PathBuf {
        crate::study::shipped()
    }

    #[test]
    fn shipped_arches_and_unknown_arch() {
        let names = Arch::names(&study());
        for name in &names {
            let arch = Arch::load(&study(), name).unwrap();
            assert!(arch.image.contains(&arch.image_target), "{name}");
        }
        let err = Arch::load(&study(), "vax").unwrap_err().to_string();
        assert!(err.starts_with("unknown architecture 'vax': no "), "{err}");
        assert!(
            err.ends_with(&format!("valid: {}", names.join(", "))),
            "{err}"
        );
    }

    #[test]
    fn a_foreign_arch_is_cross_built_and_the_host_one_is_not() {
        let arches: Vec<Arch> = Arch::names(&study())
            .iter()
            .map(|n| Arch::load(&study(), n).unwrap())
            .collect();
        let host = arches
            .iter()
            .find(|a| a.name == Arch::default_name())
            .unwrap();
        assert!(!host.is_foreign());
        assert!(host.make_vars(Toolchain::GCC).unwrap().is_empty());
        assert_eq!(host.gdb().unwrap(), "gdb");
        for arch in arches.iter().filter(|a| a.is_foreign()) {
            let cross = arch.cross.as_ref().unwrap();
            assert_eq!(
                arch.make_vars(Toolchain::GCC).unwrap(),
                [format!("CROSS_COMPILE={}", cross.prefix)]
            );
            assert_eq!(arch.make_vars(Toolchain::CLANG).unwrap(), ["LLVM=1"]);
            assert_eq!(
                arch.cc(Toolchain::GCC).unwrap(),
                format!("{}gcc", cross.prefix)
            );
            // A versioned gcc keeps the cross prefix in CC, as Debian names
            // it (aarch64-linux-gnu-gcc-12); clang targets ARCH by itself.
            let gcc12 = "gcc-12".parse().unwrap();
            assert_eq!(
                arch.make_vars(gcc12).unwrap(),
                [
                    format!("CROSS_COMPILE={}", cross.prefix),
                    format!("CC={}gcc-12", cross.prefix)
                ]
            );
            assert_eq!(arch.cc(gcc12).unwrap(), format!("{}gcc-12", cross.prefix));
            let clang19 = "clang-19".parse().unwrap();
            assert_eq!(arch.make_vars(clang19).unwrap(), ["LLVM=-19"]);
            assert_eq!(arch.cc(clang19).unwrap(), "clang-19");
        }
    }

    #[test]
    fn a_runner_without_its_table_is_refused() {
        let dir = std::env::temp_dir().join(format!("arch-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("arch")).unwrap();
        std::fs::write(
            dir.join("arch/odd.toml"),
            "make-arch = \"um\"\nsrc-arch = \"um\"\nimage = \"linux\"\nimage-target = \"linux\"\nruns = \"x86_64\"\nrunner = \"uml\"\n",
        )
        .unwrap();
        let err = Arch::load(&dir, "odd").unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.ends_with("odd.toml: runner = \"uml\" needs a [uml] table"),
            "{err}"
        );
    }
}

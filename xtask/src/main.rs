//! `cargo xtask`: configure, build, boot, debug and trace a Linux kernel
//! built for study (net/ at -O0, the rest at -Og).

mod arch;
mod bench;
mod build;
mod buildlog;
mod ci;
mod config;
mod distcc;
mod dwarf;
mod exec;
mod fallback;
mod flags;
mod fsutil;
mod ftrace;
mod gdb;
mod host_tools;
mod initramfs;
mod kbuild;
mod kconfig;
mod kernel_tree;
mod linkfix;
mod opt_report;
mod opt_rules;
mod profile;
mod qemu;
mod run;
mod setup;
mod toolchain;
mod trace;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Result;
use clap::Parser;

use crate::{arch::Arch, exec::Exec, fallback::Policy, kernel_tree::KernelTree, profile::Profiles};

/// What every command needs: where things are, and the executor.
pub struct Ctx {
    pub root: PathBuf,
    pub kernel_dir: PathBuf,
    pub profiles_path: PathBuf,
    pub arch_name: String,
    pub exec: Exec,
}

impl Ctx {
    pub fn study_dir(&self) -> PathBuf {
        self.root.join("study")
    }

    pub fn profiles(&self) -> Result<Profiles> {
        Profiles::load(&self.profiles_path)
    }

    pub fn tree(&self) -> Result<KernelTree> {
        KernelTree::open(&self.kernel_dir)
    }

    pub fn arch(&self) -> Result<Arch> {
        Arch::load(&self.study_dir(), &self.arch_name)
    }

    pub fn policy(&self) -> Result<Policy> {
        Policy::load(&self.study_dir().join("fallback.toml"))
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

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: flags::Cli) -> Result<ExitCode> {
    let root = project_root();
    let kernel_dir = match &cli.global.kernel {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => root.join("kernel"),
    };
    let cwd = std::env::current_dir()?;
    let profiles_path = match &cli.global.profiles {
        Some(path) => cwd.join(path),
        None => root.join("study/study.toml"),
    };
    let ctx = Ctx {
        root,
        kernel_dir,
        profiles_path,
        arch_name: cli
            .global
            .arch
            .clone()
            .unwrap_or_else(|| Arch::host().to_string()),
        exec: Exec::new(cli.global.dry_run, cli.global.verbose)?,
    };
    match cli.command {
        flags::Command::Setup(cmd) => cmd.run(&ctx)?,
        flags::Command::Kernel(cmd) => cmd.run(&ctx.exec, &ctx.kernel_dir)?,
        flags::Command::Config(cmd) => cmd.run(&ctx)?,
        flags::Command::Build(cmd) => cmd.run(&ctx)?,
        flags::Command::OptReport(cmd) => cmd.run(&ctx)?,
        flags::Command::Run(cmd) => return cmd.run(&ctx),
        flags::Command::Gdb(cmd) => return cmd.run(&ctx),
        flags::Command::Bench(cmd) => cmd.run(&ctx)?,
        flags::Command::Trace(cmd) => return cmd.run(&ctx),
        flags::Command::Ci(cmd) => return cmd.run(&ctx),
    }
    Ok(ExitCode::SUCCESS)
}

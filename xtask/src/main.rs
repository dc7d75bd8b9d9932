//! `cargo xtask`: configure, build, boot, debug and trace a Linux kernel
//! built for study (net/ at -O0, the rest at -Og).
//!
//! The layers, top down; a module uses only those below it:
//! `cmd` (one thin file per command, its behaviour on the flags) → `cli`
//! (the flags, and their conversion to domain values) → `bench`, `ci`,
//! `install` (measuring, the CI matrix, installing host tools) → `guest`,
//! `analysis` (running the kernel, reading what a build and a run made) →
//! `builder` → `ctx` (the resolved profile, tree and build directory) →
//! `kernel` → `study` (what study/ says) → `util` (the executor, files).
//! Siblings never use each other. A test checks the arrows.

mod analysis;
mod bench;
mod builder;
mod ci;
mod cli;
mod cmd;
mod ctx;
mod follow;
mod guest;
mod install;
mod kernel;
mod study;
mod util;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::{cli::Command, ctx::Ctx};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // SIGINT, SIGTERM, SIGHUP: children stopped, temporary files removed.
    if let Err(e) = util::supervise::install_signal_handlers() {
        eprintln!("error: cannot install the signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> Result<ExitCode> {
    let ctx = Ctx::new(&cli.global.to_global(), cli.global.executor()?)?;
    let done = |()| ExitCode::SUCCESS;
    Ok(match cli.command {
        Command::Setup(flags) => flags.run(&ctx).map(done)?,
        Command::Kernel(flags) => flags.run(&ctx).map(done)?,
        Command::Config(flags) => flags.run(&ctx).map(done)?,
        Command::Build(flags) => flags.run(&ctx).map(done)?,
        Command::OptReport(flags) => flags.run(&ctx).map(done)?,
        Command::Run(flags) => flags.run(&ctx)?,
        Command::Gdb(flags) => flags.run(&ctx)?,
        Command::Bench(flags) => flags.run(&ctx).map(done)?,
        Command::Trace(flags) => flags.run(&ctx)?,
        Command::Ci(flags) => flags.run(&ctx)?,
        Command::Packetdrill(flags) => flags.run(&ctx)?,
        Command::Debug(flags) => flags.run(&ctx)?,
        Command::Record(flags) => flags.run(&ctx)?,
        Command::Replay(flags) => flags.run(&ctx)?,
        Command::Callgraph(flags) => flags.run(&ctx).map(done)?,
        Command::Follow(flags) => flags.run(&ctx).map(done)?,
        Command::Drgn(flags) => flags.run(&ctx)?,
        Command::Dump(flags) => flags.run(&ctx).map(done)?,
        Command::Completions(flags) => flags.run(&ctx).map(done)?,
    })
}

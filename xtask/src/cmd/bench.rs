//! `cargo xtask bench`: `build` (what the tool costs on top of make),
//! `run` (the boot to a command against virtme-ng), `loop` (edit → gdb
//! stop, by phase) and `arches` (the boot across architectures), each as
//! ratios to a baseline timed in the same run.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::{
    bench::{boot, build_cost, edit_loop, Target},
    builder, cli,
    ctx::{self, Ctx, Prepared},
    study::arch::Arch,
    util::lock::Access,
};

impl cli::Bench {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let runs = self.runs;
        let jobs = self.jobs.unwrap_or_else(builder::default_jobs);
        match self.what {
            cli::BenchWhat::Build => {
                let p = Prepared::new(ctx, &self.target.to_target())?;
                let lock = p.lock(ctx, Access::Exclusive)?;
                let Some(request) = edit_loop::built_first(ctx, &p, jobs)? else {
                    return Ok(());
                };
                // The timed builds are child commands that take the lock themselves.
                drop(lock);
                if let Some(rows) = build_cost::measure(ctx, &p, &request, runs, self.skip_ccache)?
                {
                    print!("{}", build_cost::table(&rows, runs, &p.profile.name, jobs));
                }
            }
            cli::BenchWhat::Run => {
                let p = Prepared::new(ctx, &self.target.to_target())?;
                let mut lock = p.lock(ctx, Access::Shared)?;
                builder::ensure_built(ctx, &p, &mut lock)?;
                // The timed runs are child commands that take the lock themselves.
                drop(lock);
                let limit = Duration::from_secs(self.timeout);
                if let Some(rows) = boot::against_virtme(ctx, &p, runs, limit)? {
                    print!("{}", boot::peer_table(&rows, runs, &p.image()));
                }
            }
            cli::BenchWhat::Loop if self.arches.is_empty() => {
                let targets = self.targets(ctx, std::slice::from_ref(&ctx.arch_name))?;
                if let Some(loops) = edit_loop::timed_loops(&targets, runs, jobs, self.from_boot)? {
                    print!(
                        "{}",
                        edit_loop::phase_table(&loops, &targets[0].p.profile.name)
                    );
                }
            }
            cli::BenchWhat::Loop => {
                let targets = self.targets(ctx, &self.arch_names(ctx))?;
                if let Some(loops) = edit_loop::timed_loops(&targets, runs, jobs, self.from_boot)? {
                    print!("{}", edit_loop::arches_table(&targets, &loops, runs));
                }
            }
            cli::BenchWhat::Arches => {
                let targets = self.targets(ctx, &self.arch_names(ctx))?;
                for t in &targets {
                    let mut lock = t.p.lock(&t.ctx, Access::Shared)?;
                    builder::ensure_built(&t.ctx, &t.p, &mut lock)?;
                }
                if let Some(medians) = boot::across_arches(&targets, runs)? {
                    print!("{}", boot::arches_table(&targets, &medians, runs));
                }
            }
        }
        Ok(())
    }

    /// `--arches`, or every architecture, the host's first.
    fn arch_names(&self, ctx: &Ctx) -> Vec<String> {
        let mut names = self.arches.clone();
        if names.is_empty() {
            names = Arch::names(&ctx.study_dir());
            names.sort_by_key(|n| n != Arch::default_name());
        }
        names
    }

    /// Each architecture's target, in `--dir`'s build directory where one
    /// is given.
    fn targets(&self, ctx: &Ctx, names: &[String]) -> Result<Vec<Target>> {
        let mut dirs = std::collections::HashMap::new();
        for pair in &self.dirs {
            let Some((arch, dir)) = pair.split_once('=') else {
                bail!("--dir {pair}: give ARCH=DIR, e.g. --dir um=build/tiny-um");
            };
            dirs.insert(arch.to_string(), std::path::absolute(dir)?);
        }
        names
            .iter()
            .map(|name| {
                let arch_ctx = ctx.with_arch(name)?;
                let target = ctx::Target {
                    build_dir: dirs.get(name).cloned().or(self.target.build_dir.clone()),
                    ..self.target.to_target()
                };
                let p = Prepared::new(&arch_ctx, &target)?;
                Ok(Target {
                    arch: name.clone(),
                    ctx: arch_ctx,
                    p,
                })
            })
            .collect()
    }
}

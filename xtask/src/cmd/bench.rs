//! `cargo xtask bench`: `build` (what the tool costs on top of make),
//! `run` (the boot to a command against virtme-ng), `loop` (edit → gdb
//! stop, by phase) and `arches` (the boot across architectures), each as
//! ratios to a baseline timed in the same run.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::{
    bench::{boot, build_cost, edit_loop, median, Target},
    builder, cli,
    ctx::{self, Ctx, Prepared},
    study::arch::Arch,
    util::lock::Access,
};

impl cli::Bench {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        match self.what {
            cli::BenchWhat::Build => self.build(ctx),
            cli::BenchWhat::Run => self.boot(ctx),
            cli::BenchWhat::Loop if self.arches.is_empty() => self.edit_loop(ctx),
            cli::BenchWhat::Loop => self.edit_loop_arches(ctx),
            cli::BenchWhat::Arches => self.arches(ctx),
        }
    }

    fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(builder::default_jobs)
    }

    fn build(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let lock = p.lock(ctx, Access::Exclusive)?;
        let Some(request) = edit_loop::built_first(ctx, &p, self.jobs())? else {
            return Ok(());
        };
        // The timed builds are child commands that take the lock themselves.
        drop(lock);
        let Some(rows) = build_cost::measure(ctx, &p, &request, self.runs, self.skip_ccache)?
        else {
            return Ok(());
        };
        println!(
            "{:<40} {:>10} {:>10} {:>7}  baseline",
            "measure", "time", "baseline", "ratio"
        );
        for r in rows {
            println!(
                "{:<40} {:>9.2}s {:>9.2}s {:>6.2}x  {}",
                r.name,
                r.ours.as_secs_f64(),
                r.base.as_secs_f64(),
                r.ours.as_secs_f64() / r.base.as_secs_f64(),
                r.baseline
            );
        }
        println!(
            "(median of {} runs each, alternated; profile {}, -j{})",
            self.runs.max(1),
            p.profile.name,
            request.jobs
        );
        Ok(())
    }

    fn boot(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        // The timed runs are child commands that take the lock themselves.
        drop(lock);
        let limit = Duration::from_secs(self.timeout);
        let Some(rows) = boot::against_virtme(ctx, &p, self.runs, limit)? else {
            return Ok(());
        };
        println!(
            "{:<8} {:>12} {:>22} {:>7}",
            "accel", "cargo xtask", "virtme-ng", "ratio"
        );
        for r in rows {
            let ours = r.ours.as_secs_f64();
            match r.theirs {
                Ok(t) => println!(
                    "{:<8} {ours:>11.2}s {:>21.2}s {:>6.2}x",
                    r.accel,
                    t.as_secs_f64(),
                    ours / t.as_secs_f64()
                ),
                Err(why) => println!("{:<8} {ours:>11.2}s {why:>22} {:>7}", r.accel, "-"),
            }
        }
        println!(
            "(median of {} runs; image {})",
            self.runs.max(1),
            p.image().display()
        );
        Ok(())
    }

    fn edit_loop(&self, ctx: &Ctx) -> Result<()> {
        let targets = self.targets(ctx, std::slice::from_ref(&ctx.arch_name))?;
        let Some(loops) = edit_loop::timed_loops(&targets, self.runs, self.jobs())? else {
            return Ok(());
        };
        let rows = &loops.rows[0];
        let median_of =
            |f: fn(&edit_loop::LoopTimes) -> Duration| median(rows.iter().map(f).collect());
        let table = [
            ("compile", median_of(|r| r.compile)),
            ("link (vmlinux)", median_of(|r| r.link)),
            ("boot image", median_of(|r| r.image)),
            ("gdb start, connect, breakpoints", median_of(|r| r.gdb_load)),
            ("boot to the stop", median_of(|r| r.boot_to_stop)),
            ("edit to the stop", median_of(|r| r.total)),
        ];
        let profile = &targets[0].p.profile.name;
        println!("{:<34} {:>9}", format!("phase ({profile})"), "time");
        for (name, time) in table {
            println!("{name:<34} {:>8.2}s", time.as_secs_f64());
        }
        println!(
            "(median of {} runs; -j{}; stopped in tcp_sendmsg_locked with size = {})",
            rows.len(),
            loops.requests[0].jobs,
            rows[0].size
        );
        Ok(())
    }

    fn edit_loop_arches(&self, ctx: &Ctx) -> Result<()> {
        let targets = self.targets(ctx, &self.arch_names(ctx))?;
        let Some(loops) = edit_loop::timed_loops(&targets, self.runs, self.jobs())? else {
            return Ok(());
        };
        let of = |r: &[edit_loop::LoopTimes], f: &dyn Fn(&edit_loop::LoopTimes) -> Duration| {
            median(r.iter().map(f).collect())
        };
        let totals: Vec<Duration> = loops.rows.iter().map(|r| of(r, &|t| t.total)).collect();
        println!(
            "{:<8} {:>9} {:>14} {:>15} {:>7}",
            "arch", "rebuild", "boot to stop", "edit to stop", "ratio"
        );
        for (i, t) in targets.iter().enumerate() {
            let r = &loops.rows[i];
            let rebuild = of(r, &|t| t.compile + t.link + t.image);
            let boot = of(r, &|t| t.gdb_load + t.boot_to_stop);
            println!(
                "{:<8} {:>8.2}s {:>13.2}s {:>14.2}s {:>6.2}x",
                t.arch,
                rebuild.as_secs_f64(),
                boot.as_secs_f64(),
                totals[i].as_secs_f64(),
                totals[i].as_secs_f64() / totals[0].as_secs_f64()
            );
        }
        println!(
            "(median of {} runs each, alternating; profile {}; stopped in tcp_sendmsg_locked with size = {}; the ratio is to {})",
            self.runs.max(1),
            targets[0].p.profile.name,
            edit_loop::LOOP_SIZE,
            targets[0].arch
        );
        Ok(())
    }

    fn arches(&self, ctx: &Ctx) -> Result<()> {
        let targets = self.targets(ctx, &self.arch_names(ctx))?;
        for t in &targets {
            let mut lock = t.p.lock(&t.ctx, Access::Shared)?;
            builder::ensure_built(&t.ctx, &t.p, &mut lock)?;
        }
        let Some(medians) = boot::across_arches(&targets, self.runs)? else {
            return Ok(());
        };
        println!(
            "{:<8} {:>10} {:>7}  build directory",
            "arch", "run true", "ratio"
        );
        for (t, time) in targets.iter().zip(&medians) {
            println!(
                "{:<8} {:>9.2}s {:>6.2}x  {}",
                t.arch,
                time.as_secs_f64(),
                time.as_secs_f64() / medians[0].as_secs_f64(),
                t.p.build_dir.display()
            );
        }
        println!(
            "(median of {} runs each, alternating; profile {}; the ratio is to {})",
            self.runs.max(1),
            targets[0].p.profile.name,
            targets[0].arch
        );
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

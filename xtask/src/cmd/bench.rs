//! `cargo xtask bench build`: what the tool costs on top of make, measured
//! in one run as ratios: a no-op build, a rebuild after touching
//! net/ipv4/tcp.c, and a ccache-warm full build against a cold one.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::{Cmd, Shell};

use crate::{
    build::{self, ccache::CacheSetup, passes, BuildRequest},
    cli,
    ctx::{Ctx, Prepared},
    guest::kvm,
    kernel::kbuild,
    util::{
        exec::{which, Exec},
        lock::Access,
    },
};

impl cli::Bench {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        match self.what {
            cli::BenchWhat::Build => self.build(ctx),
            cli::BenchWhat::Run => self.boot(ctx),
        }
    }

    /// `cargo xtask run -- true` against virtme-ng's `vng --run IMAGE
    /// --exec true`, both under TCG (and KVM where it works), one run.
    fn boot(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        build::ensure_built(ctx, &p, &mut lock)?;
        // The timed runs are child commands that take the lock themselves.
        drop(lock);
        let image = p.image();
        let Some(vng) = which("vng") else {
            bail!("virtme-ng is not installed: run `pip install virtme-ng`");
        };
        let sh = ctx.exec.sh();
        let ours = |accel: &str| {
            xtask_child(sh, ctx, &p, "run", &p.build_dir).args(["--accel", accel, "--", "true"])
        };
        let theirs = |kvm: bool| {
            let no_kvm = (!kvm).then_some("--disable-kvm");
            xshell::cmd!(sh, "{vng} --run {image} --force-9p {no_kvm...} --exec true")
        };
        let limit = Duration::from_secs(self.timeout);
        if ctx.exec.dry_run {
            ctx.exec.run(ours("tcg"))?;
            ctx.exec.run(theirs(false))?;
            return Ok(());
        }
        println!(
            "{:<8} {:>12} {:>22} {:>7}",
            "accel", "cargo xtask", "virtme-ng", "ratio"
        );
        let mut accels = vec![("tcg", false)];
        if matches!(kvm::cached_kvm_verdict(ctx, &p), Some(Ok(_))) {
            accels.push(("kvm", true));
        }
        for (accel, kvm) in accels {
            let mut ours_times = Vec::new();
            let mut theirs_times = Vec::new();
            for _ in 0..self.runs.max(1) {
                ours_times.push(timed(&ctx.exec, ours(accel))?);
                theirs_times.push(ctx.exec.time(theirs(kvm), Some(limit))?);
            }
            let ours = median(ours_times);
            match theirs_times.into_iter().collect::<Result<Vec<_>, String>>() {
                Ok(t) => {
                    let t = median(t);
                    println!(
                        "{accel:<8} {:>11.2}s {:>21.2}s {:>6.2}x",
                        ours.as_secs_f64(),
                        t.as_secs_f64(),
                        ours.as_secs_f64() / t.as_secs_f64()
                    );
                }
                Err(why) => println!(
                    "{accel:<8} {:>11.2}s {why:>22} {:>7}",
                    ours.as_secs_f64(),
                    "-"
                ),
            }
        }
        println!(
            "(median of {} runs; image {})",
            self.runs.max(1),
            image.display()
        );
        Ok(())
    }

    fn build(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let request = BuildRequest {
            jobs: self.jobs.unwrap_or_else(passes::default_jobs),
            ..BuildRequest::default_for_run()
        };
        eprintln!(
            "bench: making sure {} is built first",
            p.build_dir.display()
        );
        let lock = p.lock(ctx, Access::Exclusive)?;
        build::build(ctx, &p, &request)?;
        // The timed builds are child commands that take the lock themselves.
        drop(lock);
        let cache = CacheSetup::new(request.cache)?;
        let sh = ctx.exec.sh();
        let make = || passes::make_command(sh, &p, &request, cache.as_ref());
        let jobs = format!("-j{}", request.jobs);
        let xtask_in = |dir: &Path| xtask_child(sh, ctx, &p, "build", dir).arg(&jobs);
        let xtask = || xtask_in(&p.build_dir);
        let runs = self.runs.max(1);
        let mut rows = Vec::new();

        if ctx.exec.dry_run {
            // Timing nothing measures nothing: say what would be timed.
            ctx.exec.run(xtask())?;
            ctx.exec.run(make())?;
            return Ok(());
        }
        let exec = &ctx.exec;
        let (ours, bare) = alternate(runs, || timed(exec, xtask()), || timed(exec, make()))?;
        rows.push(("no-op build", ours, bare, "bare make, same command line"));

        let tcp = p.tree.path.join("net/ipv4/tcp.c");
        let touch = || -> Result<()> {
            let file = std::fs::File::options()
                .append(true)
                .open(&tcp)
                .with_context(|| format!("cannot open {}", tcp.display()))?;
            file.set_modified(std::time::SystemTime::now())?;
            Ok(())
        };
        let (ours, bare) = alternate(
            runs,
            || {
                touch()?;
                timed(exec, xtask())
            },
            || {
                touch()?;
                timed(exec, make())
            },
        )?;
        rows.push((
            "rebuild after touching net/ipv4/tcp.c",
            ours,
            bare,
            "bare make",
        ));

        if !self.skip_ccache {
            let (warm, cold) = ccache_full_builds(ctx, &p, &xtask_in)?;
            rows.push(("full build, ccache warm", warm, cold, "ccache cold"));
        }

        println!(
            "{:<40} {:>10} {:>10} {:>7}  baseline",
            "measure", "time", "baseline", "ratio"
        );
        for (name, ours, base, baseline) in rows {
            println!(
                "{name:<40} {:>9.2}s {:>9.2}s {:>6.2}x  {baseline}",
                ours.as_secs_f64(),
                base.as_secs_f64(),
                ours.as_secs_f64() / base.as_secs_f64()
            );
        }
        println!(
            "(median of {runs} runs each, alternated; profile {}, -j{})",
            p.profile.name, request.jobs
        );
        Ok(())
    }
}

/// `cargo xtask COMMAND` as this binary, for the same profile, compiler,
/// architecture, tree and profiles file, in `build_dir`.
fn xtask_child<'a>(
    sh: &'a Shell,
    ctx: &Ctx,
    p: &Prepared,
    command: &str,
    build_dir: &Path,
) -> Cmd<'a> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("cargo-xtask"));
    let (profile, cc, arch) = (&p.profile.name, p.compiler.name(), &ctx.arch_name);
    let (tree, profiles) = (&p.tree.path, &ctx.profiles_path);
    xshell::cmd!(
        sh,
        "{exe} {command} --profile {profile} --cc {cc} --arch {arch} --kernel {tree} --build-dir {build_dir} --profiles {profiles}"
    )
}

/// How long `cmd` took; its failure is an error.
fn timed(exec: &Exec, cmd: Cmd<'_>) -> Result<Duration> {
    exec.time(cmd, None)?.map_err(anyhow::Error::msg)
}

/// Runs `a` and `b` alternately `runs` times each; their medians.
fn alternate(
    runs: usize,
    mut a: impl FnMut() -> Result<Duration>,
    mut b: impl FnMut() -> Result<Duration>,
) -> Result<(Duration, Duration)> {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        xs.push(a()?);
        ys.push(b()?);
    }
    Ok((median(xs), median(ys)))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A full build into a scratch copy of the build dir, with an empty ccache
/// (cold), then `make clean` and the same build again (warm).
fn ccache_full_builds<'a>(
    ctx: &Ctx,
    p: &Prepared,
    xtask_in: &dyn Fn(&Path) -> Cmd<'a>,
) -> Result<(Duration, Duration)> {
    let bench_dir = p.build_dir.with_file_name(format!(
        "{}-bench",
        p.build_dir
            .file_name()
            .map_or("build".into(), |n| n.to_string_lossy().into_owned())
    ));
    let ccache_dir = bench_dir.with_file_name(format!(
        "{}-ccache",
        bench_dir
            .file_name()
            .map_or("bench".into(), |n| n.to_string_lossy().into_owned())
    ));
    for dir in [&bench_dir, &ccache_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
    }
    copy_build_inputs(&p.build_dir, &bench_dir)?;
    let cmd = || xtask_in(&bench_dir).env("CCACHE_DIR", &ccache_dir);
    eprintln!("bench: cold full build in {}", bench_dir.display());
    let cold = timed(&ctx.exec, cmd())?;
    let clean = kbuild::config_make(
        ctx.exec.sh(),
        &p.tree.path,
        &bench_dir,
        &p.arch.make_arch,
        &p.compiler.make_vars(),
        "clean",
    );
    ctx.exec.capture(clean)?;
    eprintln!("bench: warm full build");
    let warm = timed(&ctx.exec, cmd())?;
    std::fs::remove_dir_all(&bench_dir)?;
    std::fs::remove_dir_all(&ccache_dir)?;
    Ok((warm, cold))
}

/// `.config` and the study state, so the copy builds the same kernel.
fn copy_build_inputs(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.join(".study"))?;
    std::fs::copy(from.join(".config"), to.join(".config"))?;
    for name in ["profile.snapshot", "config.last", "fallbacks.toml"] {
        let source = from.join(".study").join(name);
        if source.exists() {
            std::fs::copy(&source, to.join(".study").join(name))?;
        }
    }
    Ok(())
}

//! `cargo xtask bench build`: what the tool costs on top of make, measured
//! in one run as ratios: a no-op build, a rebuild after touching
//! net/ipv4/tcp.c, and a ccache-warm full build against a cold one.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    build::{self, BuildRequest},
    config::Prepared,
    exec::Command,
    flags, Ctx,
};

impl flags::Bench {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        match self.what {
            flags::BenchWhat::Build => self.build(ctx),
            flags::BenchWhat::Run => self.boot(ctx),
        }
    }

    /// `cargo xtask run -- true` against virtme-ng's `vng --run IMAGE
    /// --exec true`, both under TCG (and KVM where it works), one run.
    fn boot(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target)?;
        crate::run::ensure_built(ctx, &p)?;
        let image = p.build_dir.join(&p.arch.image).display().to_string();
        let Some(vng) = crate::exec::which("vng") else {
            bail!("virtme-ng is not installed: run `pip install virtme-ng`");
        };
        let run = xtask_child(ctx, &p, "run")?;
        let ours = |accel: &str| run.clone().args(["--accel", accel, "--", "true"]);
        let theirs = |kvm: bool| {
            let cmd = Command::new(vng.display().to_string()).args(["--run", &image, "--force-9p"]);
            let cmd = if kvm { cmd } else { cmd.arg("--disable-kvm") };
            cmd.args(["--exec", "true"])
        };
        let limit = Duration::from_secs(self.timeout);
        if ctx.exec.dry_run {
            for cmd in [ours("tcg"), theirs(false)] {
                ctx.exec.run(&cmd)?;
            }
            return Ok(());
        }
        println!(
            "{:<8} {:>12} {:>22} {:>7}",
            "accel", "cargo xtask", "virtme-ng", "ratio"
        );
        let mut accels = vec![("tcg", false)];
        if matches!(crate::run::cached_kvm_verdict(ctx, &p), Some(Ok(_))) {
            accels.push(("kvm", true));
        }
        for (accel, kvm) in accels {
            let mut ours_times = Vec::new();
            let mut theirs_times = Vec::new();
            for _ in 0..self.runs.max(1) {
                ours_times.push(timed(&ours(accel))?);
                theirs_times.push(timed_limit(&theirs(kvm), limit)?);
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
        println!("(median of {} runs; image {image})", self.runs.max(1));
        Ok(())
    }

    fn build(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target)?;
        let request = BuildRequest {
            jobs: self.jobs.unwrap_or_else(build::default_jobs),
            fallback: true,
            suggest_config: false,
            cache: flags::Cache::Auto,
            make_args: Vec::new(),
            distcc: None,
        };
        eprintln!(
            "bench: making sure {} is built first",
            p.build_dir.display()
        );
        build::build(ctx, &p, &request)?;
        let make = build::make_command(
            &p,
            &request,
            build::CacheSetup::new(request.cache)?.as_ref(),
        );
        let xtask = xtask_build_command(ctx, &p, request.jobs)?;
        let runs = self.runs.max(1);
        let mut rows = Vec::new();

        if ctx.exec.dry_run {
            // Timing nothing measures nothing: say what would be timed.
            for cmd in [&xtask, &make] {
                ctx.exec.run(cmd)?;
            }
            return Ok(());
        }
        let (ours, bare) = alternate(runs, || timed(&xtask), || timed(&make))?;
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
                timed(&xtask)
            },
            || {
                touch()?;
                timed(&make)
            },
        )?;
        rows.push((
            "rebuild after touching net/ipv4/tcp.c",
            ours,
            bare,
            "bare make",
        ));

        if !self.skip_ccache {
            let (warm, cold) = ccache_full_builds(ctx, &p, &xtask)?;
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
/// architecture, tree, build dir and profiles file.
fn xtask_child(ctx: &Ctx, p: &Prepared, command: &str) -> Result<Command> {
    let exe = std::env::current_exe()?.display().to_string();
    Ok(Command::new(exe)
        .args([
            command,
            "--profile",
            &p.profile.name,
            "--cc",
            p.compiler.name(),
            "--arch",
            &ctx.arch_name,
        ])
        .args(["--kernel".to_string(), p.tree.path.display().to_string()])
        .args(["--build-dir".to_string(), p.build_dir.display().to_string()])
        .args([
            "--profiles".to_string(),
            ctx.profiles_path.display().to_string(),
        ]))
}

/// `cargo xtask build` as this binary, for the same profile and dirs.
fn xtask_build_command(ctx: &Ctx, p: &Prepared, jobs: usize) -> Result<Command> {
    Ok(xtask_child(ctx, p, "build")?.arg(format!("-j{jobs}")))
}

/// Like [`timed`], but a command still running after `limit` is killed;
/// that, or a failure, is the inner `Err` (virtme-ng may not boot a kernel).
fn timed_limit(cmd: &Command, limit: Duration) -> Result<Result<Duration, String>> {
    let start = Instant::now();
    let mut child = cmd
        .to_std_plain()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(if status.success() {
                Ok(start.elapsed())
            } else {
                Err(format!("failed: {}", crate::exec::describe(status)))
            });
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Err(format!("killed after {}s", limit.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn timed(cmd: &Command) -> Result<Duration> {
    let start = Instant::now();
    let output = cmd.to_std_plain().stdin(Stdio::null()).output()?;
    if !output.status.success() {
        bail!(
            "`{}` failed:\n{}",
            cmd.to_shell(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(start.elapsed())
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
fn ccache_full_builds(ctx: &Ctx, p: &Prepared, xtask: &Command) -> Result<(Duration, Duration)> {
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
    let mut cmd = xtask.clone();
    let dir_arg = cmd
        .args
        .iter()
        .position(|a| a == "--build-dir")
        .expect("set above")
        + 1;
    cmd.args[dir_arg] = bench_dir.display().to_string();
    let cmd = cmd.env("CCACHE_DIR", ccache_dir.display().to_string());
    eprintln!("bench: cold full build in {}", bench_dir.display());
    let cold = timed(&cmd)?;
    let clean = crate::kbuild::config_make(
        &p.tree.path,
        &bench_dir,
        &p.arch.make_arch,
        &p.compiler.make_vars(),
        "clean",
    );
    ctx.exec.capture(&clean)?;
    eprintln!("bench: warm full build");
    let warm = timed(&cmd)?;
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

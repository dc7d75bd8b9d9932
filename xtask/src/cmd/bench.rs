//! `cargo xtask bench build`: what the tool costs on top of make, measured
//! in one run as ratios: a no-op build, a rebuild after touching
//! net/ipv4/tcp.c, and a ccache-warm full build against a cold one. `bench
//! run`, `loop` and `arches`: boot-to-command, the edit loop, and
//! boot-to-command across architectures.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use xshell::{Cmd, Shell};

use crate::{
    builder::{self, ccache::CacheSetup, passes, BuildRequest},
    cli,
    ctx::{Ctx, Prepared, StateDir, Target},
    guest::{
        gdb::{free_port, gdb_command, GdbRequest},
        kvm,
        qemu::Accel,
        run::{start_background, RunRequest},
    },
    kernel::{buildlog::Stage, kbuild},
    study::arch::Arch,
    util::{
        exec::{which, Exec},
        fsutil,
        lock::Access,
        supervise,
    },
};

impl cli::Bench {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        match self.what {
            cli::BenchWhat::Build => self.build(ctx),
            cli::BenchWhat::Run => self.boot(ctx),
            cli::BenchWhat::Loop => self.edit_loop(ctx),
            cli::BenchWhat::Arches => self.arches(ctx),
        }
    }

    /// `run -- true` for the same profile on each architecture (each
    /// built first), alternating, as ratios to the first: QEMU under TCG
    /// for x86_64 and arm64, the kernel as a host process for um.
    fn arches(&self, ctx: &Ctx) -> Result<()> {
        let names = self.arch_names(ctx);
        let mut runs = Vec::new();
        for (name, arch_ctx, p) in self.per_arch(ctx, &names)? {
            {
                let mut lock = p.lock(&arch_ctx, Access::Shared)?;
                builder::ensure_built(&arch_ctx, &p, &mut lock)?;
            }
            runs.push((name, p));
        }
        let sh = ctx.exec.sh();
        let run_true = |name: &str, p: &Prepared| {
            xtask_child_for(sh, ctx, p, name, "run", &p.build_dir).args(["--", "true"])
        };
        if ctx.exec.dry_run {
            for (name, p) in &runs {
                ctx.exec.run(run_true(name, p))?;
            }
            return Ok(());
        }
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); runs.len()];
        for _ in 0..self.runs.max(1) {
            for (i, (name, p)) in runs.iter().enumerate() {
                times[i].push(timed(&ctx.exec, run_true(name, p))?);
            }
        }
        let medians: Vec<Duration> = times.into_iter().map(median).collect();
        println!(
            "{:<8} {:>10} {:>7}  build directory",
            "arch", "run true", "ratio"
        );
        for ((name, p), time) in runs.iter().zip(&medians) {
            println!(
                "{name:<8} {:>9.2}s {:>6.2}x  {}",
                time.as_secs_f64(),
                time.as_secs_f64() / medians[0].as_secs_f64(),
                p.build_dir.display()
            );
        }
        println!(
            "(median of {} runs each, alternating; profile {}; the ratio is to {})",
            self.runs.max(1),
            runs[0].1.profile.name,
            runs[0].0
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

    /// Each architecture's context and prepared target, in `--dir`'s
    /// build directory where one is given.
    fn per_arch(&self, ctx: &Ctx, names: &[String]) -> Result<Vec<(String, Ctx, Prepared)>> {
        let mut dirs = std::collections::HashMap::new();
        for pair in &self.dirs {
            let Some((arch, dir)) = pair.split_once('=') else {
                bail!("--dir {pair}: give ARCH=DIR, e.g. --dir um=build/tiny-um");
            };
            dirs.insert(arch.to_string(), std::path::absolute(dir)?);
        }
        let mut out = Vec::new();
        for name in names {
            let arch_ctx = ctx.with_arch(name)?;
            let target = Target {
                build_dir: dirs.get(name).cloned().or(self.target.build_dir.clone()),
                ..self.target.to_target()
            };
            let p = Prepared::new(&arch_ctx, &target)?;
            out.push((name.clone(), arch_ctx, p));
        }
        Ok(out)
    }

    /// Edit net/ipv4/tcp.c (a comment appended, the file restored after),
    /// rebuild, boot under TCG with the stub waiting, and stop gdb in
    /// tcp_sendmsg_locked with the size tcp-echo sends: each phase timed.
    /// With `--arches`, each architecture in turn every run, as ratios to
    /// the first.
    fn edit_loop(&self, ctx: &Ctx) -> Result<()> {
        if !self.arches.is_empty() {
            return self.edit_loop_arches(ctx);
        }
        let targets = self.per_arch(ctx, std::slice::from_ref(&ctx.arch_name))?;
        let Some((rows, requests)) = self.timed_loops(&targets)? else {
            return Ok(());
        };
        let (rows, request, p) = (&rows[0], &requests[0], &targets[0].2);
        let median_of = |f: fn(&LoopTimes) -> Duration| median(rows.iter().map(f).collect());
        let table = [
            ("compile", median_of(|r| r.compile)),
            ("link (vmlinux)", median_of(|r| r.link)),
            ("boot image", median_of(|r| r.image)),
            ("gdb start, connect, breakpoints", median_of(|r| r.gdb_load)),
            ("boot to the stop", median_of(|r| r.boot_to_stop)),
            ("edit to the stop", median_of(|r| r.total)),
        ];
        println!(
            "{:<34} {:>9}",
            format!("phase ({})", p.profile.name),
            "time"
        );
        for (name, time) in table {
            println!("{name:<34} {:>8.2}s", time.as_secs_f64());
        }
        println!(
            "(median of {} runs; -j{}; stopped in tcp_sendmsg_locked with size = {})",
            rows.len(),
            request.jobs,
            rows[0].size
        );
        Ok(())
    }

    /// `cargo xtask run -- true` against virtme-ng's `vng --run IMAGE
    /// --exec true`, both under TCG (and KVM where it works), one run.
    fn boot(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
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

    fn edit_loop_arches(&self, ctx: &Ctx) -> Result<()> {
        let targets = self.per_arch(ctx, &self.arch_names(ctx))?;
        let Some((rows, _)) = self.timed_loops(&targets)? else {
            return Ok(());
        };
        let totals: Vec<Duration> = rows
            .iter()
            .map(|r| median(r.iter().map(|t| t.total).collect()))
            .collect();
        println!(
            "{:<8} {:>9} {:>14} {:>15} {:>7}",
            "arch", "rebuild", "boot to stop", "edit to stop", "ratio"
        );
        for (i, (name, _, _)) in targets.iter().enumerate() {
            let r = &rows[i];
            let rebuild = median(r.iter().map(|t| t.compile + t.link + t.image).collect());
            let boot = median(r.iter().map(|t| t.gdb_load + t.boot_to_stop).collect());
            println!(
                "{name:<8} {:>8.2}s {:>13.2}s {:>14.2}s {:>6.2}x",
                rebuild.as_secs_f64(),
                boot.as_secs_f64(),
                totals[i].as_secs_f64(),
                totals[i].as_secs_f64() / totals[0].as_secs_f64()
            );
        }
        println!(
            "(median of {} runs each, alternating; profile {}; stopped in tcp_sendmsg_locked with size = {}; the ratio is to {})",
            self.runs.max(1),
            targets[0].2.profile.name,
            LOOP_SIZE,
            targets[0].0
        );
        Ok(())
    }

    /// Each target built first, then `--runs` rounds of: edit tcp.c,
    /// rebuild, boot, stop in gdb, for each target in turn (one tree: the
    /// same edit serves every architecture); each rebuilt after, as the
    /// restored tcp.c is newer than tcp.o. Each target's times, and the
    /// request its full builds used; nothing under --dry-run.
    fn timed_loops(&self, targets: &[(String, Ctx, Prepared)]) -> Result<Option<TimedLoops>> {
        // It edits, builds and boots in turn: alone in each directory.
        let mut locks = Vec::new();
        let mut requests = Vec::new();
        for (_, arch_ctx, p) in targets {
            locks.push(p.lock(arch_ctx, Access::Exclusive)?);
            requests.push(self.built_first(arch_ctx, p)?);
        }
        if targets[0].1.exec.dry_run {
            return Ok(None);
        }
        let tcp = targets[0].2.tree.path.join("net/ipv4/tcp.c");
        let mut rows: Vec<Vec<LoopTimes>> = targets.iter().map(|_| Vec::new()).collect();
        for run in 0..self.runs.max(1) {
            for (i, (_, arch_ctx, p)) in targets.iter().enumerate() {
                let _restore = edit_for_a_while(
                    &tcp,
                    &format!("\n/* cargo xtask bench loop {run} {} */\n", p.arch.name),
                )?;
                let quick = BuildRequest {
                    quick: true,
                    jobs: requests[i].jobs,
                    ..BuildRequest::default_for_run()
                };
                rows[i].push(one_loop(arch_ctx, p, &quick)?);
            }
        }
        for (i, (_, arch_ctx, p)) in targets.iter().enumerate() {
            builder::build(arch_ctx, p, &requests[i])?;
        }
        drop(locks);
        Ok(Some((rows, requests)))
    }

    /// Builds `p` (the caller holds its lock) before anything is timed;
    /// the request, with `--jobs`, for the timed builds.
    fn built_first(&self, ctx: &Ctx, p: &Prepared) -> Result<BuildRequest> {
        let request = BuildRequest {
            jobs: self.jobs.unwrap_or_else(passes::default_jobs),
            ..BuildRequest::default_for_run()
        };
        eprintln!(
            "bench: making sure {} is built first",
            p.build_dir.display()
        );
        builder::build(ctx, p, &request)?;
        Ok(request)
    }

    fn build(&self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let lock = p.lock(ctx, Access::Exclusive)?;
        let request = self.built_first(ctx, &p)?;
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

/// One edit → stop, timed.
struct LoopTimes {
    compile: Duration,
    link: Duration,
    image: Duration,
    gdb_load: Duration,
    boot_to_stop: Duration,
    total: Duration,
    size: String,
}

/// Each target's loop times, and the request its full builds used.
type TimedLoops = (Vec<Vec<LoopTimes>>, Vec<BuildRequest>);

/// What tcp-echo sends in one `send()`: the stop must show it as `size`.
const LOOP_SIZE: &str = "1000";

fn one_loop(ctx: &Ctx, p: &Prepared, request: &BuildRequest) -> Result<LoopTimes> {
    let start = Instant::now();
    let outcome = builder::build(ctx, p, request)?;
    let built = start.elapsed();
    let at = |stage| outcome.stages.get(&stage).copied();
    let link_at = at(Stage::Link).unwrap_or(built);
    let image_at = at(Stage::Image).unwrap_or(built);
    let port = free_port()?;
    let run = RunRequest {
        gdb_port: Some(port),
        wait_gdb: true,
        ..RunRequest::new(Accel::Tcg)
    };
    let console = p.state().bench().join("console.log");
    let argv: Vec<String> = ["tcp-echo", "-4", "-n", "1"].map(String::from).to_vec();
    let guest = start_background(&ctx.exec, p, &run, &argv, &console)?;
    let stamp = p.state().bench().join("stamp.gdb");
    fsutil::write_if_changed(
        &stamp,
        b"python print('bench-loop connected %f' % __import__('time').time())\n",
    )?;
    let breaks = ["tcp_sendmsg_locked".to_string()];
    let batch = [
        "python print('bench-loop stopped %f' % __import__('time').time())".to_string(),
        "info args".to_string(),
    ];
    let scripts = [stamp];
    let gdb = GdbRequest {
        port,
        hardware: false,
        breaks: &breaks,
        scripts: &scripts,
        batch: &batch,
    };
    let gdb_start = SystemTime::now();
    let output = ctx
        .exec
        .capture(gdb_command(&ctx.exec, p, &ctx.study_dir(), &gdb)?)?;
    drop(guest);
    let text = String::from_utf8_lossy(&output.stdout);
    let stamp_of = |what: &str| -> Result<SystemTime> {
        let secs: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("bench-loop {what} "))?.parse().ok())
            .with_context(|| format!("gdb never printed `bench-loop {what}`:\n{text}"))?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
    };
    let (connected, stopped) = (stamp_of("connected")?, stamp_of("stopped")?);
    let size = text
        .lines()
        .find_map(|l| l.strip_prefix("size = "))
        .unwrap_or("?")
        .to_string();
    if size != LOOP_SIZE {
        bail!("the stop in tcp_sendmsg_locked shows size = {size}, not {LOOP_SIZE}:\n{text}");
    }
    let since = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
    Ok(LoopTimes {
        compile: link_at,
        link: image_at.saturating_sub(link_at),
        image: built.saturating_sub(image_at),
        gdb_load: since(gdb_start, connected),
        boot_to_stop: since(connected, stopped),
        total: built + since(gdb_start, stopped),
        size,
    })
}

/// Appends to a source file; the original bytes go back when the returned
/// guard drops, or when the tool is stopped by a signal.
fn edit_for_a_while(path: &Path, append: &str) -> Result<supervise::Restore> {
    let guard =
        supervise::Restore::new(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut edited = std::fs::read(path)?;
    edited.extend_from_slice(append.as_bytes());
    std::fs::write(path, &edited).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(guard)
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
    xtask_child_for(sh, ctx, p, &ctx.arch_name, command, build_dir)
}

fn xtask_child_for<'a>(
    sh: &'a Shell,
    ctx: &Ctx,
    p: &Prepared,
    arch: &str,
    command: &str,
    build_dir: &Path,
) -> Cmd<'a> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("cargo-xtask"));
    let (profile, cc) = (&p.profile.name, p.compiler.name());
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
        &p.make_vars(),
        "clean",
    );
    ctx.exec.capture(clean)?;
    eprintln!("bench: warm full build");
    let warm = timed(&ctx.exec, cmd())?;
    std::fs::remove_dir_all(&bench_dir)?;
    std::fs::remove_dir_all(&ccache_dir)?;
    Ok((warm, cold))
}

/// `.config` and the state that describes the build, so the copy builds
/// the same kernel.
fn copy_build_inputs(from: &Path, to: &Path) -> Result<()> {
    let to_state = StateDir::of(to);
    std::fs::create_dir_all(to_state.path())?;
    std::fs::copy(from.join(".config"), to.join(".config"))?;
    for source in StateDir::of(from).build_inputs() {
        if source.exists() {
            let name = source.file_name().expect("a file of the state directory");
            std::fs::copy(&source, to_state.path().join(name))?;
        }
    }
    Ok(())
}

//! What a build through the tool costs against bare make with the same
//! command line: a no-op build, a rebuild after touching net/ipv4/tcp.c,
//! and a full build with a warm compiler cache against a cold one.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use xshell::Cmd;

use crate::{
    bench::{alternate, timed, xtask_child},
    builder::{ccache::CacheSetup, request::make_command, BuildRequest},
    ctx::{Ctx, Prepared},
    kernel::kbuild,
};

/// One measure against its baseline.
pub struct Row {
    pub name: &'static str,
    pub ours: Duration,
    pub base: Duration,
    pub baseline: &'static str,
}

/// The measures, alternating each with its baseline `runs` times; the
/// caller built `p` with `request` first.
pub fn measure(
    ctx: &Ctx,
    p: &Prepared,
    request: &BuildRequest,
    runs: usize,
    skip_ccache: bool,
) -> Result<Option<Vec<Row>>> {
    let cache = CacheSetup::new(request.cache)?;
    let sh = ctx.exec.sh();
    let exec = &ctx.exec;
    let make = || make_command(sh, p, request, cache.as_ref(), None);
    let jobs = format!("-j{}", request.jobs);
    let xtask_in = |dir: &Path| xtask_child(sh, ctx, p, "build", dir).arg(&jobs);
    let xtask = || xtask_in(&p.build_dir);
    let mut rows = Vec::new();

    let Some((ours, base)) = alternate(runs, || timed(exec, xtask()), || timed(exec, make()))?
    else {
        return Ok(None);
    };
    rows.push(Row {
        name: "no-op build",
        ours,
        base,
        baseline: "bare make, same command line",
    });

    let tcp = p.tree.path.join("net/ipv4/tcp.c");
    let touch = || -> Result<()> {
        let file = std::fs::File::options()
            .append(true)
            .open(&tcp)
            .with_context(|| format!("cannot open {}", tcp.display()))?;
        file.set_modified(std::time::SystemTime::now())?;
        Ok(())
    };
    let touched = alternate(
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
    if let Some((ours, base)) = touched {
        rows.push(Row {
            name: "rebuild after touching net/ipv4/tcp.c",
            ours,
            base,
            baseline: "bare make",
        });
    }
    if !skip_ccache {
        if let Some((warm, cold)) = ccache_full_builds(ctx, p, &xtask_in)? {
            rows.push(Row {
                name: "full build, ccache warm",
                ours: warm,
                base: cold,
                baseline: "ccache cold",
            });
        }
    }
    Ok(Some(rows))
}

/// A full build into a scratch copy of the build dir, with an empty ccache
/// (cold), then `make clean` and the same build again (warm).
fn ccache_full_builds<'a>(
    ctx: &Ctx,
    p: &Prepared,
    xtask_in: &dyn Fn(&Path) -> Cmd<'a>,
) -> Result<Option<(Duration, Duration)>> {
    let exec = &ctx.exec;
    let sibling = |dir: &Path, suffix: &str| {
        let name = dir
            .file_name()
            .map_or("build".into(), |n| n.to_string_lossy().into_owned());
        dir.with_file_name(format!("{name}-{suffix}"))
    };
    let bench_dir = sibling(&p.build_dir, "bench");
    let ccache_dir = sibling(&bench_dir, "ccache");
    for dir in [&bench_dir, &ccache_dir] {
        exec.remove_all(dir)?;
    }
    p.state().copy_build_inputs(exec, &bench_dir)?;
    let cmd = || xtask_in(&bench_dir).env("CCACHE_DIR", &ccache_dir);
    eprintln!("bench: cold full build in {}", bench_dir.display());
    let Some(cold) = timed(exec, cmd())? else {
        return Ok(None);
    };
    let clean = kbuild::config_make(
        exec.sh(),
        &p.tree.path,
        &bench_dir,
        &p.arch.make_arch,
        &p.make_vars(),
        "clean",
    );
    exec.capture(clean)?;
    eprintln!("bench: warm full build");
    let warm = timed(exec, cmd())?;
    exec.remove_all(&bench_dir)?;
    exec.remove_all(&ccache_dir)?;
    Ok(warm.map(|warm| (warm, cold)))
}

/// The measures as a table, each with its ratio to its baseline.
pub fn table(rows: &[Row], runs: usize, profile: &str, jobs: usize) -> String {
    let mut out = format!(
        "{:<40} {:>10} {:>10} {:>7}  baseline\n",
        "measure", "time", "baseline", "ratio"
    );
    for r in rows {
        out += &format!(
            "{:<40} {:>9.2}s {:>9.2}s {:>6.2}x  {}\n",
            r.name,
            r.ours.as_secs_f64(),
            r.base.as_secs_f64(),
            r.ours.as_secs_f64() / r.base.as_secs_f64(),
            r.baseline
        );
    }
    out + &format!(
        "(median of {} runs each, alternated; profile {profile}, -j{jobs})\n",
        runs.max(1)
    )
}

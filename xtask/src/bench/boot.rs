//! The boot to a command: `run -- true` against virtme-ng's `vng --run
//! IMAGE --exec true`, and across architectures.

use std::time::Duration;

use anyhow::Result;

use crate::{
    bench::{median, timed, xtask_child, Target},
    ctx::{Ctx, Prepared},
    guest::kvm,
    study::host_tools,
    util::exec::search_path_with,
};

/// One accelerator's boot times: ours, and virtme-ng's or why it did not
/// count.
pub struct PeerRow {
    pub accel: &'static str,
    pub ours: Duration,
    pub theirs: Result<Duration, String>,
}

/// Both tools under TCG (and KVM where it works), `runs` each, alternating;
/// a virtme-ng boot past `limit` counts as hung. The caller built `p`.
pub fn against_virtme(
    ctx: &Ctx,
    p: &Prepared,
    runs: usize,
    limit: Duration,
) -> Result<Option<Vec<PeerRow>>> {
    let image = p.image();
    let vng = host_tools::required_path(&ctx.study_dir(), "bench run", &p.arch.name, "virtme-ng")?;
    // vng runs virtme-run and virtme-prep-kdir-mods from PATH: the venv's
    // bin, where setup installs it, comes first.
    let path = search_path_with(vng.parent().expect("a file's path"))?;
    let sh = ctx.exec.sh();
    let ours = |accel: &str| {
        xtask_child(sh, ctx, p, "run", &p.build_dir).args(["--accel", accel, "--", "true"])
    };
    let theirs = |kvm: bool| {
        let no_kvm = (!kvm).then_some("--disable-kvm");
        xshell::cmd!(sh, "{vng} --run {image} --force-9p {no_kvm...} --exec true")
            .env("PATH", &path)
    };
    let mut accels = vec![("tcg", false)];
    if matches!(kvm::cached_kvm_verdict(ctx, p), Some(Ok(_))) {
        accels.push(("kvm", true));
    }
    let mut rows = Vec::new();
    for (accel, kvm) in accels {
        let mut ours_times = Vec::new();
        let mut theirs_times = Vec::new();
        for _ in 0..runs.max(1) {
            let (Some(o), Some(t)) = (
                timed(&ctx.exec, ours(accel))?,
                ctx.exec.time(theirs(kvm), Some(limit))?,
            ) else {
                return Ok(None);
            };
            ours_times.push(o);
            theirs_times.push(t);
        }
        let theirs = theirs_times
            .into_iter()
            .collect::<Result<Vec<_>, String>>()
            .map(median);
        rows.push(PeerRow {
            accel,
            ours: median(ours_times),
            theirs,
        });
    }
    Ok(Some(rows))
}

/// `run -- true` on each target (each built), `runs` rounds, alternating:
/// each target's median.
pub fn across_arches(targets: &[Target], runs: usize) -> Result<Option<Vec<Duration>>> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    for _ in 0..runs.max(1) {
        for (i, t) in targets.iter().enumerate() {
            let sh = t.ctx.exec.sh();
            let cmd = xtask_child(sh, &t.ctx, &t.p, "run", &t.p.build_dir).args(["--", "true"]);
            let Some(time) = timed(&t.ctx.exec, cmd)? else {
                return Ok(None);
            };
            times[i].push(time);
        }
    }
    Ok(Some(times.into_iter().map(median).collect()))
}

/// Both tools' boot times side by side, with the ratio.
pub fn peer_table(rows: &[PeerRow], runs: usize, image: &std::path::Path) -> String {
    let mut out = format!(
        "{:<8} {:>12} {:>22} {:>7}\n",
        "accel", "cargo xtask", "virtme-ng", "ratio"
    );
    for r in rows {
        let ours = r.ours.as_secs_f64();
        out += &match &r.theirs {
            Ok(t) => format!(
                "{:<8} {ours:>11.2}s {:>21.2}s {:>6.2}x\n",
                r.accel,
                t.as_secs_f64(),
                ours / t.as_secs_f64()
            ),
            Err(why) => format!("{:<8} {ours:>11.2}s {why:>22} {:>7}\n", r.accel, "-"),
        };
    }
    out + &format!(
        "(median of {} runs; image {})\n",
        runs.max(1),
        image.display()
    )
}

/// Each architecture's boot time, as a ratio to the first's.
pub fn arches_table(targets: &[Target], medians: &[Duration], runs: usize) -> String {
    let mut out = format!(
        "{:<8} {:>10} {:>7}  build directory\n",
        "arch", "run true", "ratio"
    );
    for (t, time) in targets.iter().zip(medians) {
        out += &format!(
            "{:<8} {:>9.2}s {:>6.2}x  {}\n",
            t.arch,
            time.as_secs_f64(),
            time.as_secs_f64() / medians[0].as_secs_f64(),
            t.p.build_dir.display()
        );
    }
    out + &format!(
        "(median of {} runs each, alternating; profile {}; the ratio is to {})\n",
        runs.max(1),
        targets[0].p.profile.name,
        targets[0].arch
    )
}

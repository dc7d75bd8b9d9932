//! Measuring the tool, as ratios against a baseline timed in the same run:
//! what a build costs on top of make ([`build_cost`]), the edit loop from a
//! change in tcp.c to a gdb stop ([`edit_loop`]), and the boot to a command
//! against virtme-ng and across architectures ([`boot`]). Every timed
//! command is a child started through the executor; a dry run shows them
//! and times nothing (`None`). It uses `guest`, `builder`, `ctx`, `kernel`,
//! `study` and `util`.

pub mod boot;
pub mod build_cost;
pub mod edit_loop;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use xshell::{Cmd, Shell};

use crate::{
    ctx::{Ctx, Prepared},
    util::exec::Exec,
};

/// One architecture's context and prepared build directory.
pub struct Target {
    pub arch: String,
    pub ctx: Ctx,
    pub p: Prepared,
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
    let (profile, cc, arch) = (&p.profile.name, p.compiler.name(), &p.arch.name);
    let (tree, profiles) = (&p.tree.path, &ctx.profiles_path);
    xshell::cmd!(
        sh,
        "{exe} {command} --profile {profile} --cc {cc} --arch {arch} --kernel {tree} --build-dir {build_dir} --profiles {profiles}"
    )
}

/// How long `cmd` took; its failure is an error; `None` under a dry run.
fn timed(exec: &Exec, cmd: Cmd<'_>) -> Result<Option<Duration>> {
    exec.time(cmd, None)?
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// Runs `a` and `b` alternately `runs` times each; their medians.
fn alternate(
    runs: usize,
    mut a: impl FnMut() -> Result<Option<Duration>>,
    mut b: impl FnMut() -> Result<Option<Duration>>,
) -> Result<Option<(Duration, Duration)>> {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let (Some(x), Some(y)) = (a()?, b()?) else {
            return Ok(None);
        };
        xs.push(x);
        ys.push(y);
    }
    Ok(Some((median(xs), median(ys))))
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_run() {
        let s = Duration::from_secs;
        assert_eq!(median(vec![s(9), s(1), s(5)]), s(5));
        assert_eq!(median(vec![s(2)]), s(2));
    }
}

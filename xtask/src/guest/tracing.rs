//! One command run in the guest under ftrace: whether the build can trace
//! at all, the trace script written and run, and the run's output folder
//! (`trace.txt`, or the functions the guest could not trace) kept until
//! the result is dropped.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};
use strsim::levenshtein as edit_distance;

use crate::{
    ctx::{Ctx, Prepared},
    guest::{
        kvm::{self, AccelChoice},
        run::{self, RunRequest},
        trace_script::{guest_script, TraceSetup},
    },
    study::arch::Arch,
    util::{fsutil, supervise::TempPath},
};

pub struct TraceRequest<'a> {
    pub setup: TraceSetup,
    pub command: &'a [String],
    pub accel: AccelChoice,
    pub timeout: Duration,
    pub initramfs: bool,
}

/// What a traced run left: the command's exit status, and the folder the
/// guest wrote (removed when this drops).
pub struct TracedRun {
    pub exit: i32,
    pub out_dir: PathBuf,
    _cleanup: TempPath,
}

impl TracedRun {
    /// The trace the guest wrote; an error in one line per function the
    /// guest could not trace (its `missing` file), with the nearest names
    /// it could.
    pub fn trace_text(&self) -> Result<String> {
        if let Ok(missing) = std::fs::read_to_string(self.out_dir.join("missing")) {
            let available =
                std::fs::read_to_string(self.out_dir.join("available")).unwrap_or_default();
            let names: Vec<&str> = available.lines().collect();
            let lines: Vec<String> = missing
                .split_whitespace()
                .map(|name| {
                    format!(
                        "{name} cannot be traced: it is not in available_filter_functions (inlined, notrace, or not built); nearest: {}",
                        nearest(name, &names, 5).join(", ")
                    )
                })
                .collect();
            bail!("{}", lines.join("\n"));
        }
        fsutil::read_to_string(&self.out_dir.join("trace.txt")).context("the guest wrote no trace")
    }
}

fn nearest<'a>(name: &str, names: &[&'a str], count: usize) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> =
        names.iter().map(|n| (edit_distance(name, n), *n)).collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(count).map(|(_, n)| n).collect()
}

/// Fails in one line when `p` cannot run function_graph: an architecture
/// without it (um), or a profile without the options.
pub fn require_ftrace(ctx: &Ctx, p: &Prepared) -> Result<()> {
    if !p.arch.ftrace {
        let with: Vec<String> = Arch::names(&ctx.study_dir())
            .into_iter()
            .filter(|n| Arch::load(&ctx.study_dir(), n).is_ok_and(|a| a.ftrace))
            .collect();
        bail!(
            "{} has no ftrace function_graph (study/arch/{}.toml: ftrace = false); trace on a build for {} (--arch)",
            p.arch.name,
            p.arch.name,
            with.join(" or ")
        );
    }
    Ok(())
}

/// Runs `req.command` in the guest with the trace script around it (the
/// caller built the image); `None` under a dry run.
pub fn trace_command(ctx: &Ctx, p: &Prepared, req: &TraceRequest) -> Result<Option<TracedRun>> {
    let config = p.config()?;
    for option in ["FUNCTION_GRAPH_TRACER", "DYNAMIC_FTRACE"] {
        if config.get(option) != "y" {
            bail!(
                "profile {} has CONFIG_{option} off; add {option} = true to it",
                p.profile.name
            );
        }
    }
    let out_dir = p
        .state()
        .trace()
        .join(format!("run-{}", std::process::id()));
    let cleanup = TempPath::new(out_dir.clone());
    let script = out_dir.join("trace.sh");
    ctx.exec.write(&script, guest_script(&req.setup))?;
    let accel = kvm::choose_accel(ctx, p, req.accel)?;
    let request = RunRequest {
        out_dir: Some(out_dir.clone()),
        files: vec![script.clone()],
        initramfs: req.initramfs,
        timeout: req.timeout,
        console_to_stderr: true,
        ..RunRequest::new(accel)
    };
    let mut argv = vec!["/bin/sh".to_string(), script.display().to_string()];
    argv.extend(req.command.iter().cloned());
    let Some(outcome) = run::run_command(ctx, p, &request, &argv)? else {
        return Ok(None);
    };
    // A guest that never reported a status says why, not "no trace".
    let Some(exit) = outcome.exit else {
        bail!("{}", outcome.failure())
    };
    Ok(Some(TracedRun {
        exit,
        out_dir,
        _cleanup: cleanup,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names() {
        let names = [
            "tcp_sendmsg",
            "tcp_sendmsg_locked",
            "udp_sendmsg",
            "tcp_recvmsg",
        ];
        assert_eq!(
            nearest("tcp_sendmsgg", &names, 2),
            ["tcp_sendmsg", "udp_sendmsg"]
        );
    }
}

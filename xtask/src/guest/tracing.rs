//! One command run in the guest under ftrace: whether the build can trace
//! at all, the trace script written and run, and the run's output folder
//! (`trace.txt`, or the functions the guest could not trace) kept until
//! the result is dropped.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Result};

use crate::{
    ctx::{Ctx, Prepared},
    guest::{
        kvm::{self, AccelChoice},
        run::{self, RunRequest},
        trace_script::{guest_script, TraceSetup},
    },
    study::arch::Arch,
    util::supervise::TempPath,
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

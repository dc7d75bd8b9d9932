//! `cargo xtask record`: one run of CMD recorded by QEMU (guest::recording)
//! on an initramfs guest, whole or not at all, for `replay` to step through
//! backwards; its exit status is CMD's.

use std::{process::ExitCode, time::Duration};

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        freebsd_guest,
        recording::{self, Mode, Rr},
        run::{self, RunRequest},
    },
    study::host_tools,
    util::{lock::Access, supervise::TempPath},
};

impl cli::Record {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        freebsd_guest::refuse_on_freebsd(&p, "record")?;
        let setup = recording::setup(&p, &ctx.study_dir())?;
        let dir = recording::dir_of(&p, &self.name)?;
        refuse_host_program(&self.command)?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        host_tools::require(&ctx.study_dir(), "record", &p.arch.name)?;
        let candidates = recording::candidates(&ctx.exec, &ctx.root, &ctx.study_dir(), &p)?;
        let qemu = recording::pick_for_record(candidates, &p)?;
        if !qemu.reverses {
            eprintln!("note: {}", recording::no_reverse_line(&qemu, setup));
        }
        // Written aside, in the run folder (a killed record's is removed
        // by the next run), and moved into place once whole.
        let partial = p
            .state()
            .run()
            .join(format!("record-{}", std::process::id()));
        let _partial = TempPath::new(partial.clone());
        let exec = &ctx.exec;
        exec.remove_all(&partial)?;
        exec.create_dir_all(&partial)?;
        let snapshots = partial.join(recording::SNAPSHOTS);
        let sh = exec.sh();
        exec.run(cmd!(sh, "qemu-img create -q -f qcow2 {snapshots} 1G"))?;
        let rr = Rr {
            mode: Mode::Record,
            dir: partial.clone(),
            qemu: qemu.clone(),
        };
        let request = RunRequest {
            timeout: Duration::from_secs(self.timeout),
            ..RunRequest::recorded(&p, rr)
        };
        let Some(outcome) = run::run_command(ctx, &p, &request, &self.command)? else {
            return Ok(ExitCode::SUCCESS);
        };
        let Some(exit) = recording::exit_from_console(&outcome.console_tail) else {
            bail!("{}", outcome.failure());
        };
        let build_id = recording::build_id(&p.build_dir.join("vmlinux"))?;
        exec.write(&partial.join(recording::BUILD_ID), format!("{build_id}\n"))?;
        exec.write(
            &partial.join(recording::COMMAND),
            self.command
                .iter()
                .map(|w| format!("{w}\n"))
                .collect::<String>(),
        )?;
        exec.write(&partial.join(recording::EXIT), format!("{exit}\n"))?;
        exec.write(
            &partial.join(recording::QEMU),
            format!("{}\n", qemu.version),
        )?;
        exec.remove_all(&dir)?;
        exec.create_dir_all(&p.state().recordings())?;
        exec.rename(&partial, &dir)?;
        let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0.0, |m| m.len() as f64 / 1e6);
        eprintln!(
            "recorded in {:.1} s: {} ({:.1} MB log, {:.1} MB snapshot; {}); replay it with \
             `cargo xtask replay{}`",
            outcome.elapsed.as_secs_f64(),
            dir.display(),
            size(recording::LOG),
            size(recording::SNAPSHOTS),
            qemu.version,
            if self.name == recording::DEFAULT_NAME {
                String::new()
            } else {
                format!(" {}", self.name)
            }
        );
        Ok(run::exit_code(exit))
    }
}

/// A program given as a host path: only a guest on the host's root (9p)
/// runs it, and QEMU neither snapshots nor replays a 9p export.
fn refuse_host_program(argv: &[String]) -> Result<()> {
    let program = &argv[0];
    if program.contains('/') && !program.starts_with("/bin/") {
        bail!(
            "record: {program} is a host path, which only a guest on the host's root (9p) runs, \
             and QEMU can neither snapshot nor replay a 9p export: record a guest program \
             (tcp-echo) or a busybox applet by name"
        );
    }
    Ok(())
}

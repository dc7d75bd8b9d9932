//! `cargo xtask replay`: a recording (`record`) replayed by QEMU, the same
//! console every time; with -b, -x or --batch, under gdb as `debug` gives
//! it (guest::gdb::session_on_guest), where reverse commands work:
//! gdb's own record from the first stop answers at once, QEMU's reverse
//! execution (back to the boot) after `record stop` or with --qemu-reverse.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::{
    cli,
    ctx::{Ctx, Prepared},
    guest::{
        freebsd_guest,
        gdb::{free_port, GdbRequest},
        gdb_session::session_on_guest,
        recording::{self, Mode, Recording, Rr},
        run::{self, RunRequest},
    },
    util::lock::Access,
};

impl cli::Replay {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        freebsd_guest::refuse_on_freebsd(&p, "replay")?;
        let setup = recording::setup(&p, &ctx.study_dir())?;
        let dir = recording::dir_of(&p, &self.name)?;
        // Not rebuilt: a recording is of the vmlinux that is there.
        let _lock = p.lock(ctx, Access::Shared)?;
        let recorded = Recording::load(&p, &dir)?;
        let candidates = recording::candidates(&ctx.exec, &ctx.root, &ctx.study_dir(), &p)?;
        let qemu = recording::pick_for_replay(candidates, &recorded.qemu_version)?;
        let no_reverse = (!qemu.reverses).then(|| recording::no_reverse_line(&qemu, setup));
        let session = &self.session;
        let gdb_wanted =
            !session.breaks.is_empty() || !session.scripts.is_empty() || !session.batch.is_empty();
        let port = match (gdb_wanted, self.port) {
            (false, _) => None,
            (true, Some(port)) => Some(port),
            (true, None) => Some(free_port()?),
        };
        let rr = Rr {
            mode: Mode::Replay,
            dir: dir.clone(),
            qemu,
        };
        let request = RunRequest {
            gdb_port: port,
            // From the reset vector: a replay is the recorded run, held by nothing.
            wait_gdb: port.is_some(),
            ..RunRequest::recorded(&p, rr)
        };
        let Some(port) = port else {
            let Some(outcome) = run::run_command(ctx, &p, &request, &recorded.command)? else {
                return Ok(ExitCode::SUCCESS);
            };
            let Some(exit) = recording::exit_from_console(&outcome.console_tail) else {
                bail!("the replay did not end as recorded: {}", outcome.failure());
            };
            eprintln!(
                "replayed in {:.1} s: `{}` exited with status {exit}{}",
                outcome.elapsed.as_secs_f64(),
                recorded.command.join(" "),
                if exit == recorded.exit {
                    ", as recorded".to_string()
                } else {
                    format!(", but {} when recorded", recorded.exit)
                }
            );
            return Ok(run::exit_code(exit));
        };
        let gdb = GdbRequest {
            port,
            hardware: false,
            breaks: &session.breaks,
            only_comm: None,
            scripts: &session.scripts,
            batch: &session.batch,
            index_cache: true,
            release: None,
            record: !self.qemu_reverse,
            no_reverse,
        };
        session_on_guest(ctx, &p, &request, &recorded.command, gdb)
    }
}

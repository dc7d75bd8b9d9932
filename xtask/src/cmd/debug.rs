//! `cargo xtask debug`: from an edited source file to a gdb prompt stopped
//! at FUNC, in one command and one terminal: build (not even make's walk
//! when nothing changed: builder::inputs), boot while gdb reads vmlinux,
//! the command held until gdb's breakpoints are in (guest::hold::GdbWait),
//! and QEMU torn down when gdb exits.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::{
    builder::{self, BuildRequest},
    cli,
    ctx::{Ctx, Prepared},
    guest::{
        gdb::{free_port, GdbRequest},
        gdb_session::session_on_guest,
        qemu::Accel,
        run::RunRequest,
    },
    study::arch::Arch,
    util::lock::Access,
};

impl cli::Debug {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let cpu_features = match (&p.arch.record, self.record) {
            (_, false) => Vec::new(),
            (None, true) => bail!(
                "--record: gdb's process record is not set up for {} (study/arch/{}.toml has no \
                 [record] table); it is for {}",
                p.arch.name,
                p.arch.name,
                Arch::names_where(&ctx.study_dir(), |a| a.record.is_some()).join(" and ")
            ),
            (Some(_), true) if self.session.breaks.is_empty() => {
                bail!("--record records from the first stop: give it one with -b FUNC")
            }
            (Some(record), true) => record.cpu_features.clone(),
        };
        let mut lock = p.lock(ctx, Access::Shared)?;
        // Whether this vmlinux is the one the last debug saw: then gdb's
        // index cache pays (GdbRequest::index_cache).
        let mut unchanged = true;
        if self.no_build {
            builder::ensure_built(ctx, &p, &mut lock)?;
        } else {
            lock.exclusive()?;
            let quick = BuildRequest {
                quick: true,
                ..BuildRequest::default_for_run()
            };
            if p.freebsd.is_some() {
                // make.py's own walk: no index of the inputs to skip it.
                builder::freebsd::build(ctx, &p, &quick)?;
                unchanged = false;
            } else if let Some(outcome) = builder::build(ctx, &p, &quick)? {
                unchanged = outcome.passes == 0;
                eprintln!(
                    "built in {:.1} s ({} objects compiled)",
                    outcome.elapsed.as_secs_f64(),
                    outcome.compiled
                );
            }
            // The guest and gdb only read the build: others may too.
            lock.shared()?;
        }
        let port = match self.port {
            Some(port) => port,
            None => free_port()?,
        };
        // gdb drives this guest: TCG, so breakpoints need no hardware slots.
        let request = RunRequest {
            gdb_port: Some(port),
            wait_gdb: true,
            hold_for_gdb: !self.from_boot,
            cpu_features,
            ..RunRequest::new(Accel::Tcg)
        };
        let gdb = GdbRequest {
            port,
            hardware: false,
            breaks: &self.session.breaks,
            only_comm: None,
            scripts: &self.session.scripts,
            batch: &self.session.batch,
            index_cache: unchanged,
            release: None,
            record: self.record,
            no_reverse: None,
        };
        session_on_guest(ctx, &p, &request, &self.command, gdb)
    }
}

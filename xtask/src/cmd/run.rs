//! `cargo xtask run`: boot the build in QEMU and run one command in the
//! guest (or a shell), exiting with the command's status.

use std::{net::TcpListener, process::ExitCode, time::Duration};

use anyhow::{bail, Result};

use crate::{
    builder::{self, BuildRequest},
    cli,
    ctx::{Ctx, Prepared},
    guest::{
        kvm,
        run::{self, RunRequest},
        snapshot,
    },
    study::{arch::Runner, host_tools},
    util::lock::Access,
};

impl cli::Run {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        if self.snapshot {
            snapshot::refuse(&p)?;
        }
        // Shared while the guest runs: others may boot or debug the same
        // build, but not rebuild it under us.
        let mut lock = p.lock(ctx, Access::Shared)?;
        if self.build {
            lock.exclusive()?;
            if p.freebsd.is_some() {
                builder::freebsd::build(ctx, &p, &BuildRequest::default_for_run())?;
            } else {
                builder::build(ctx, &p, &BuildRequest::default_for_run())?;
            }
            lock.shared()?;
        } else {
            builder::ensure_built(ctx, &p, &mut lock)?;
        }
        host_tools::require(&ctx.study_dir(), "run", &p.arch.name)?;
        // --wait-gdb alone means the stub on its default port.
        let gdb_port = match (self.gdb, self.wait_gdb) {
            (Some(port), _) => Some(port.unwrap_or(1234)),
            (None, true) => Some(1234),
            (None, false) => None,
        };
        if let Some(port) = gdb_port {
            check_port_free(port)?;
        }
        // gdbserver starts UML stopped before its first instruction: under
        // UML every --gdb waits for the debugger.
        let wait_gdb = self.wait_gdb || (gdb_port.is_some() && p.arch.runner == Runner::Uml);
        if wait_gdb && !self.wait_gdb {
            eprintln!("run: UML starts under gdbserver, stopped until a debugger attaches (as --wait-gdb)");
        }
        let accel = kvm::choose_accel(ctx, &p, self.accel.into())?;
        let request = RunRequest {
            accel,
            mem: self.mem,
            cpus: self.cpus,
            gdb_port,
            wait_gdb,
            hold_for_gdb: false,
            append: self.append,
            cpu_features: Vec::new(),
            qemu_args: self.qemu_arg,
            timeout: Duration::from_secs(self.timeout),
            attach_timeout: Duration::from_secs(self.attach_timeout),
            initramfs: self.initramfs,
            out_dir: None,
            files: Vec::new(),
            console_to_stderr: false,
            linger: false,
            rr: None,
        };
        let outcome = match (self.snapshot, self.command.is_empty()) {
            (true, true) => {
                bail!("run --snapshot: give the command after `--`; a shell needs a boot")
            }
            (false, true) => return run::interactive(ctx, &p, &request),
            (true, false) => snapshot::run_command(&ctx.exec, &p, &request, &self.command)?,
            (false, false) => run::run_command(ctx, &p, &request, &self.command)?,
        };
        let Some(outcome) = outcome else {
            return Ok(ExitCode::SUCCESS);
        };
        match outcome.exit {
            Some(code) => Ok(run::exit_code(code)),
            None => {
                // Not 1, which a guest's `false` gives.
                eprintln!("error: {}", outcome.failure());
                Ok(ExitCode::from(run::BOOT_FAILED))
            }
        }
    }
}

fn check_port_free(port: u16) -> Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| {
            anyhow::anyhow!(
                "gdb port 127.0.0.1:{port} is not free ({e}); pick another with --gdb=PORT"
            )
        })
}

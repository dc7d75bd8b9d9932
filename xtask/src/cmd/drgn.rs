//! `cargo xtask drgn`: drgn on the build's guest while CMD runs in it (or
//! on a guest already up, or on a vmcore), with the build's symbols and the
//! study helpers (study/drgn/).

use std::{process::ExitCode, time::Duration};

use anyhow::{bail, Result};

use crate::{
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        drgn::{drgn_command, Memory, Work},
        kvm,
        live::LiveGuest,
    },
    util::lock::Access,
};

impl cli::Drgn {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        crate::guest::freebsd_guest::refuse_on_freebsd(&p, "drgn")?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        let work = match self.code {
            Some(code) => Work::Code(code, self.script),
            None if self.script.is_empty() => Work::Interactive,
            None => Work::Script(self.script),
        };
        let guest = match (&self.core, self.attach, self.command.is_empty()) {
            (Some(_), _, false) | (_, true, false) => bail!(
                "drgn: --core and --attach read memory that is already there; leave out the \
                 command after `--` (or drop the flag to boot a guest for it)"
            ),
            (Some(_), ..) => None,
            (None, true, _) => Some(LiveGuest::attach(&p, self.qmp)?),
            (None, false, true) => bail!(
                "drgn: nothing to read; give the guest command after `--` (drgn reads the \
                 guest while it runs), --attach for a guest that `run`, `debug` or `trace` has \
                 up, or --core FILE"
            ),
            (None, false, false) => {
                let accel = kvm::choose_accel(ctx, &p, self.accel.into())?;
                let timeout = Duration::from_secs(self.timeout);
                Some(LiveGuest::boot(ctx, &p, accel, timeout, &self.command)?)
            }
        };
        let memory = match (&self.core, &guest) {
            (Some(core), _) => Memory::Core(core.clone()),
            (None, Some(guest)) => Memory::Live(guest.socket().to_path_buf()),
            (None, None) => unreachable!("a live guest or a core, matched above"),
        };
        let cmd = drgn_command(&ctx.exec, &p, &ctx.study_dir(), &memory, &work)?;
        let status = ctx.exec.status(cmd)?;
        if let Some(guest) = guest {
            guest.finish();
        }
        Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

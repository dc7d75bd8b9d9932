//! `cargo xtask gdb`: gdb on the build's vmlinux, connected to the guest's
//! stub (`run --gdb`), with the kernel's gdb scripts and breakpoints that
//! land after the prologue.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    cli,
    ctx::{Ctx, Prepared},
    guest::gdb::{run_gdb, GdbRequest},
    util::lock::Access,
};

impl cli::Gdb {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        // Shared with the guest it debugs; a build waits. (Without a
        // vmlinux there is nothing to hold: run_gdb says how to build.)
        let _lock = if p.build_dir.join("vmlinux").is_file() {
            Some(p.lock(ctx, Access::Shared)?)
        } else {
            None
        };
        let request = GdbRequest {
            port: self.port,
            hardware: self.hbreak,
            breaks: &self.session.breaks,
            only_comm: None,
            scripts: &self.session.scripts,
            batch: &self.session.batch,
            // Attaching to a running guest: the vmlinux is the last build's.
            index_cache: true,
            // A guest of `run --wait-gdb` waits at the reset vector.
            release: None,
            record: false,
            no_reverse: None,
        };
        let status = run_gdb(&ctx.exec, &p, &ctx.study_dir(), &request)?;
        Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

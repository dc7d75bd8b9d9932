//! `cargo xtask gdb`: gdb on the build's vmlinux, connected to the guest's
//! stub, with the kernel's gdb scripts and breakpoints that land after the
//! prologue.

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    cli,
    ctx::{Ctx, Prepared},
    guest::gdb::{script, Session},
    spec::host_tools,
    util::{exec::which, lock::Access},
};

impl cli::Gdb {
    pub fn run(self, ctx: &Ctx) -> Result<std::process::ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        host_tools::require(&ctx.study_dir(), "gdb")?;
        if !p.build_dir.join("vmlinux").is_file() {
            bail!(
                "no vmlinux in {}: run `cargo xtask build --profile {}`",
                p.build_dir.display(),
                p.profile.name
            );
        }
        let _lock = p.lock(ctx, Access::Shared)?;
        let config = p.config()?;
        let study_py = ctx.study_dir().join("gdb/study.py");
        let session = Session {
            build_dir: &p.build_dir,
            tree: &p.tree.path,
            study_py: &study_py,
            port: self.port,
            modules: config.get("MODULES") == "y",
            gdb_scripts: p.build_dir.join("vmlinux-gdb.py").exists(),
            hardware: self.hbreak,
            breaks: &self.breaks,
            scripts: &self.scripts,
            batch: &self.batch,
        };
        let text = script(&session);
        let script_path = p.state_dir().join(format!("gdb/session-{}.gdb", self.port));
        ctx.exec.write(&script_path, &text)?;
        let gdb = which("gdb").map_or("gdb".into(), |g| g.display().to_string());
        let sh = ctx.exec.sh();
        let version = ctx.exec.query(cmd!(sh, "{gdb} --version")).ok();
        if let Some(v) = version.and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(String::from)
        }) {
            eprintln!("gdb: {gdb} ({v})");
        }
        let batch = (!self.batch.is_empty()).then_some("-batch");
        let cmd = cmd!(sh, "{gdb} -q {batch...} -x {script_path}");
        if ctx.exec.dry_run {
            eprint!("{text}");
        }
        let status = if ctx.exec.dry_run {
            ctx.exec.run(cmd)?;
            return Ok(std::process::ExitCode::SUCCESS);
        } else {
            ctx.exec.status(cmd)?
        };
        Ok(if status.success() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        })
    }
}

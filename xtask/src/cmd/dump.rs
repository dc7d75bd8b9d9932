//! `cargo xtask dump FILE -- CMD`: a vmcore of the guest through QMP
//! (`dump-guest-memory`), once CMD has started, or at gdb's stop in FUNC
//! (`--at`, through gdb's `study-dump`), or of a guest already up.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};

use crate::{
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{gdb_session::batch_at_stop_output, kvm, live::LiveGuest, qmp},
    util::{lock::Access, supervise::TempPath},
};

impl cli::Dump {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        crate::guest::freebsd_guest::refuse_on_freebsd(&p, "dump")?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        let file = vmcore_path(&self.file)?;
        if self.attach != self.command.is_empty() {
            bail!(
                "dump: give the guest command after `--` (a guest is booted for it), or \
                 --attach for one that `run`, `debug` or `trace` has up, not both"
            );
        }
        if let Some(function) = &self.at {
            // gdb writes it: study-dump is the same QMP command at a stop.
            let batch = [format!("study-dump {}", file.display())];
            let at_stop = batch_at_stop_output(ctx, &p, function, &self.command, &batch)?;
            if let Some((_, stdout, stderr)) = at_stop {
                // study-dump's own line, not the file: one an earlier run
                // left is no proof that gdb stopped in this one.
                if !stdout.lines().any(wrote_the_dump) {
                    let old = match file.exists() {
                        true => format!(" ({} is an earlier run's)", file.display()),
                        false => String::new(),
                    };
                    bail!(
                        "gdb wrote no vmcore at a stop in {function}{old}; gdb said:\n{}{}",
                        stdout,
                        stderr
                    );
                }
                eprintln!("{}: the guest at its stop in {function}", file.display());
            }
            return Ok(());
        }
        let guest = if self.attach {
            LiveGuest::attach(&p, self.qmp)?
        } else {
            let accel = kvm::choose_accel(ctx, &p, self.accel.into())?;
            LiveGuest::boot(ctx, &p, accel, Duration::from_secs(600), &self.command)?
        };
        if !self.after.is_zero() {
            std::thread::sleep(self.after);
        }
        // QEMU writes a partial file first; FILE appears only when whole.
        let partial = file.with_file_name(format!(
            ".{}.partial-{}",
            file.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _partial = TempPath::new(partial.clone());
        let socket = guest.socket().to_path_buf();
        ctx.exec.effect(
            || {
                format!(
                    "QMP {}: dump-guest-memory to {}",
                    socket.display(),
                    partial.display()
                )
            },
            || qmp::dump_guest_memory(&socket, &partial),
        )?;
        ctx.exec.rename(&partial, &file)?;
        let dumped = !matches!(guest, LiveGuest::NotStarted(_));
        guest.finish();
        if !dumped {
            return Ok(());
        }
        eprintln!(
            "{}: read it with `cargo xtask drgn --core {}`",
            file.display(),
            file.display()
        );
        Ok(())
    }
}

/// The line study-dump (study/gdb/study.py) prints once FILE is whole:
/// `study-dump: FILE (N MiB), through SOCKET`.
fn wrote_the_dump(line: &str) -> bool {
    line.strip_prefix("study-dump: ")
        .is_some_and(|rest| rest.contains(" MiB), through "))
}

/// FILE as QEMU and gdb's script take it: absolute, in a folder that
/// exists, on one line.
fn vmcore_path(file: &std::path::Path) -> Result<PathBuf> {
    let file = std::path::absolute(file).with_context(|| format!("{}", file.display()))?;
    if file.to_string_lossy().contains('\n') {
        bail!("{:?}: a vmcore path on one line, please", file);
    }
    match file.parent() {
        Some(dir) if dir.is_dir() => Ok(file),
        _ => bail!(
            "{}: no such folder for the vmcore; create it or give another path",
            file.parent().unwrap_or(&file).display()
        ),
    }
}

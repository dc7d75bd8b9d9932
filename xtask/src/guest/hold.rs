//! How a guest with a gdb stub waits for the debugger: at the reset
//! vector, or with its command held until gdb continues (study.hold).

use std::path::PathBuf;

use crate::{ctx::Prepared, guest::run::RunRequest, study::arch::Runner};

/// How a guest with a gdb stub waits for the debugger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GdbWait {
    /// It does not: a debugger attaches whenever it comes.
    No,
    /// The CPU waits at the reset vector (QEMU's -S; UML under gdbserver
    /// waits before its first instruction anyway): a breakpoint anywhere in
    /// the boot is hit, but gdb must read vmlinux before the boot starts.
    AtReset,
    /// The kernel boots at once, and init holds the command until a file
    /// on the host's root exists, which gdb creates when it first continues
    /// (study-release-on-continue): gdb reads vmlinux during the boot, and
    /// the command starts with the breakpoints in. It needs the host's root
    /// (an initramfs guest cannot see the file) and QEMU.
    JobHeld,
}

/// The file that releases `req`'s held command, for gdb to create
/// (GdbRequest::release); `None` when the guest will not hold it. A dry run
/// answers as the real one would.
pub fn release_file(p: &Prepared, req: &RunRequest) -> Option<PathBuf> {
    (wait_of(p, req, true) == GdbWait::JobHeld).then(|| release_path(p, req))
}

/// What `req` gets on `p`'s guest, with or without a command: the host's
/// root unless the guest boots an initramfs (`--initramfs`, or a foreign
/// architecture's) or is FreeBSD (a root of its own, guest::freebsd_guest).
pub(super) fn wait_of(p: &Prepared, req: &RunRequest, has_command: bool) -> GdbWait {
    let host_root = !(req.initramfs || p.arch.is_foreign() || p.freebsd.is_some());
    gdb_wait(req, p.arch.runner, host_root, has_command)
}

/// One per guest and tool process: one tool may boot several (`bench loop`).
pub(super) fn release_path(p: &Prepared, req: &RunRequest) -> PathBuf {
    let port = req.gdb_port.unwrap_or_default();
    p.state()
        .run()
        .join(format!("release-{port}-{}", std::process::id()))
}

/// What `req` gets on this guest: a held job falls back to the wait at the
/// reset vector where the guest cannot be held.
fn gdb_wait(req: &RunRequest, runner: Runner, host_root: bool, has_command: bool) -> GdbWait {
    if req.gdb_port.is_none() {
        return GdbWait::No;
    }
    let can_hold = runner == Runner::Qemu && host_root && has_command;
    match (req.wait_gdb, req.hold_for_gdb) {
        (_, true) if can_hold => GdbWait::JobHeld,
        (true, _) | (_, true) => GdbWait::AtReset,
        (false, false) => GdbWait::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::qemu::Accel;

    /// A held command needs QEMU, the host's root and a command; anything
    /// else that asked for it waits at the reset vector, never not at all.
    #[test]
    fn a_job_is_held_for_gdb_only_where_the_guest_can_see_the_release() {
        let req = |wait_gdb, hold_for_gdb, port| RunRequest {
            gdb_port: port,
            wait_gdb,
            hold_for_gdb,
            ..RunRequest::new(Accel::Tcg)
        };
        let held = req(true, true, Some(1234));
        assert_eq!(gdb_wait(&held, Runner::Qemu, true, true), GdbWait::JobHeld);
        assert_eq!(
            gdb_wait(&req(false, true, Some(1234)), Runner::Qemu, true, true),
            GdbWait::JobHeld
        );
        // An initramfs guest, UML under gdbserver, a shell: at reset.
        assert_eq!(gdb_wait(&held, Runner::Qemu, false, true), GdbWait::AtReset);
        assert_eq!(gdb_wait(&held, Runner::Uml, true, true), GdbWait::AtReset);
        assert_eq!(gdb_wait(&held, Runner::Qemu, true, false), GdbWait::AtReset);
        // --from-boot, and a stub that waits for nobody.
        assert_eq!(
            gdb_wait(&req(true, false, Some(1234)), Runner::Qemu, true, true),
            GdbWait::AtReset
        );
        assert_eq!(
            gdb_wait(&req(false, false, Some(1234)), Runner::Qemu, true, true),
            GdbWait::No
        );
        assert_eq!(
            gdb_wait(&req(true, true, None), Runner::Qemu, true, true),
            GdbWait::No
        );
    }
}

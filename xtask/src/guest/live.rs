//! A guest whose memory the tool reads while it runs (drgn, `dump`): one
//! booted for a command and kept up until the reader is done, however soon
//! the command ends (init lingers: guest::status), or one
//! that a `run`, `debug` or `trace` of the same build directory has up.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Result};

use crate::{
    ctx::{Ctx, Prepared},
    guest::{
        qemu::Accel,
        qmp,
        run::{start_background, Background, RunRequest},
    },
    study::arch::Runner,
};

/// How long a booted guest may take to start its command: a TCG boot of
/// `study` takes seconds, on a loaded host tens of them.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub enum LiveGuest {
    /// Booted here; stopped when dropped.
    Booted(Background),
    /// Up already, in another command.
    Attached(PathBuf),
    /// A dry run: the socket a booted guest would have.
    NotStarted(PathBuf),
}

impl LiveGuest {
    /// Boots `p`'s build running `argv` and waits until init has started
    /// it, so that what `argv` sets up is (about to be) there to read.
    pub fn boot(
        ctx: &Ctx,
        p: &Prepared,
        accel: Accel,
        timeout: Duration,
        argv: &[String],
    ) -> Result<LiveGuest> {
        refuse_uml(p)?;
        let request = RunRequest {
            timeout,
            // init then names the command as it starts it: wait_started.
            append: vec!["study.verbose=1".into()],
            // Up until the reader is done, however soon the command ends.
            linger: true,
            ..RunRequest::new(accel)
        };
        let pid = std::process::id();
        let console = p.state().debug().join(format!("console-live-{pid}.log"));
        let Some(mut guest) = start_background(&ctx.exec, p, &request, argv, &console)? else {
            let socket = qmp::socket_in(&p.state().run(), pid).unwrap_or_default();
            return Ok(LiveGuest::NotStarted(socket));
        };
        let Some(socket) = guest.qmp.clone() else {
            bail!(
                "{}: too deep a path for the guest's QMP socket; use a build directory \
                 with a shorter path (--build-dir)",
                p.state().run().display()
            );
        };
        eprintln!(
            "guest console: {} (`tail -f` it in another terminal)",
            console.display()
        );
        guest.wait_started(START_TIMEOUT)?;
        wait_for_socket(&socket)?;
        Ok(LiveGuest::Booted(guest))
    }

    /// The guest of `p`'s build directory that another command has up:
    /// `socket` when given, else the only one.
    pub fn attach(p: &Prepared, socket: Option<PathBuf>) -> Result<LiveGuest> {
        refuse_uml(p)?;
        let socket = match socket {
            Some(socket) => socket,
            None => qmp::the_live_one(&p.state(), &p.build_dir)?,
        };
        Ok(LiveGuest::Attached(socket))
    }

    pub fn socket(&self) -> &Path {
        match self {
            LiveGuest::Booted(guest) => guest.qmp.as_deref().expect("checked in boot"),
            LiveGuest::Attached(socket) | LiveGuest::NotStarted(socket) => socket,
        }
    }

    /// Says how a booted guest's command ended, or that it is stopped now.
    pub fn finish(self) {
        if let LiveGuest::Booted(guest) = self {
            match guest.exit() {
                Some(code) => eprintln!("the guest command exited with status {code}"),
                None => eprintln!("stopping the guest"),
            }
        }
    }
}

/// UML has no QEMU, so no QMP and no dump; its memory is a host file that
/// drgn has no reader for.
fn refuse_uml(p: &Prepared) -> Result<()> {
    if p.arch.runner == Runner::Uml {
        bail!(
            "drgn and dump read a QEMU guest over QMP, and UML runs without QEMU; \
             use --arch x86_64 or --arch arm64"
        );
    }
    Ok(())
}

/// QEMU creates the socket as it starts, before the guest boots; by the
/// time init runs it is there, but a slow host may still be binding it.
fn wait_for_socket(socket: &Path) -> Result<()> {
    for _ in 0..50 {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{}: QEMU does not answer on its QMP socket",
        socket.display()
    )
}

//! How the guest's command reports its exit status: not on the console,
//! where the command's own output could carry a line that looks like a
//! report, but in a host folder of its own that init mounts before the
//! command starts (virtio-9p under QEMU, hostfs under UML), opens its
//! `status` file in, and unmounts, keeping the file open: the command never
//! sees the folder. The console gets only a line that ends the command's
//! output, with a token that the command cannot know (it is in that
//! folder), after which only the kernel's shutdown remains.
//!
//! The folder, as study/guest/init.c reads it:
//! - `token` (the host's): the word of init's end line;
//! - `linger` (the host's, optional): init keeps the guest up after the
//!   command, until the host stops it (a reader of its memory: drgn, `dump`);
//! - `status` (init's): the exit status, `N\n`, written before the end line.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result};

use crate::util::{exec::Exec, supervise::TempPath};

/// The 9p tag of the status folder under QEMU.
pub const STATUS_TAG: &str = "study-status";

/// One guest's status folder on the host, removed when this is dropped.
pub struct StatusFolder {
    pub dir: PathBuf,
    token: String,
    _remove: TempPath,
}

impl StatusFolder {
    /// A new folder in `run_dir` for one guest (`bench loop` boots several
    /// from one tool process), with a fresh token; `linger` keeps the guest
    /// up after its command. A dry run creates nothing.
    pub fn create(exec: &Exec, run_dir: &Path, linger: bool) -> Result<StatusFolder> {
        static GUESTS: AtomicU32 = AtomicU32::new(0);
        let n = GUESTS.fetch_add(1, Ordering::Relaxed);
        // NAME-PID: supervise::remove_stale finds a killed run's folder.
        let dir = run_dir.join(format!("status-{n}-{}", std::process::id()));
        let remove = TempPath::new(dir.clone());
        let token = fresh_token()?;
        if dir.exists() {
            exec.remove_all(&dir)?;
        }
        exec.create_dir_all(&dir)?;
        exec.write(&dir.join("token"), format!("{token}\n"))?;
        if linger {
            exec.write(&dir.join("linger"), "")?;
        }
        Ok(StatusFolder {
            dir,
            token,
            _remove: remove,
        })
    }

    /// The line init prints on the console after the command's output.
    pub fn end_line(&self) -> String {
        end_line(&self.token)
    }

    /// The word of the end line, for a guest that is handed it another way
    /// than through the folder (`run --snapshot`: over its serial port).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The command's exit status, once init has written it.
    pub fn exit(&self) -> Option<i32> {
        read_status(&self.dir)
    }
}

/// `<<<linux-study end TOKEN>>>`: study/guest/init.c prints it.
fn end_line(token: &str) -> String {
    format!("<<<linux-study end {token}>>>")
}

/// The status init wrote in `dir`: a number on one line, or nothing yet.
fn read_status(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("status"))
        .ok()?
        .strip_suffix('\n')?
        .parse()
        .ok()
}

/// 128 bits from the kernel's random source, in hex.
fn fresh_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("/dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status is a whole line: a half-written one is no status yet, and
    /// two folders never share a token.
    #[test]
    fn the_status_is_read_only_when_whole() {
        let exec = Exec::new(false, false).unwrap();
        let run = std::env::temp_dir().join(format!("status-test-{}", std::process::id()));
        let a = StatusFolder::create(&exec, &run, false).unwrap();
        let b = StatusFolder::create(&exec, &run, true).unwrap();
        assert_ne!(a.dir, b.dir);
        assert_ne!(a.end_line(), b.end_line());
        assert_eq!(a.token.len(), 32);
        assert!(!a.dir.join("linger").exists() && b.dir.join("linger").exists());
        assert_eq!(
            std::fs::read_to_string(a.dir.join("token")).unwrap(),
            format!("{}\n", a.token)
        );
        assert_eq!(a.exit(), None);
        std::fs::write(a.dir.join("status"), "3").unwrap();
        assert_eq!(a.exit(), None);
        std::fs::write(a.dir.join("status"), "3\n").unwrap();
        assert_eq!(a.exit(), Some(3));
        std::fs::remove_dir_all(&run).unwrap();
    }
}

//! Advisory file locks (flock(2), through std's `File::lock`) that say who
//! holds them: each holder writes its pid and command line into the lock
//! file, so a second command can wait with a message naming the first, or
//! refuse in one line (`--no-wait`).
//!
//! A lock file may be removed by its exclusive holder; a waiter that then
//! gets the lock checks that the path still names the file it locked, and
//! starts over if not.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::util::exec::quote;

/// Readers share; a writer is alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Shared,
    Exclusive,
}

/// What happens when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait for it, saying for whom.
    Block,
    /// Refuse at once, in one line.
    Refuse,
}

/// A held lock, released when dropped (or when the process ends, however
/// it ends: the kernel drops flock locks with the last descriptor).
pub struct FileLock {
    file: File,
    path: PathBuf,
    /// What is locked, for messages: "build directory /b/tiny".
    what: String,
    access: Access,
    wait: Wait,
}

impl FileLock {
    /// Takes the lock at `path` (created if absent) for `access`.
    pub fn acquire(path: &Path, what: &str, access: Access, wait: Wait) -> Result<FileLock> {
        loop {
            let file = open(path)?;
            let mut lock = FileLock {
                file,
                path: path.to_path_buf(),
                what: what.to_string(),
                access,
                wait,
            };
            lock.take(access)?;
            // The previous holder may have removed the file it held.
            let same = std::fs::metadata(path)
                .ok()
                .zip(lock.file.metadata().ok())
                .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
            if same {
                lock.record()?;
                return Ok(lock);
            }
        }
    }

    pub fn access(&self) -> Access {
        self.access
    }

    /// Changes the access in place (flock converts; not atomically, so a
    /// writer that was waiting may come first).
    pub fn set_access(&mut self, access: Access) -> Result<()> {
        if access == self.access {
            return Ok(());
        }
        self.take(access)?;
        self.access = access;
        self.record()
    }

    fn take(&mut self, access: Access) -> Result<()> {
        let tried = match access {
            Access::Shared => self.file.try_lock_shared(),
            Access::Exclusive => self.file.try_lock(),
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", self.path.display()))
            }
        }
        let holders = describe_holders(&self.path);
        match self.wait {
            Wait::Refuse => bail!(
                "{} is in use by {holders}; rerun without --no-wait to wait for it",
                self.what
            ),
            Wait::Block => eprintln!(
                "{} is in use by {holders}: waiting for it (--no-wait refuses instead)",
                self.what
            ),
        }
        match access {
            Access::Shared => self.file.lock_shared(),
            Access::Exclusive => self.file.lock(),
        }
        .with_context(|| format!("cannot lock {}", self.path.display()))
    }

    /// Writes this process into the lock file: alone for a writer, one line
    /// among the readers' otherwise.
    fn record(&mut self) -> Result<()> {
        if self.access == Access::Exclusive {
            self.file.set_len(0)?;
        }
        let line = format!("{} {}\n", std::process::id(), own_command_line());
        // The file is opened for appending: readers' lines do not overlap.
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Removes the lock file while still holding it (writers only): for a
    /// lock that guarded the creation of what it sits in.
    pub fn remove_file(&self) {
        if self.access == Access::Exclusive {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// "pid 123 (`xtask run -- true`)" for each live process recorded in the
/// lock file, or "another process" when none is.
pub fn describe_holders(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let holders = live_holders(&text, |pid| {
        pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
    });
    if holders.is_empty() {
        "another process".into()
    } else {
        holders.join(", ")
    }
}

fn live_holders(text: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some((pid, command)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let entry = format!("pid {pid} (`{command}`)");
        if alive(pid) && !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// This process's command line, as a shell would show it, the program by
/// its file name.
fn own_command_line() -> String {
    let raw = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let mut words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| quote(&String::from_utf8_lossy(w)))
        .collect();
    if let Some(first) = words.first_mut() {
        if let Some(name) = Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    words.join(" ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_the_live_ones_once_each() {
        let text = "10 xtask run -- true\n11 xtask gdb\n10 xtask run -- true\njunk\n";
        assert_eq!(
            live_holders(text, |pid| pid == 10),
            ["pid 10 (`xtask run -- true`)"]
        );
    }

    #[test]
    fn a_second_writer_is_refused_or_waits() {
        let dir = std::env::temp_dir().join(format!("lock-test-{}", std::process::id()));
        let path = dir.join("lock");
        let first = FileLock::acquire(&path, "test dir", Access::Exclusive, Wait::Block).unwrap();
        // Another open file description conflicts, as another process would.
        let err = FileLock::acquire(&path, "test dir", Access::Shared, Wait::Refuse)
            .err()
            .expect("refused");
        // Our own pid is left out of the holders: "another process".
        assert_eq!(
            err.to_string(),
            "test dir is in use by another process; rerun without --no-wait to wait for it"
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with(&format!("{} ", std::process::id())));
        drop(first);
        let mut shared =
            FileLock::acquire(&path, "test dir", Access::Shared, Wait::Refuse).unwrap();
        let _other = FileLock::acquire(&path, "test dir", Access::Shared, Wait::Refuse).unwrap();
        assert!(shared.set_access(Access::Exclusive).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

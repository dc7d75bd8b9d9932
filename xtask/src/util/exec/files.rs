//! The executor's side of the file system: generated files written
//! atomically and only when they change, copies, moves, removals, links,
//! logs and locks, each of which a dry run only says it would do.

use std::{io::Write, path::Path};

use anyhow::{Context, Result};

use crate::util::{
    exec::Exec,
    fsutil,
    lock::{Access, FileLock, Wait},
};

impl Exec {
    /// Writes a generated file atomically, only when its content changes.
    /// Under `--dry-run` it only says what it would write.
    pub fn write(&self, path: &Path, contents: impl AsRef<[u8]>) -> Result<bool> {
        let contents = contents.as_ref();
        if self.dry_run {
            if !self.announced.borrow_mut().insert(path.to_path_buf()) {
                return Ok(false);
            }
            let unchanged = std::fs::read(path).is_ok_and(|old| old == contents);
            let what = if unchanged {
                "unchanged"
            } else {
                "would write"
            };
            eprintln!("# {what}: {}", path.display());
            return Ok(false);
        }
        fsutil::write_if_changed(path, contents)
    }

    /// [`Exec::write`] for a file the user reads to follow a dry run (the
    /// gdb session's script): a dry run prints its text too.
    pub fn write_showing(&self, path: &Path, contents: &str) -> Result<bool> {
        if self.dry_run {
            eprint!("{contents}");
        }
        self.write(path, contents)
    }

    /// Copies `from` to `to` as [`Exec::write`] writes: atomically, only
    /// when `to` differs. Returns whether it wrote.
    pub fn copy(&self, from: &Path, to: &Path) -> Result<bool> {
        if self.dry_run {
            eprintln!("# would copy {} to {}", from.display(), to.display());
            return Ok(false);
        }
        fsutil::copy_if_changed(from, to)
    }

    /// Creates `dir` and its parents; a dry run creates nothing, silently
    /// (what it would write inside is said where it is written).
    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
    }

    /// Removes `path` (a directory with its contents, or a file) when it is
    /// there.
    pub fn remove_all(&self, path: &Path) -> Result<()> {
        if !path.exists() && path.symlink_metadata().is_err() {
            return Ok(());
        }
        if self.dry_run {
            eprintln!("# would remove {}", path.display());
            return Ok(());
        }
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))
    }

    /// Makes `link` a symbolic link to `target`.
    pub fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        std::os::unix::fs::symlink(target, link)
            .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
    }

    /// Moves `from` to `to` (one rename, so a reader sees either or none).
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        if self.dry_run {
            eprintln!("# would move {} to {}", from.display(), to.display());
            return Ok(());
        }
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
    }

    /// A file written line by line as a command goes (a log); under a dry
    /// run, a sink that keeps nothing.
    pub fn create(&self, path: &Path) -> Result<Sink> {
        if self.dry_run {
            return Ok(Sink(None));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            self.create_dir_all(dir)?;
        }
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Sink(Some(file)))
    }

    /// Takes the lock at `path`; a dry run, which changes nothing, takes
    /// none.
    pub fn lock(
        &self,
        path: &Path,
        what: &str,
        access: Access,
        wait: Wait,
    ) -> Result<Option<FileLock>> {
        if self.dry_run {
            return Ok(None);
        }
        FileLock::acquire(path, what, access, wait).map(Some)
    }
}

/// What [`Exec::create`] hands out: a file, or under a dry run nothing.
pub struct Sink(Option<std::fs::File>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(file) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

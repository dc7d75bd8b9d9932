//! A build directory's own folder, `DIR/.study/` ([`StateDir`]: the one
//! place that names the files the tool keeps there), and its lock
//! ([`BuildLock`]), which keeps two commands from writing one build
//! directory at once.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::util::{
    exec::Exec,
    lock::{Access, FileLock},
};

/// A build directory's state, `DIR/.study/`: the one place that names the
/// files the tool keeps there. What describes the build (the profile's
/// snapshot, the last `.config`, the recorded fallbacks) is
/// [`StateDir::build_inputs`], which a copy of the directory takes along;
/// the rest is a run's, a lock's, or a cache.
#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The folder's name inside a build directory.
    pub const NAME: &'static str = ".study";

    pub fn of(build_dir: &Path) -> StateDir {
        StateDir(build_dir.join(StateDir::NAME))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The inputs the last successful `config` saw.
    pub fn profile_snapshot(&self) -> PathBuf {
        self.0.join("profile.snapshot")
    }

    /// A copy of the `.config` that `config` wrote: a differing `.config`
    /// was edited by hand.
    pub fn config_last(&self) -> PathBuf {
        self.0.join("config.last")
    }

    /// The objects moved up the fallback ladder, and why.
    pub fn fallbacks(&self) -> PathBuf {
        self.0.join("fallbacks.toml")
    }

    /// What a copy of the build directory needs to build the same kernel.
    pub fn build_inputs(&self) -> [PathBuf; 4] {
        [
            self.profile_snapshot(),
            self.config_last(),
            self.fallbacks(),
            self.follow(),
        ]
    }

    /// Copies `.config` and [`StateDir::build_inputs`] into the build
    /// directory `to`, so that it builds the same kernel.
    pub fn copy_build_inputs(&self, exec: &Exec, to: &Path) -> Result<()> {
        let build_dir = self
            .0
            .parent()
            .expect("the state lives in a build directory");
        exec.copy(&build_dir.join(".config"), &to.join(".config"))?;
        let to_state = StateDir::of(to);
        for source in self.build_inputs() {
            if source.exists() {
                let name = source.file_name().expect("a file of the state directory");
                exec.copy(&source, &to_state.path().join(name))?;
            }
        }
        Ok(())
    }

    /// The rules `follow` adds to the profile's, for this directory only.
    pub fn follow(&self) -> PathBuf {
        self.0.join("follow.toml")
    }

    /// The static call graph of the directory's vmlinux (`callgraph`).
    pub fn callgraph_index(&self) -> PathBuf {
        self.0.join("callgraph.index")
    }

    /// Kconfig's scratch directory.
    pub fn kconfig(&self) -> PathBuf {
        self.0.join("kconfig")
    }

    /// Touched by every successful build of the image.
    pub fn built(&self) -> PathBuf {
        self.0.join("built")
    }

    /// What each object of the last build was made from (builder::inputs).
    pub fn inputs_index(&self) -> PathBuf {
        self.0.join("inputs.index")
    }

    /// The makefile that limits make's walk to the path to what changed
    /// (kernel::kbuild::walk_filter).
    pub fn walk_filter(&self) -> PathBuf {
        self.0.join("walk.mk")
    }

    /// A FreeBSD build's flags per object, as the last build was asked
    /// to compile it: BSD make does not rebuild an object whose flags
    /// alone changed, so the builder removes the objects whose line differs.
    pub fn object_flags(&self) -> PathBuf {
        self.0.join("object-flags")
    }

    /// Which kernel, release and tree the directory was built from
    /// (`FreeBSD 15.1 /path/to/src`): a FreeBSD build directory's owner.
    pub fn built_from(&self) -> PathBuf {
        self.0.join("built-from")
    }

    pub fn build_log(&self) -> PathBuf {
        self.0.join("build.log")
    }

    pub fn distcc_log(&self) -> PathBuf {
        self.0.join("distcc.log")
    }

    pub fn lock(&self) -> PathBuf {
        self.0.join("lock")
    }

    /// A run's job and env files, and UML's run directories.
    pub fn run(&self) -> PathBuf {
        self.0.join("run")
    }

    pub fn initramfs(&self) -> PathBuf {
        self.0.join("initramfs")
    }

    /// One directory per trace run (`trace/run-PID`).
    pub fn trace(&self) -> PathBuf {
        self.0.join("trace")
    }

    pub fn packetdrill(&self) -> PathBuf {
        self.0.join("packetdrill")
    }

    /// The consoles of `debug`'s guests.
    pub fn debug(&self) -> PathBuf {
        self.0.join("debug")
    }

    /// gdb's session scripts.
    pub fn gdb(&self) -> PathBuf {
        self.0.join("gdb")
    }

    /// gdb's index cache for this build's vmlinux (guest::gdb).
    pub fn gdb_index_cache(&self) -> PathBuf {
        self.0.join("gdb-index")
    }

    pub fn bench(&self) -> PathBuf {
        self.0.join("bench")
    }

    /// `record`'s recordings, one folder each (guest::recording).
    pub fn recordings(&self) -> PathBuf {
        self.0.join("record")
    }

    /// `run --snapshot`'s saved guest (guest::snapshot).
    pub fn snapshot(&self) -> PathBuf {
        self.0.join("snapshot")
    }

    /// Held by the one `run --snapshot` that uses the image (QEMU opens it
    /// for writing): a second waits, saying for whom.
    pub fn snapshot_lock(&self) -> PathBuf {
        self.0.join("snapshot.lock")
    }

    /// What a run leaves while it runs, removed when stale.
    pub fn run_dirs(&self) -> [PathBuf; 3] {
        [self.run(), self.initramfs(), self.trace()]
    }
}

/// A build directory's lock (`DIR/.study/lock`), held until dropped.
pub struct BuildLock {
    pub(super) lock: Option<FileLock>,
    pub(super) created: Option<PathBuf>,
    pub(super) state_dir: PathBuf,
}

impl BuildLock {
    /// For a build: alone in the directory. A reader (`run`) that finds the
    /// image stale takes this, builds, and goes back to [`BuildLock::shared`].
    pub fn exclusive(&mut self) -> Result<()> {
        match &mut self.lock {
            Some(lock) => lock.set_access(Access::Exclusive),
            None => Ok(()),
        }
    }

    pub fn shared(&mut self) -> Result<()> {
        match &mut self.lock {
            Some(lock) => lock.set_access(Access::Shared),
            None => Ok(()),
        }
    }
}

impl Drop for BuildLock {
    /// A command refused before it wrote anything leaves no directory
    /// behind for its lock either.
    fn drop(&mut self) {
        let (Some(lock), Some(created)) = (&self.lock, &self.created) else {
            return;
        };
        if lock.access() != Access::Exclusive {
            return;
        }
        let only_the_lock = std::fs::read_dir(&self.state_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .all(|e| e.file_name() == "lock")
            })
            .unwrap_or(false);
        let empty_above = self
            .state_dir
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(created))
            .all(|d| {
                std::fs::read_dir(d)
                    .is_ok_and(|entries| entries.filter_map(Result::ok).count() == 1)
            });
        if only_the_lock && empty_above {
            lock.remove_file();
            for dir in self
                .state_dir
                .ancestors()
                .take_while(|d| d.starts_with(created))
            {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

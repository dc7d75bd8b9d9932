//! Children that cannot outlive the tool, and files that cannot outlive a
//! run: the one place processes are supervised.
//!
//! Every child gets a parent-death signal (`PR_SET_PDEATHSIG`), so even a
//! SIGKILL of the tool takes QEMU or make down with it. A batch child runs
//! in a process group of its own, which the tool kills whole (make's
//! compilers, virtme-ng's QEMU): on a bound, on drop, and when the tool
//! itself gets SIGINT, SIGTERM or SIGHUP. Then the handler thread
//! ([`install_signal_handlers`]) forwards the signal to every group, gives
//! them a moment to clean up (make deletes its half-written targets), kills
//! what is left, removes the registered temporary files and exits with
//! 128 + the signal (130, 143).
//!
//! A foreground child (gdb, an interactive QEMU) stays in the terminal's
//! process group and sees Ctrl-C itself; while one runs, the tool ignores
//! SIGINT as `system(3)` does.
//!
//! The parent-death signal is tied to the thread that spawns: spawn from a
//! thread that lives as long as the child (the main thread here).

use std::{
    io,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

/// Process groups (or, for foreground children, single processes) to stop
/// when the tool is interrupted: (pid, whether pid leads its own group).
static CHILDREN: Mutex<Vec<(u32, bool)>> = Mutex::new(Vec::new());
/// What to undo when the tool is interrupted: files and directories to
/// remove, files to put back as they were.
static TEMP: Mutex<Vec<Undo>> = Mutex::new(Vec::new());

#[derive(Clone, PartialEq, Eq)]
enum Undo {
    Remove(PathBuf),
    Restore(PathBuf, Vec<u8>),
}

impl Undo {
    fn run(&self) {
        match self {
            Undo::Remove(path) => remove(path),
            Undo::Restore(path, bytes) => {
                if let Err(e) = crate::util::fsutil::write_if_changed(path, bytes) {
                    eprintln!("error: could not restore {}: {e:#}", path.display());
                }
            }
        }
    }
}

fn register(undo: Undo) {
    if let Ok(mut temp) = TEMP.lock() {
        temp.push(undo);
    }
}

/// Runs `undo` and forgets it.
fn unregister(undo: &Undo) {
    undo.run();
    if let Ok(mut temp) = TEMP.lock() {
        if let Some(i) = temp.iter().position(|u| u == undo) {
            temp.remove(i);
        }
    }
}
/// Foreground children running now: SIGINT is theirs.
static FOREGROUND: AtomicUsize = AtomicUsize::new(0);
/// Set once the tool is being stopped by a signal.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long the children get to exit after the forwarded signal.
const GRACE: Duration = Duration::from_secs(5);

/// Where a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In a process group of its own, killed whole; no terminal input.
    Batch,
    /// In the terminal's process group, for a child the user talks to.
    Foreground,
}

/// Starts the thread that turns SIGINT, SIGTERM and SIGHUP into a clean
/// stop: children stopped, temporary files removed, exit 128 + signal.
pub fn install_signal_handlers() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGINT && FOREGROUND.load(Ordering::SeqCst) > 0 {
                    continue;
                }
                stop_everything(signal);
            }
        })?;
    Ok(())
}

fn stop_everything(signal: i32) -> ! {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for &(pid, group) in &children {
        send(pid, group, signal);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && children.iter().any(|&(pid, _)| running(pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // What is still registered is not reaped yet, so its pid is its own.
    let left = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for &(pid, group) in &left {
        if group || running(pid) {
            send(pid, group, libc::SIGKILL);
        }
    }
    let temp = TEMP.lock().map(|t| t.clone()).unwrap_or_default();
    for undo in &temp {
        undo.run();
    }
    let name = match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    eprintln!(
        "stopped by {name}: {} child process(es) stopped, {} temporary file(s) removed or restored",
        children.len(),
        temp.len()
    );
    std::process::exit(128 + signal)
}

/// Whether the tool is being stopped: a caller that sees a child die
/// should not act on it (record a fallback, say) but wait to be ended.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Blocks forever once the tool is being stopped, so that no decision is
/// taken on a child the handler killed; returns at once otherwise.
fn park_if_interrupted() {
    while interrupted() {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn send(pid: u32, group: bool, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) has no memory effects; a gone target is ESRCH.
    unsafe {
        libc::kill(target, signal);
    }
}

/// Alive and not yet a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// Sets up `cmd` to die with the tool (the parent-death signal), and in
/// batch mode to lead a process group of its own.
pub fn prepare(cmd: &mut Command, mode: Mode, death_signal: i32) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    if mode == Mode::Batch {
        cmd.process_group(0);
    }
    // SAFETY: the hook runs between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before prctl: nobody will send the signal.
            if libc::getppid() != parent {
                libc::raise(death_signal);
            }
            Ok(())
        });
    }
}

/// A running child, killed (its whole group, in batch mode) when dropped.
pub struct Supervised {
    child: Child,
    mode: Mode,
    done: Option<ExitStatus>,
}

impl Supervised {
    /// Starts `cmd` as [`prepare`] sets it up, registered for the signal
    /// handler. QEMU wants SIGKILL as its death signal; make, SIGTERM, on
    /// which it deletes half-written targets and stops its jobs.
    pub fn spawn(mut cmd: Command, mode: Mode, death_signal: i32) -> io::Result<Supervised> {
        prepare(&mut cmd, mode, death_signal);
        // Registered under the lock, so the handler never misses a child
        // that was spawned as it ran.
        let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        children.push((child.id(), mode == Mode::Batch));
        drop(children);
        if mode == Mode::Foreground {
            FOREGROUND.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Supervised {
            child,
            mode,
            done: None,
        })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    #[cfg(test)]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.done {
            return Ok(status);
        }
        while !self.exited(true)? {}
        self.reap()
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.done {
            return Ok(Some(status));
        }
        if !self.exited(false)? {
            return Ok(None);
        }
        self.reap().map(Some)
    }

    /// Waits at most `limit`; past it, kills the child (its group) and
    /// returns None.
    pub fn wait_for(&mut self, limit: Option<Duration>) -> io::Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if limit.is_some_and(|l| start.elapsed() > l) {
                self.kill();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the child (its whole group, in batch mode) and reaps it.
    pub fn kill(&mut self) {
        if self.done.is_some() {
            return;
        }
        send(self.child.id(), self.mode == Mode::Batch, libc::SIGKILL);
        let _ = self.reap();
    }

    /// Whether the child has exited, leaving it a zombie: while it is one,
    /// its process group id cannot be reused, so the group can still be
    /// killed safely.
    fn exited(&self, block: bool) -> io::Result<bool> {
        let mut flags = libc::WEXITED | libc::WNOWAIT;
        if !block {
            flags |= libc::WNOHANG;
        }
        // SAFETY: siginfo_t is plain data; waitid fills it or leaves zeros.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let id = self.child.id() as libc::id_t;
        // SAFETY: a valid pointer to a siginfo_t.
        if unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) } != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        // SAFETY: waitid succeeded, so si_pid is the field it set.
        Ok(unsafe { info.si_pid() } != 0)
    }

    /// Kills what the leader left in its group, then reaps the leader.
    fn reap(&mut self) -> io::Result<ExitStatus> {
        if self.mode == Mode::Batch {
            send(self.child.id(), true, libc::SIGKILL);
        }
        let status = self.child.wait();
        park_if_interrupted();
        let status = status?;
        let id = self.child.id();
        if let Ok(mut children) = CHILDREN.lock() {
            children.retain(|&(pid, _)| pid != id);
        }
        if self.mode == Mode::Foreground {
            FOREGROUND.fetch_sub(1, Ordering::SeqCst);
        }
        self.done = Some(status);
        Ok(status)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A temporary file or directory of this run: removed when dropped, and by
/// the signal handler when the tool is stopped first.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new(path: PathBuf) -> TempPath {
        register(Undo::Remove(path.clone()));
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        unregister(&Undo::Remove(self.0.clone()));
    }
}

/// A file changed for a while (a benchmark's edit of a source file): its
/// original bytes are written back when dropped, and by the signal handler
/// when the tool is stopped first.
pub struct Restore(Undo);

impl Restore {
    /// Remembers `path` as it is now.
    pub fn new(path: &Path) -> io::Result<Restore> {
        let original = std::fs::read(path)?;
        let undo = Undo::Restore(path.to_path_buf(), original);
        register(undo.clone());
        Ok(Restore(undo))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        unregister(&self.0);
    }
}

/// Removes the per-run files a killed run (SIGKILL leaves no chance to
/// clean up) left in `dir`: entries named `NAME-PID` whose PID is gone.
pub fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .rsplit_once('-')
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        running(pid)
    }

    #[test]
    fn drop_kills_the_whole_group() {
        // A shell whose own child would outlive a kill of the shell alone.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 100 & echo $! ; wait"])
            .stdout(std::process::Stdio::piped());
        let mut child = Supervised::spawn(cmd, Mode::Batch, libc::SIGKILL).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.child().stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        assert!(alive(grandchild));
        drop(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) {
            assert!(Instant::now() < deadline, "the group's sleep survived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_bound_kills_and_says_so() {
        let cmd = Command::new("sleep");
        let mut cmd = cmd;
        cmd.arg("100");
        let mut child = Supervised::spawn(cmd, Mode::Batch, libc::SIGKILL).unwrap();
        let start = Instant::now();
        assert_eq!(
            child.wait_for(Some(Duration::from_millis(200))).unwrap(),
            None
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!alive(child.id()));
    }

    #[test]
    fn stale_files_of_dead_runs_go() {
        let dir = std::env::temp_dir().join(format!("supervise-stale-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("run-999999999")).unwrap();
        let mine = format!("job-{}", std::process::id());
        for name in ["job-999999999", "env-999999999", "keep.txt", &mine] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        remove_stale(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec!["keep.txt".to_string(), mine];
        want.sort();
        assert_eq!(left, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_paths_go_when_dropped() {
        let dir = std::env::temp_dir().join(format!("supervise-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let temp = TempPath::new(dir.clone());
        let undo = Undo::Remove(dir.clone());
        assert!(TEMP.lock().unwrap().contains(&undo));
        drop(temp);
        assert!(!dir.exists());
        assert!(!TEMP.lock().unwrap().contains(&undo));
    }

    #[test]
    fn restored_files_get_their_bytes_back() {
        let path = std::env::temp_dir().join(format!("supervise-restore-{}", std::process::id()));
        std::fs::write(&path, "original").unwrap();
        let restore = Restore::new(&path).unwrap();
        std::fs::write(&path, "edited").unwrap();
        drop(restore);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "original");
        std::fs::remove_file(&path).unwrap();
    }
}

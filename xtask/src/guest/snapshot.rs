//! `run --snapshot`: a guest booted once, saved where init waits for a
//! command, and restored for each command instead of booted. Its files
//! under the build directory (`.study/snapshot/`, the one place that names
//! them), what a snapshot must match to be restored (vmlinux's build ID,
//! the kernel and machine command line, what the initramfs was packed
//! from, the QEMU), making one, and a run on a restored guest.
//!
//! The guest has no 9p export (QEMU refuses `savevm` while one is
//! mounted), so neither the job file nor the status folder exists: the
//! command goes to init over the PC's second UART (ttyS1, on a Unix socket
//! here) as a length and NUL-separated words, never a shell string, and
//! the status comes back on it with the run's token (study/guest/init.c,
//! `study.port`). The output is the console's, as in a booted run.
//!
//! A snapshot is written into `run/snapshot-PID/` and renamed into place
//! once whole: a failed or interrupted one leaves none. QEMU opens its
//! image for writing, so one run at a time uses it (`snapshot.lock`).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::json;
use xshell::cmd;

use crate::{
    ctx::Prepared,
    guest::{
        console::{supervise, Bound},
        freebsd_guest, initramfs,
        programs::{self, GuestPrograms},
        qemu::{self, qemu_opt_value, Guest, Root},
        qmp::{self, Qmp},
        recording::{build_id, version_line},
        run::{guest_spec, RunOutcome, RunRequest},
        status::StatusFolder,
    },
    study::arch::Runner,
    util::{
        exec::Exec,
        lock::{Access, FileLock, Wait},
        supervise::{self as procs, TempPath},
    },
};

/// The qcow2 image that holds the saved guest (`savevm`).
pub const IMAGE: &str = "snapshot.qcow2";
/// The initramfs the guest booted: a restore names the same bytes.
pub const INITRAMFS: &str = "initramfs.cpio";
/// vmlinux's GNU build ID, in hex.
pub const BUILD_ID: &str = "build-id";
/// The kernel command line, then the machine (accelerator, memory, CPUs).
pub const CMDLINE: &str = "cmdline";
/// [`initramfs::fingerprint`] of what the initramfs was packed from.
pub const INPUTS: &str = "initramfs-inputs";
/// `QEMU emulator version ...`: a snapshot loads in the QEMU that saved it.
pub const QEMU: &str = "qemu-version";

/// Every file of a whole snapshot.
pub const FILES: [&str; 6] = [IMAGE, INITRAMFS, BUILD_ID, CMDLINE, INPUTS, QEMU];

/// The name of the saved state inside the image.
const TAG: &str = "study";
/// What init prints once it waits on the port (study/guest/init.c).
const WAITING: &str = "study-init: waiting for a command on";

/// What a snapshot must match to be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub build_id: String,
    pub cmdline: String,
    pub inputs: String,
    pub qemu: String,
}

impl Key {
    /// The key kept in `dir`, or why there is none whole.
    fn read(dir: &Path) -> std::result::Result<Key, String> {
        if !dir.is_dir() {
            return Err("none yet".into());
        }
        if let Some(missing) = FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(format!("it lacks {missing}"));
        }
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map(|s| s.trim_end().to_string())
                .map_err(|e| format!("{f}: {e}"))
        };
        Ok(Key {
            build_id: read(BUILD_ID)?,
            cmdline: read(CMDLINE)?,
            inputs: read(INPUTS)?,
            qemu: read(QEMU)?,
        })
    }

    fn write(&self, exec: &Exec, dir: &Path) -> Result<()> {
        for (file, text) in [
            (BUILD_ID, &self.build_id),
            (CMDLINE, &self.cmdline),
            (INPUTS, &self.inputs),
            (QEMU, &self.qemu),
        ] {
            exec.write(&dir.join(file), format!("{text}\n"))?;
        }
        Ok(())
    }

    /// Why a snapshot with this key cannot be restored for `now`.
    pub fn stale_for(&self, now: &Key) -> Option<String> {
        if self.build_id != now.build_id {
            Some(format!(
                "it is of another vmlinux (build ID {}, now {})",
                self.build_id, now.build_id
            ))
        } else if self.qemu != now.qemu {
            Some(format!("{} saved it, not {}", self.qemu, now.qemu))
        } else if self.inputs != now.inputs {
            Some("its initramfs differs (init, a guest program or busybox changed)".into())
        } else if self.cmdline != now.cmdline {
            Some("the kernel or machine command line differs (--append, --mem, --cpus)".into())
        } else {
            None
        }
    }
}

/// Refused in one line: where a snapshot run is not set up.
pub fn refuse(p: &Prepared) -> Result<()> {
    freebsd_guest::refuse_on_freebsd(p, "run --snapshot")?;
    if p.arch.runner == Runner::Uml {
        bail!("run --snapshot: UML runs no QEMU, whose savevm/loadvm this is; run it without --snapshot");
    }
    command_port(p).map(drop)
}

/// The guest's end of the command channel (the arch file's
/// `command-port`), or the one line saying its machine has none.
fn command_port(p: &Prepared) -> Result<String> {
    p.arch.qemu()?.command_port.clone().with_context(|| {
        format!(
            "run --snapshot: study/arch/{}.toml names no command-port (a second serial port of \
             its machine, over which the command reaches the restored init); run it without \
             --snapshot",
            p.arch.name
        )
    })
}

/// `argv[0]` must be in the initramfs: a guest program or an applet.
fn check_command(exec: &Exec, programs: &GuestPrograms, argv: &[String]) -> Result<()> {
    let have = initramfs::commands(exec, programs)?;
    let name = argv[0].strip_prefix("/bin/").unwrap_or(&argv[0]);
    if !have.iter().any(|h| h == name) {
        let ours: Vec<&str> = programs.commands().collect();
        bail!(
            "run --snapshot: {} is not in the snapshot's initramfs, which holds the guest \
             programs ({}) and busybox's applets (`busybox --list`); run it without --snapshot",
            argv[0],
            ours.join(", ")
        );
    }
    Ok(())
}

/// One guest's QEMU, its per-run files, and the key it would save under.
struct Machine<'a> {
    cmd: xshell::Cmd<'a>,
    key: Key,
    qmp: PathBuf,
    port: PathBuf,
    _files: Vec<TempPath>,
}

/// The guest of a snapshot: the initramfs `cpio`, init told to wait on the
/// port, the image in `dir`; `loadvm` restores it.
#[allow(clippy::too_many_arguments)]
fn machine<'a>(
    exec: &'a Exec,
    p: &Prepared,
    req: &RunRequest,
    q: &crate::study::arch::Qemu,
    cpio: &Path,
    dir: &Path,
    inputs: &str,
    loadvm: bool,
) -> Result<Machine<'a>> {
    let run_dir = p.state().run();
    exec.create_dir_all(&run_dir)?;
    let pid = std::process::id();
    let mut guest: Guest = guest_spec(
        exec,
        p,
        req,
        Root::Initramfs(cpio.to_path_buf()),
        false,
        false,
    );
    guest.env = Some("/study/env".into());
    guest.keep = Vec::new();
    guest
        .append
        .insert(0, qemu::param("study.port", &command_port(p)?));
    let Some(qmp) = qmp::socket_in(&run_dir, pid) else {
        bail!(
            "run --snapshot: {} is too deep for a Unix socket (QMP saves the guest): use a \
             shorter --build-dir",
            run_dir.display()
        );
    };
    guest.qmp = Some(qmp.clone());
    let port = run_dir.join(format!("port-{pid}"));
    guest.qemu_args.extend([
        "-chardev".into(),
        format!(
            "socket,id=study-port,path={},server=on,wait=off",
            qemu_opt_value(&port.display().to_string())
        ),
        "-serial".into(),
        "chardev:study-port".into(),
        "-drive".into(),
        format!(
            "file={},if=none,id=snapshot",
            qemu_opt_value(&dir.join(IMAGE).display().to_string())
        ),
    ]);
    if loadvm {
        guest.qemu_args.extend(["-loadvm".into(), TAG.into()]);
    }
    exec.require(&q.binary, &format!("run `apt-get install {}`", q.package))?;
    let key = Key {
        build_id: build_id(&p.build_dir.join("vmlinux"))?,
        cmdline: format!(
            "{}\n{} mem={} cpus={}",
            qemu::kernel_cmdline(q, &guest),
            guest.accel.name(),
            guest.mem,
            guest.cpus
        ),
        inputs: inputs.to_string(),
        qemu: version_line(exec, &q.binary)
            .with_context(|| format!("run --snapshot: `{} --version` did not run", q.binary))?,
    };
    qemu::check_paths(&guest)?;
    Ok(Machine {
        cmd: qemu::qemu_command(exec.sh(), q, &guest),
        key,
        qmp: qmp.clone(),
        port: port.clone(),
        _files: vec![TempPath::new(qmp), TempPath::new(port)],
    })
}

/// Runs `argv` on the build's snapshot, made first when there is none that
/// matches; `None` on a dry run.
pub fn run_command(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
) -> Result<Option<RunOutcome>> {
    refuse(p)?;
    let programs = programs::for_arch(exec, &crate::ctx::project_root(), &p.arch)?;
    check_command(exec, &programs, argv)?;
    exec.effect(String::new, || {
        procs::remove_stale(&p.state().run());
        Ok(())
    })?;
    let contents = initramfs::Contents {
        programs: &programs,
        job: b"",
        env: b"PATH=/bin\0",
        files: &[],
    };
    let inputs = initramfs::fingerprint(p, &contents)?;
    let q = p.arch.qemu()?.clone();
    let dir = p.state().snapshot();
    let _lock = FileLock::acquire(
        &p.state().snapshot_lock(),
        &format!("the snapshot {}", dir.display()),
        Access::Exclusive,
        Wait::Block,
    )?;
    let kept = Key::read(&dir);
    let mut now = machine(exec, p, req, &q, &dir.join(INITRAMFS), &dir, &inputs, true)?;
    let why = match &kept {
        Ok(key) => key.stale_for(&now.key),
        Err(why) => Some(why.clone()),
    };
    if let Some(why) = why {
        eprintln!("run --snapshot: no snapshot to restore ({why}): booting once to make one");
        // Its port and QMP socket are the ones the boot that saves uses.
        drop(now);
        if !make(exec, p, req, &q, &contents, &inputs, &dir)? {
            return Ok(None);
        }
        now = machine(exec, p, req, &q, &dir.join(INITRAMFS), &dir, &inputs, true)?;
    }
    eprintln!("run --snapshot: restoring {}", dir.join(IMAGE).display());
    restore_and_run(exec, p, req, now, argv)
}

/// Boots the guest until init waits on its port, saves it, and puts the
/// whole snapshot in `dir`; false on a dry run.
fn make(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    q: &crate::study::arch::Qemu,
    contents: &initramfs::Contents,
    inputs: &str,
    dir: &Path,
) -> Result<bool> {
    let start = Instant::now();
    let partial = p
        .state()
        .run()
        .join(format!("snapshot-{}", std::process::id()));
    let _partial = TempPath::new(partial.clone());
    exec.remove_all(&partial)?;
    exec.create_dir_all(&partial)?;
    let (cpio, _packed) = initramfs::build(exec, p, contents)?;
    exec.copy(&cpio, &partial.join(INITRAMFS))?;
    let image = partial.join(IMAGE);
    let sh = exec.sh();
    exec.run(cmd!(sh, "qemu-img create -q -f qcow2 {image} 1G"))?;
    let m = machine(
        exec,
        p,
        req,
        q,
        &partial.join(INITRAMFS),
        &partial,
        inputs,
        false,
    )?;
    let console = partial.join("console");
    let Some(mut child) = exec.spawn_logged(m.cmd, &console)? else {
        return Ok(false);
    };
    let text = || {
        std::fs::read(&console)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let tail = || {
        let t = text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(12)..].join("\n  ")
    };
    while !text().contains(WAITING) {
        if let Some(status) = child.try_wait()? {
            bail!(
                "run --snapshot: the guest ended ({status}) before init waited for a command; \
                 last console lines:\n  {}",
                tail()
            );
        }
        if start.elapsed() > req.timeout {
            bail!(
                "run --snapshot: init did not wait for a command within {} s; last console \
                 lines:\n  {}",
                req.timeout.as_secs(),
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut qmp = Qmp::connect(&m.qmp, req.timeout)?;
    let said = qmp.execute(
        "human-monitor-command",
        json!({ "command-line": format!("savevm {TAG}") }),
    )?;
    let said = said.as_str().unwrap_or_default().trim();
    if !said.is_empty() {
        bail!("run --snapshot: QEMU's savevm failed: {said}");
    }
    // `quit` may close the socket before it answers.
    let _ = qmp.execute("quit", json!({}));
    child.wait_for(Some(Duration::from_secs(10)))?;
    child.kill();
    m.key.write(exec, &partial)?;
    exec.remove_all(&partial.join("console"))?;
    exec.remove_all(dir)?;
    exec.rename(&partial, dir)?;
    let mb = std::fs::metadata(dir.join(IMAGE)).map_or(0.0, |m| m.len() as f64 / 1e6);
    eprintln!(
        "run --snapshot: made in {:.1} s: {} ({mb:.1} MB; {})",
        start.elapsed().as_secs_f64(),
        dir.display(),
        m.key.qemu
    );
    Ok(true)
}

/// The message init reads on its port: `LEN\n`, then the token, the
/// working directory and argv, each ended by a NUL.
pub fn port_message(token: &str, argv: &[String]) -> Vec<u8> {
    let body = qemu::job_text(Path::new("/"), argv);
    let mut words = token.as_bytes().to_vec();
    words.push(0);
    words.extend(body);
    let mut out = format!("{}\n", words.len()).into_bytes();
    out.extend(words);
    out
}

/// `N` from init's `status TOKEN N` line, only with this run's token.
pub fn status_of(line: &str, token: &str) -> Option<i32> {
    let rest = line.trim_end().strip_prefix("status ")?;
    let (t, n) = rest.split_once(' ')?;
    (t == token).then(|| n.parse().ok()).flatten()
}

/// Starts the restored guest, hands it `argv` on its port, and collects the
/// console as a booted run does; the status comes back on the port.
fn restore_and_run(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    m: Machine,
    argv: &[String],
) -> Result<Option<RunOutcome>> {
    let status = StatusFolder::create(exec, &p.state().run(), false)?;
    let message = port_message(status.token(), argv);
    let token = status.token().to_string();
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let port = m.port.clone();
    // QEMU makes the socket as it starts: connect then, send the command,
    // and read the status init sends back.
    let talker = std::thread::spawn(move || -> Result<Option<i32>> {
        let stream = loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            match UnixStream::connect(&port) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        (&stream).write_all(&message)?;
        for line in BufReader::new(&stream).lines() {
            if let Some(n) = status_of(&line?, &token) {
                return Ok(Some(n));
            }
        }
        Ok(None)
    });
    let bound = Bound {
        console_to_stderr: req.console_to_stderr,
        timeout: req.timeout,
        gdb: None,
    };
    let outcome = supervise(exec, m.cmd, &bound, Some(&status), false);
    done.store(true, Ordering::Relaxed);
    let sent = talker.join().expect("the port thread does not panic");
    let mut outcome = outcome?;
    if let Some(o) = &mut outcome {
        // Not the folder's: the guest never had it.
        o.exit = sent.context("run --snapshot: the command port")?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_carries_words_and_the_status_needs_the_token() {
        let argv = ["tcp-echo", "-n", "a b;c"].map(String::from);
        assert_eq!(
            port_message("t0k", &argv),
            b"24\nt0k\0/\0tcp-echo\0-n\0a b;c\0".to_vec()
        );
        assert_eq!(status_of("status t0k 3\r\n", "t0k"), Some(3));
        assert_eq!(status_of("status other 0", "t0k"), None);
        assert_eq!(status_of("status t0k", "t0k"), None);
    }

    #[test]
    fn a_stale_snapshot_says_what_differs() {
        let key = Key {
            build_id: "aa".into(),
            cmdline: "console=ttyS0".into(),
            inputs: "1".into(),
            qemu: "QEMU emulator version 7.2.22".into(),
        };
        assert_eq!(key.stale_for(&key.clone()), None);
        let other = Key {
            build_id: "bb".into(),
            ..key.clone()
        };
        assert_eq!(
            key.stale_for(&other).unwrap(),
            "it is of another vmlinux (build ID aa, now bb)"
        );
        let other = Key {
            inputs: "2".into(),
            ..key.clone()
        };
        assert!(key
            .stale_for(&other)
            .unwrap()
            .starts_with("its initramfs differs"));
    }
}

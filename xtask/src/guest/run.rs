//! Booting the built kernel in QEMU with the host's root shared read-only
//! over 9p (or an initramfs), running one command in the guest (or a shell),
//! and reading its exit status from the guest's status folder
//! (guest::status), which the command cannot write.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Result};

use crate::{
    ctx::{project_root, Ctx, Prepared},
    guest::{
        clock::host_tsc_khz,
        console::{supervise, Bound, Debugger},
        freebsd_guest,
        hold::{release_path, wait_of, GdbWait},
        initramfs,
        programs::{self, guest_bin_dir, guest_env, guest_init},
        qemu::{self, Accel, Guest, Root},
        qmp, recording,
        status::StatusFolder,
        uml,
    },
    kernel::uml_host,
    study::arch::Runner,
    util::{
        exec::Exec,
        supervise::{self, Supervised, TempPath},
    },
};

/// `run`'s exit status when the guest never reported one (a panic, a hang).
pub const BOOT_FAILED: u8 = 125;

/// The guest command's status as ours.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

pub use crate::guest::run_request::RunRequest;

/// Why QEMU was killed before the command reported a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    /// `--timeout` passed with no debugger attached.
    Timeout,
    /// `--wait-gdb`, and no debugger attached to the port in time.
    NoDebugger { port: u16 },
}

/// What a guest run produced.
pub struct RunOutcome {
    /// The command's exit status, from the guest's status folder.
    pub exit: Option<i32>,
    pub console_tail: Vec<String>,
    pub killed: Option<Killed>,
    pub qemu_status: String,
    pub elapsed: Duration,
}

impl RunOutcome {
    pub fn failure(&self) -> String {
        let panic = self
            .console_tail
            .iter()
            .find(|l| l.contains("Kernel panic"));
        // UML's own cause comes before the panic it leads to.
        if let Some(refused) = self
            .console_tail
            .iter()
            .find(|l| uml_host::is_fp_refusal(l))
        {
            return format!(
                "the host refused a guest process's FP state ({}): this host's XSAVE area is \
                 larger than the one this tree's UML hands ptrace (see `cargo xtask config --arch um`), \
                 so every process dies; run the study for --arch x86_64 instead",
                refused.trim()
            );
        }
        let why = match (self.killed, panic) {
            (_, Some(line)) => format!("the kernel panicked: {}", line.trim()),
            (Some(Killed::NoDebugger { port }), None) => {
                return format!(
                    "no debugger attached to 127.0.0.1:{port} within {:.0} s (--attach-timeout); \
                     QEMU was killed: start `cargo xtask gdb --port {port}` while the guest waits",
                    self.elapsed.as_secs_f64()
                )
            }
            (Some(Killed::Timeout), None) => format!(
                "no exit status within {:.0} s; QEMU was killed",
                self.elapsed.as_secs_f64()
            ),
            (None, None) => format!(
                "QEMU ended ({}) before the command reported an exit status",
                self.qemu_status
            ),
        };
        let tail: Vec<&str> = self
            .console_tail
            .iter()
            .rev()
            .take(12)
            .rev()
            .map(String::as_str)
            .collect();
        format!("{why}\nlast console lines:\n  {}", tail.join("\n  "))
    }
}

pub(super) fn guest_spec(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    root: Root,
    interactive: bool,
    verbose: bool,
) -> Guest {
    let tsc_param = p
        .arch
        .qemu
        .as_ref()
        .and_then(|q| q.host_tsc_khz_param_tcg.as_ref());
    Guest {
        image: p.image(),
        accel: req.accel,
        mem: req.mem.clone(),
        cpus: req.cpus,
        root,
        init: guest_init().to_string(),
        job: None,
        env: None,
        cwd: None,
        out_dir: req.out_dir.clone(),
        status: None,
        gdb_port: req.gdb_port,
        nokaslr: false,
        wait_gdb: req.wait_gdb,
        hold: None,
        verbose,
        interactive,
        append: req.append.clone(),
        cpu_features: req.cpu_features.clone(),
        qemu_args: req.qemu_args.clone(),
        host_tsc_khz: match (req.accel, tsc_param) {
            (Accel::Tcg, Some(_)) => {
                host_tsc_khz(exec, &project_root().join("target/host-tsc.txt"))
            }
            _ => None,
        },
        keep: vec![
            project_root(),
            std::env::current_dir().unwrap_or_default(),
            p.build_dir.clone(),
            guest_bin_dir(),
        ],
        qmp: None,
    }
}

/// A guest ready to start: its command line, and the files it needs,
/// removed when this is dropped (or by the signal handler).
struct Launch<'a> {
    cmd: xshell::Cmd<'a>,
    temp: Vec<TempPath>,
    qmp: Option<PathBuf>,
    /// Where init reports the command's status (none for a shell).
    status: Option<StatusFolder>,
}

/// Where the guest finds its root and what init is told: the host's `/`
/// with job files at host paths, or, for a guest that cannot run the
/// host's programs (or `--initramfs`), an initramfs of its own.
fn prepare<'a>(
    exec: &'a Exec,
    p: &Prepared,
    req: &RunRequest,
    argv: Option<&[String]>,
    verbose: bool,
) -> Result<Launch<'a>> {
    let run_dir = p.state().run();
    let pid = std::process::id();
    let cwd = std::env::current_dir()?;
    exec.effect(String::new, || {
        for dir in p.state().run_dirs() {
            supervise::remove_stale(&dir);
        }
        Ok(())
    })?;
    if p.freebsd.is_some() {
        let study_dir = project_root().join("study");
        let (cmd, status) = freebsd_guest::prepare(exec, p, &study_dir, req, argv, verbose)?;
        return Ok(Launch {
            cmd,
            temp: Vec::new(),
            qmp: None,
            status: Some(status),
        });
    }
    let initramfs = req.initramfs || p.arch.is_foreign() || req.rr.is_some();
    if initramfs && p.arch.runner == Runner::Uml {
        bail!("UML runs on the host's root over hostfs; --initramfs is for QEMU guests");
    }
    if p.arch.runner == Runner::Uml && !req.qemu_args.is_empty() {
        bail!("--qemu-arg: UML runs without QEMU; give kernel words with --append");
    }
    let mut temp = Vec::new();
    let interactive = argv.is_none();
    let mut guest;
    let mut host_files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    if initramfs {
        let Some(argv) = argv else {
            bail!(
                "a shell needs the host's root, which {} cannot run; give a command after `--` (busybox's, or a guest program)",
                if req.initramfs { "--initramfs".to_string() } else { format!("an {} guest", p.arch.name) }
            );
        };
        let programs = programs::for_arch(exec, &project_root(), &p.arch)?;
        let contents = initramfs::Contents {
            programs: &programs,
            job: &qemu::job_text(Path::new("/"), argv),
            env: b"PATH=/bin\0",
            files: &req.files,
        };
        let cpio = match &req.rr {
            // A replay boots the recording's bytes.
            Some(rr) if rr.mode == recording::Mode::Replay => rr.dir.join(recording::INITRAMFS),
            _ => {
                let (cpio, dir) = initramfs::build(exec, p, &contents)?;
                temp.extend(dir);
                if let Some(rr) = &req.rr {
                    exec.copy(&cpio, &rr.dir.join(recording::INITRAMFS))?;
                }
                cpio
            }
        };
        guest = guest_spec(exec, p, req, Root::Initramfs(cpio), false, verbose);
        guest.job = Some("/study/job".into());
        guest.env = Some("/study/env".into());
        // The initramfs holds the request's files at their host paths; the
        // tmpfs over /tmp (or /root) would hide a build directory there.
        guest.keep = req
            .files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
    } else {
        guest = guest_spec(exec, p, req, Root::Host, interactive, verbose);
        let env_path = run_dir.join(format!("env-{pid}"));
        host_files.push((env_path.clone(), guest_env().into_bytes()));
        guest.env = Some(env_path.display().to_string());
        match argv {
            Some(argv) => {
                guest.keep.extend(host_paths_of(&cwd, argv)?);
                let job_path = run_dir.join(format!("job-{pid}"));
                host_files.push((job_path.clone(), qemu::job_text(&cwd, argv)));
                guest.job = Some(job_path.display().to_string());
            }
            None => guest.cwd = Some(cwd.display().to_string()),
        }
    }
    match wait_of(p, req, argv.is_some()) {
        GdbWait::No => {}
        GdbWait::AtReset => guest.wait_gdb = true,
        GdbWait::JobHeld => {
            let path = release_path(p, req);
            if path.exists() {
                exec.remove_all(&path)?;
            }
            exec.create_dir_all(&run_dir)?;
            temp.push(TempPath::new(path.clone()));
            guest.wait_gdb = false;
            guest.hold = Some(path.display().to_string());
        }
    }
    // A shell's status is the user's to see; a command's is ours to read.
    let status = match argv {
        // QEMU cannot replay a 9p export: init prints the status instead.
        Some(_) if req.rr.is_some() => None,
        Some(_) => {
            exec.create_dir_all(&run_dir)?;
            Some(StatusFolder::create(exec, &run_dir, req.linger)?)
        }
        None => None,
    };
    guest.status = status.as_ref().map(|s| s.dir.clone());
    qemu::check_paths(&guest)?;
    let cmd = match p.arch.runner {
        Runner::Qemu => {
            // Every QEMU guest answers QMP: `drgn --attach`, `study-dump`.
            guest.qmp = qmp::socket_in(&run_dir, pid);
            match &guest.qmp {
                Some(socket) => {
                    // An initramfs run writes nothing else there.
                    exec.create_dir_all(&run_dir)?;
                    temp.push(TempPath::new(socket.clone()));
                }
                None => eprintln!(
                    "note: {} is too deep for a Unix socket: this guest has no QMP socket \
                     (drgn --attach and study-dump cannot reach it)",
                    run_dir.display()
                ),
            }
            let mut q = p.arch.qemu()?.clone();
            if let Some(rr) = &req.rr {
                // The replay boots what was recorded, with gdb or without.
                guest.nokaslr = true;
                guest.verbose = false;
                q.binary = rr.qemu.binary.clone();
                // The arch file's words of every recording ([replay]
                // cmdline), which the replay must boot with too.
                if let Some(replay) = &p.arch.replay {
                    q.cmdline_tcg.extend(replay.cmdline.iter().cloned());
                }
                guest.qemu_args.extend(rr.qemu_args());
                rr.check_cmdline(exec, &qemu::kernel_cmdline(&q, &guest))?;
            }
            require(exec, &q.binary, &q.package)?;
            qemu::qemu_command(exec.sh(), &q, &guest)
        }
        Runner::Uml => {
            let u = p.arch.uml.as_ref().expect("checked when loaded");
            if guest.gdb_port.is_some() {
                require(exec, &u.gdbserver, &u.gdbserver_package)?;
            }
            let uml_dir = run_dir.join(format!("uml-{pid}"));
            exec.create_dir_all(&uml_dir)?;
            temp.push(TempPath::new(uml_dir.clone()));
            exec.effect(
                || "turn core dumps off (setrlimit RLIMIT_CORE 0)".into(),
                || {
                    uml::no_core_dumps();
                    Ok(())
                },
            )?;
            uml::uml_command(exec.sh(), u, &guest, &uml_dir)
        }
    };
    for (path, text) in host_files {
        temp.push(TempPath::new(path.clone()));
        exec.write(&path, text)?;
    }
    if exec.verbose {
        match (argv, initramfs) {
            (Some(argv), true) => eprintln!("# the guest runs {argv:?} from its initramfs"),
            (Some(argv), false) => eprintln!("# the guest runs {argv:?} in {}", cwd.display()),
            (None, _) => {}
        }
    }
    Ok(Launch {
        cmd,
        temp,
        qmp: guest.qmp,
        status,
    })
}

/// What the guest must see of the host for `argv`: the directory of each
/// word that names a host file or directory (the program, a script, its
/// input), kept visible over the guest's tmpfs mounts. A program given as
/// a path that the host does not have is refused here, in one line, not
/// with `unshare: failed to execute` from inside the guest.
fn host_paths_of(cwd: &Path, argv: &[String]) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for (i, word) in argv.iter().enumerate() {
        if !word.contains('/') || word.starts_with('-') {
            continue;
        }
        let path = cwd.join(word);
        if path.is_dir() {
            dirs.push(path);
        } else if path.exists() {
            dirs.extend(path.parent().map(Path::to_path_buf));
        } else if i == 0 {
            bail!(
                "{}: no such program on the host; the guest runs the host's root read-only at \
                 the same paths, so give a program the host has",
                path.display()
            );
        }
    }
    Ok(dirs)
}

fn require(exec: &Exec, binary: &str, package: &str) -> Result<()> {
    exec.require(binary, &format!("run `apt-get install {package}`"))
}

/// Runs `argv` in the guest and collects its exit status; `None` when
/// nothing was started (a dry run, which shows the command line).
pub fn run_command(
    ctx: &Ctx,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
) -> Result<Option<RunOutcome>> {
    run_guest(&ctx.exec, p, req, argv, false)
}

pub(super) fn run_guest(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
    quiet: bool,
) -> Result<Option<RunOutcome>> {
    let launch = prepare(exec, p, req, Some(argv), exec.verbose)?;
    let bound = Bound {
        console_to_stderr: req.console_to_stderr,
        timeout: req.timeout,
        gdb: req.gdb_port.map(|port| Debugger {
            port,
            attach_timeout: req.wait_gdb.then_some(req.attach_timeout),
        }),
    };
    let outcome = supervise(exec, launch.cmd, &bound, launch.status.as_ref(), quiet);
    drop(launch.temp);
    outcome
}

/// A guest running in the background for a debugger, its console going to
/// a file. Dropping it kills the guest and removes the run's files.
pub struct Background {
    child: Supervised,
    pub console: PathBuf,
    /// The guest's QMP socket, when it has one.
    pub qmp: Option<PathBuf>,
    status: Option<StatusFolder>,
    _files: Vec<TempPath>,
}

/// A console file as text: a guest's serial line may carry bytes that are
/// not UTF-8 (a boot's early output), which must not hide the lines after.
fn console_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// What init prints as it starts the command, on a verbose console.
const STARTED: &str = "study-init: running:";

impl Background {
    /// Waits until init has started the command; fails when the guest ends
    /// first or `timeout` passes.
    pub fn wait_started(&mut self, timeout: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            if console_text(&self.console).contains(STARTED) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the guest ended ({status}) before its command started; its console: {}",
                    self.console.display()
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "the guest did not start its command within {} s; its console: {}",
                    timeout.as_secs(),
                    self.console.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The command's exit status, once init has reported one.
    pub fn exit(&self) -> Option<i32> {
        self.status.as_ref()?.exit()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.child.kill();
    }
}

/// Boots the guest with `argv` as its command and leaves it running; its
/// console goes to `console`.
pub fn start_background(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
    console: &Path,
) -> Result<Option<Background>> {
    let launch = prepare(exec, p, req, Some(argv), true)?;
    let Some(child) = exec.spawn_logged(launch.cmd, console)? else {
        return Ok(None);
    };
    Ok(Some(Background {
        child,
        console: console.to_path_buf(),
        qmp: launch.qmp,
        status: launch.status,
        _files: launch.temp,
    }))
}

/// A shell on the console: Ctrl-A X leaves QEMU; under UML, `exit`.
pub fn interactive(ctx: &Ctx, p: &Prepared, req: &RunRequest) -> Result<ExitCode> {
    let launch = prepare(&ctx.exec, p, req, None, ctx.exec.verbose)?;
    eprintln!(
        "a shell in the guest; {}",
        match p.arch.runner {
            Runner::Qemu => "`exit` or Ctrl-A X to leave",
            Runner::Uml => "`exit` to leave",
        }
    );
    let status = ctx.exec.status(launch.cmd)?;
    drop(launch.temp);
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UML's own line about the host refusing FP state is the reason given,
    /// not the panic that follows it.
    #[test]
    fn a_uml_fp_refusal_is_named_before_the_panic() {
        let outcome = RunOutcome {
            exit: None,
            console_tail: vec![
                "Run /t/study-init as init process".into(),
                "userspace - ptrace set fp regs failed, errno = 14".into(),
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b".into(),
            ],
            killed: None,
            qemu_status: "signal 6".into(),
            elapsed: Duration::from_secs(1),
        };
        let why = outcome.failure();
        assert!(why.starts_with("the host refused a guest process's FP state (userspace - ptrace set fp regs failed, errno = 14)"), "{why}");
        assert!(why.contains("--arch x86_64"), "{why}");
        let panic_only = RunOutcome {
            console_tail: outcome.console_tail[2..].to_vec(),
            ..outcome
        };
        assert!(panic_only.failure().starts_with("the kernel panicked"));
    }

    /// The words of a command that name host files keep their directories
    /// visible; a program path the host lacks is refused.
    #[test]
    fn paths_in_the_command_are_kept_and_a_missing_program_refused() {
        let dir = std::env::temp_dir().join(format!("run-paths-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/prog"), "").unwrap();
        let argv: Vec<String> = ["bin/prog", "--flag=/x", "sub/none", "plain", "bin/"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            host_paths_of(&dir, &argv).unwrap(),
            [dir.join("bin"), dir.join("bin")]
        );
        let err = host_paths_of(&dir, &["nope/prog".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "{}: no such program on the host",
                dir.join("nope/prog").display()
            )),
            "{err}"
        );
        assert!(host_paths_of(&dir, &["tcp-echo".to_string()])
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

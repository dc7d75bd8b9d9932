//! Booting the built kernel in QEMU with the host's root shared read-only
//! over 9p (or an initramfs), running one command in the guest (or a shell),
//! and reading its exit status from init's marker line.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use crate::{
    ctx::{project_root, Ctx, Prepared},
    guest::{
        clock::host_tsc_khz,
        initramfs,
        programs::{guest_bin_dir, guest_env, guest_init},
        qemu::{self, Accel, Guest, Root},
    },
    util::{
        exec::{describe, which, Exec},
        fsutil,
    },
};

/// `run`'s exit status when the guest never reported one (a panic, a hang).
pub const BOOT_FAILED: u8 = 125;

/// The guest command's status as ours.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// The line init prints after the command, with its exit status.
const MARKER_PREFIX: &str = "<<<linux-study exit=";

pub struct RunRequest {
    pub accel: Accel,
    pub mem: String,
    pub cpus: u32,
    pub gdb_port: Option<u16>,
    pub wait_gdb: bool,
    pub append: Vec<String>,
    pub qemu_args: Vec<String>,
    pub timeout: Duration,
    pub initramfs: bool,
    pub out_dir: Option<PathBuf>,
}

impl RunRequest {
    /// A plain run: 1 GiB, one CPU, no debugger, the host's root, 600 s.
    pub fn new(accel: Accel) -> RunRequest {
        RunRequest {
            accel,
            mem: "1G".into(),
            cpus: 1,
            gdb_port: None,
            wait_gdb: false,
            append: Vec::new(),
            qemu_args: Vec::new(),
            timeout: Duration::from_secs(600),
            initramfs: false,
            out_dir: None,
        }
    }
}

/// What a guest run produced.
pub struct RunOutcome {
    /// The command's exit status, from init's marker line.
    pub exit: Option<i32>,
    pub console_tail: Vec<String>,
    pub timed_out: bool,
    pub qemu_status: String,
    pub elapsed: Duration,
}

impl RunOutcome {
    pub fn failure(&self) -> String {
        let panic = self
            .console_tail
            .iter()
            .find(|l| l.contains("Kernel panic"));
        let why = match (self.timed_out, panic) {
            (_, Some(line)) => format!("the kernel panicked: {}", line.trim()),
            (true, None) => format!(
                "no exit status within {:.0} s; QEMU was killed",
                self.elapsed.as_secs_f64()
            ),
            (false, None) => format!(
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

fn guest_spec(
    p: &Prepared,
    req: &RunRequest,
    root: Root,
    job: Option<String>,
    interactive: bool,
    verbose: bool,
) -> Guest {
    Guest {
        image: p.image(),
        accel: req.accel,
        mem: req.mem.clone(),
        cpus: req.cpus,
        root,
        init: guest_init().to_string(),
        job,
        out_dir: req.out_dir.clone(),
        gdb_port: req.gdb_port,
        wait_gdb: req.wait_gdb,
        verbose,
        interactive,
        append: req.append.clone(),
        qemu_args: req.qemu_args.clone(),
        host_tsc_khz: match (req.accel, &p.arch.qemu.host_tsc_khz_param_tcg) {
            (Accel::Tcg, Some(_)) => host_tsc_khz(&project_root().join("target/host-tsc.txt")),
            _ => None,
        },
        keep: vec![
            project_root(),
            std::env::current_dir().unwrap_or_default(),
            p.build_dir.clone(),
            guest_bin_dir(),
        ],
    }
}

/// Runs `argv` in the guest and collects its exit status.
pub fn run_command(
    ctx: &Ctx,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
) -> Result<RunOutcome> {
    run_guest(&ctx.exec, p, req, argv, false)
}

pub(super) fn run_guest(
    exec: &Exec,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
    quiet: bool,
) -> Result<RunOutcome> {
    let run_dir = p.state_dir().join("run");
    let job_path = run_dir.join(format!("job-{}", std::process::id()));
    let env_path = run_dir.join(format!("env-{}", std::process::id()));
    let cwd = std::env::current_dir()?;
    let (root, job, env) = if req.initramfs && !exec.dry_run {
        let cpio = initramfs::build(
            exec,
            p,
            &qemu::job_text(Path::new("/"), argv),
            b"PATH=/bin\0",
        )?;
        (
            Root::Initramfs(cpio),
            "/study/job".to_string(),
            "/study/env".to_string(),
        )
    } else {
        let root = if req.initramfs {
            Root::Initramfs(p.state_dir().join("initramfs/initramfs.cpio"))
        } else {
            Root::HostNineP
        };
        (
            root,
            job_path.display().to_string(),
            env_path.display().to_string(),
        )
    };
    let mut guest = guest_spec(p, req, root, Some(job), false, exec.verbose);
    guest.append.push(format!("study.env={env}"));
    let cmd = qemu::qemu_command(exec.sh(), &p.arch, &guest);
    if !exec.dry_run && which(&p.arch.qemu.binary).is_none() {
        bail!(
            "{} is not installed: run `apt-get install {}`",
            p.arch.qemu.binary,
            p.arch.qemu.package
        );
    }
    if exec.dry_run {
        eprintln!(
            "# would write the job file {}: cwd {} argv {argv:?}",
            job_path.display(),
            cwd.display()
        );
        exec.show(cmd);
        return Ok(RunOutcome {
            exit: Some(0),
            console_tail: vec![],
            timed_out: false,
            qemu_status: "dry run".into(),
            elapsed: Duration::ZERO,
        });
    }
    if !req.initramfs {
        std::fs::create_dir_all(&run_dir)?;
        fsutil::write_if_changed(&job_path, &qemu::job_text(&cwd, argv))?;
        fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    }
    let outcome = supervise(exec, cmd, req.timeout, req.gdb_port.is_some(), quiet);
    let _ = std::fs::remove_file(&job_path);
    let _ = std::fs::remove_file(&env_path);
    if let Root::Initramfs(cpio) = &guest.root {
        let _ = std::fs::remove_dir_all(cpio.parent().expect("in its run directory"));
    }
    outcome
}

/// A guest running in the background for a debugger, its console going to
/// a file. Dropping it kills QEMU and removes the run's files.
pub struct Background {
    child: std::process::Child,
    pub console: PathBuf,
    files: Vec<PathBuf>,
}

impl Background {
    /// The command's exit status, once init has reported one.
    pub fn exit(&self) -> Option<i32> {
        let text = std::fs::read_to_string(&self.console).ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix(MARKER_PREFIX)?
                .strip_suffix(">>>")?
                .parse()
                .ok()
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
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
    let run_dir = p.state_dir().join("run");
    let job_path = run_dir.join(format!("job-{}", std::process::id()));
    let env_path = run_dir.join(format!("env-{}", std::process::id()));
    let cwd = std::env::current_dir()?;
    let mut guest = guest_spec(
        p,
        req,
        Root::HostNineP,
        Some(job_path.display().to_string()),
        false,
        true,
    );
    guest
        .append
        .push(format!("study.env={}", env_path.display()));
    let cmd = qemu::qemu_command(exec.sh(), &p.arch, &guest);
    if exec.dry_run {
        exec.show(cmd);
        return Ok(None);
    }
    std::fs::create_dir_all(&run_dir)?;
    if let Some(dir) = console.parent() {
        std::fs::create_dir_all(dir)?;
    }
    fsutil::write_if_changed(&job_path, &qemu::job_text(&cwd, argv))?;
    fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    let child = exec.spawn_logged(cmd, console)?;
    Ok(Some(Background {
        child,
        console: console.to_path_buf(),
        files: vec![job_path, env_path],
    }))
}

/// Runs QEMU, passes the console through (but for init's marker), and
/// kills it when the timeout passes.
/// A guest stopped in a debugger is not hung: no timeout while `debugged`.
fn supervise(
    exec: &Exec,
    cmd: xshell::Cmd<'_>,
    timeout: Duration,
    debugged: bool,
    quiet: bool,
) -> Result<RunOutcome> {
    let start = Instant::now();
    let mut child = exec.spawn_piped(cmd, quiet)?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || forward_lines(stdout, tx));
    std::thread::spawn(move || forward_lines(stderr, tx2));
    let mut tail: Vec<String> = Vec::new();
    let mut exit = None;
    let mut timed_out = false;
    // init prints "\n<<<marker>>>": an empty line is held back until we know
    // it is not the one before the marker.
    let mut held_empty = false;
    let mut marker_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(code) = line
                    .strip_prefix(MARKER_PREFIX)
                    .and_then(|r| r.strip_suffix(">>>"))
                {
                    exit = code.parse().ok();
                    marker_at = Some(Instant::now());
                    held_empty = false;
                    continue;
                }
                // After the marker only the kernel's shutdown remains.
                let show = !quiet && (exit.is_none() || exec.verbose);
                if show && held_empty {
                    println!();
                }
                held_empty = show && line.is_empty();
                if show && !line.is_empty() {
                    println!("{line}");
                }
                tail.push(line);
                if tail.len() > 60 {
                    tail.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // After the exit status only the reboot remains; it takes well under
        // a second, so a guest still up after the grace period is stuck.
        if marker_at.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
            let _ = child.kill();
            break;
        }
        if start.elapsed() > timeout && !debugged {
            timed_out = true;
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait()?;
    Ok(RunOutcome {
        exit,
        console_tail: tail,
        timed_out,
        qemu_status: describe(status),
        elapsed: start.elapsed(),
    })
}

fn forward_lines(from: impl std::io::Read, to: mpsc::Sender<String>) {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if to.send(line).is_err() {
            return;
        }
        buf.clear();
    }
}

/// A shell on the serial console; Ctrl-A X leaves QEMU.
pub fn interactive(ctx: &Ctx, p: &Prepared, req: &RunRequest) -> Result<ExitCode> {
    if req.initramfs {
        bail!("--initramfs runs a command; give one after `--`");
    }
    let mut guest = guest_spec(p, req, Root::HostNineP, None, true, ctx.exec.verbose);
    let env_path = p
        .state_dir()
        .join(format!("run/env-{}", std::process::id()));
    guest
        .append
        .push(format!("study.cwd={}", std::env::current_dir()?.display()));
    guest
        .append
        .push(format!("study.env={}", env_path.display()));
    let cmd = qemu::qemu_command(ctx.exec.sh(), &p.arch, &guest);
    if ctx.exec.dry_run {
        ctx.exec.show(cmd);
        return Ok(ExitCode::SUCCESS);
    }
    fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    eprintln!("a shell in the guest; `exit` or Ctrl-A X to leave");
    let status = ctx.exec.status(cmd);
    let _ = std::fs::remove_file(&env_path);
    let status = status?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

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
        supervise::{self, Supervised, TempPath},
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
    /// With `wait_gdb`: how long the guest waits for a debugger to attach
    /// before it is killed. Once one has attached there is no bound at all.
    pub attach_timeout: Duration,
    pub initramfs: bool,
    pub out_dir: Option<PathBuf>,
}

impl RunRequest {
    /// A plain run: 1 GiB, one CPU, no debugger, the host's root, 600 s
    /// (and 300 s for a debugger to attach, should one be asked for).
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
            attach_timeout: Duration::from_secs(300),
            initramfs: false,
            out_dir: None,
        }
    }
}

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
    /// The command's exit status, from init's marker line.
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
        env: None,
        cwd: None,
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
    if !exec.dry_run {
        for dir in ["run", "initramfs", "trace"] {
            supervise::remove_stale(&p.state_dir().join(dir));
        }
    }
    // Removed however the run ends: here, or by the signal handler.
    let mut temp = Vec::new();
    let (root, job, env) = if req.initramfs && !exec.dry_run {
        let (cpio, dir) = initramfs::build(
            exec,
            p,
            &qemu::job_text(Path::new("/"), argv),
            b"PATH=/bin\0",
        )?;
        temp.push(dir);
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
    guest.env = Some(env);
    qemu::check_paths(&guest)?;
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
            killed: None,
            qemu_status: "dry run".into(),
            elapsed: Duration::ZERO,
        });
    }
    if !req.initramfs {
        std::fs::create_dir_all(&run_dir)?;
        temp.push(TempPath::new(job_path.clone()));
        fsutil::write_if_changed(&job_path, &qemu::job_text(&cwd, argv))?;
        temp.push(TempPath::new(env_path.clone()));
        fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    }
    let bound = Bound {
        timeout: req.timeout,
        gdb: req.gdb_port.map(|port| Debugger {
            port,
            attach_timeout: req.wait_gdb.then_some(req.attach_timeout),
        }),
    };
    let outcome = supervise(exec, cmd, &bound, quiet);
    drop(temp);
    outcome
}

/// A guest running in the background for a debugger, its console going to
/// a file. Dropping it kills QEMU and removes the run's files.
pub struct Background {
    child: Supervised,
    pub console: PathBuf,
    _files: Vec<TempPath>,
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
    guest.env = Some(env_path.display().to_string());
    qemu::check_paths(&guest)?;
    let cmd = qemu::qemu_command(exec.sh(), &p.arch, &guest);
    if exec.dry_run {
        exec.show(cmd);
        return Ok(None);
    }
    supervise::remove_stale(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    if let Some(dir) = console.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let files = vec![
        TempPath::new(job_path.clone()),
        TempPath::new(env_path.clone()),
    ];
    fsutil::write_if_changed(&job_path, &qemu::job_text(&cwd, argv))?;
    fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    let child = exec.spawn_logged(cmd, console)?;
    Ok(Some(Background {
        child,
        console: console.to_path_buf(),
        _files: files,
    }))
}

/// How long a guest may run.
struct Bound {
    /// Without a debugger attached.
    timeout: Duration,
    gdb: Option<Debugger>,
}

struct Debugger {
    port: u16,
    /// With `-S`: the bound until a debugger attaches, instead of `timeout`.
    attach_timeout: Option<Duration>,
}

/// Runs QEMU, passes the console through (but for init's marker), and
/// kills it when its bound passes. A guest a debugger has attached to is
/// not hung when it stops: no bound from then on. Until then the bound is
/// `--attach-timeout` for a guest waiting at `-S`, `--timeout` otherwise.
fn supervise(exec: &Exec, cmd: xshell::Cmd<'_>, bound: &Bound, quiet: bool) -> Result<RunOutcome> {
    let start = Instant::now();
    let mut child = exec.spawn_piped(cmd, quiet)?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.child().stdout.take().expect("piped");
    let stderr = child.child().stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || forward_lines(stdout, tx));
    std::thread::spawn(move || forward_lines(stderr, tx2));
    let mut tail: Vec<String> = Vec::new();
    let mut exit = None;
    let mut killed = None;
    let mut attached = false;
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
            child.kill();
            break;
        }
        if let Some(gdb) = &bound.gdb {
            attached = attached || debugger_attached(gdb.port);
        }
        let (limit, why) = match &bound.gdb {
            _ if attached => continue,
            Some(Debugger {
                port,
                attach_timeout: Some(limit),
            }) => (*limit, Killed::NoDebugger { port: *port }),
            _ => (bound.timeout, Killed::Timeout),
        };
        if start.elapsed() > limit {
            killed = Some(why);
            child.kill();
            break;
        }
    }
    let status = child.wait()?;
    Ok(RunOutcome {
        exit,
        console_tail: tail,
        killed,
        qemu_status: describe(status),
        elapsed: start.elapsed(),
    })
}

/// Whether a debugger is connected to the gdb stub on 127.0.0.1:`port`:
/// an established TCP connection whose local end is that port. QEMU has no
/// event for it, but the kernel's socket table shows it.
fn debugger_attached(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .any(|table| established_on(&table, port))
}

/// Whether `table` (the text of /proc/net/tcp) holds an established
/// connection whose local port is `port`.
fn established_on(table: &str, port: u16) -> bool {
    const ESTABLISHED: &str = "01";
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
            return false;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && *state == ESTABLISHED
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
    guest.cwd = Some(std::env::current_dir()?.display().to_string());
    guest.env = Some(env_path.display().to_string());
    qemu::check_paths(&guest)?;
    let cmd = qemu::qemu_command(ctx.exec.sh(), &p.arch, &guest);
    if ctx.exec.dry_run {
        ctx.exec.show(cmd);
        return Ok(ExitCode::SUCCESS);
    }
    let _env = TempPath::new(env_path.clone());
    fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    eprintln!("a shell in the guest; `exit` or Ctrl-A X to leave");
    let status = ctx.exec.status(cmd)?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_established_connection_on_the_stub_port_is_a_debugger() {
        // QEMU listening on 127.0.0.1:1234 (0x04D2), then gdb connected.
        let listening = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            \x20  0: 0100007F:04D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
        assert!(!established_on(listening, 1234));
        let attached = format!(
            "{listening}   1: 0100007F:04D2 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n\
             \x20  2: 0100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n"
        );
        assert!(established_on(&attached, 1234));
        assert!(!established_on(&attached, 1235));
    }
}

//! `cargo xtask run`: boots the built kernel in QEMU with the host's root
//! shared read-only over 9p, runs one command in the guest (or a shell), and
//! returns its exit status. KVM when it really accelerates, TCG otherwise.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    build,
    config::Prepared,
    exec::{describe, Exec},
    flags, fsutil,
    qemu::{self, Accel, Guest, Root},
    Ctx,
};

/// `run`'s exit status when the guest never reported one (a panic, a hang).
pub const BOOT_FAILED: u8 = 125;

/// The guest command's status as ours.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// The line init prints after the command, with its exit status.
const MARKER_PREFIX: &str = "<<<linux-study exit=";

/// Where the guest programs are: static executables built by xtask/build.rs,
/// reachable from the guest over the 9p root.
pub fn guest_init() -> &'static str {
    env!("STUDY_GUEST_STUDY_INIT")
}

pub fn guest_bin_dir() -> PathBuf {
    Path::new(env!("STUDY_GUEST_TCP_ECHO"))
        .parent()
        .expect("an absolute path")
        .to_path_buf()
}

impl flags::Run {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target)?;
        if self.build {
            let request = default_build_request();
            build::build(ctx, &p, &request)?;
        } else {
            ensure_built(ctx, &p)?;
        }
        crate::host_tools::require(&ctx.study_dir(), "run")?;
        // --wait-gdb alone means the stub on its default port.
        let gdb_port = match (self.gdb, self.wait_gdb) {
            (Some(port), _) => Some(port.unwrap_or(1234)),
            (None, true) => Some(1234),
            (None, false) => None,
        };
        if let Some(port) = gdb_port {
            check_port_free(port)?;
        }
        let accel = choose_accel(ctx, &p, self.accel)?;
        let request = RunRequest {
            accel,
            mem: self.mem,
            cpus: self.cpus,
            gdb_port,
            wait_gdb: self.wait_gdb,
            append: self.append,
            qemu_args: self.qemu_arg,
            timeout: Duration::from_secs(self.timeout),
            initramfs: self.initramfs,
            out_dir: None,
        };
        if self.command.is_empty() {
            return interactive(ctx, &p, &request);
        }
        let outcome = run_command(ctx, &p, &request, &self.command)?;
        match outcome.exit {
            Some(code) => Ok(exit_code(code)),
            None => {
                // Not 1, which a guest's `false` gives.
                eprintln!("error: {}", outcome.failure());
                Ok(ExitCode::from(BOOT_FAILED))
            }
        }
    }
}

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

/// init's environment file: the guest programs first on PATH.
fn guest_env() -> String {
    format!(
        "PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0",
        guest_bin_dir().display()
    )
}

fn default_build_request() -> build::BuildRequest {
    build::BuildRequest {
        jobs: build::default_jobs(),
        fallback: true,
        suggest_config: false,
        cache: flags::Cache::Auto,
        make_args: Vec::new(),
        distcc: None,
    }
}

/// Builds first when the image is missing or older than .config or the
/// overrides. Source edits need `cargo xtask build` (or `run --build`):
/// asking make would cost a no-op build's seconds on every run.
pub fn ensure_built(ctx: &Ctx, p: &Prepared) -> Result<()> {
    let image = p.build_dir.join(&p.arch.image);
    let mtime = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    let stale = match mtime(&image) {
        None => true,
        Some(built) => {
            crate::config::needs_config(p)
                || [
                    p.build_dir.join(".config"),
                    crate::kbuild::overrides_path(&p.build_dir),
                ]
                .iter()
                .any(|input| mtime(input).is_some_and(|t| t > built))
        }
    };
    if stale {
        eprintln!("{} is missing or stale: building", image.display());
        let request = default_build_request();
        build::build(ctx, p, &request)?;
    }
    Ok(())
}

fn check_port_free(port: u16) -> Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| {
            anyhow::anyhow!(
                "gdb port 127.0.0.1:{port} is not free ({e}); pick another with --gdb=PORT"
            )
        })
}

/// `auto`: KVM when /dev/kvm opens and a short probe boot under KVM
/// finishes quickly; else TCG. A paravirtual /dev/kvm (nested in another VM)
/// can open and still abort or crawl, so opening it proves nothing.
pub fn choose_accel(ctx: &Ctx, p: &Prepared, requested: flags::AccelChoice) -> Result<Accel> {
    let (accel, why) = match requested {
        flags::AccelChoice::Kvm => (Accel::Kvm, "requested".to_string()),
        flags::AccelChoice::Tcg => (Accel::Tcg, "requested".to_string()),
        flags::AccelChoice::Auto => match kvm_verdict(ctx, p)? {
            Ok(why) => (Accel::Kvm, why),
            Err(why) => (Accel::Tcg, why),
        },
    };
    eprintln!("accel: {} ({why})", accel.name());
    Ok(accel)
}

/// Where the probe's verdict is kept, and the key it holds for: this host
/// kernel and this QEMU binary.
fn kvm_cache(ctx: &Ctx, p: &Prepared) -> (PathBuf, String) {
    let qemu = crate::exec::which(&p.arch.qemu.binary).unwrap_or_default();
    let key = format!(
        "{} {} {:?}",
        host_release(),
        qemu.display(),
        qemu.metadata().and_then(|m| m.modified()).ok()
    );
    (ctx.root.join("target/kvm-probe.txt"), key)
}

/// The cached verdict for this host and QEMU, if there is one.
pub fn cached_kvm_verdict(ctx: &Ctx, p: &Prepared) -> Option<Result<String, String>> {
    let (cache, key) = kvm_cache(ctx, p);
    let text = std::fs::read_to_string(&cache).ok()?;
    let (cached_key, verdict) = text.split_once('\n')?;
    if cached_key != key {
        return None;
    }
    let verdict = verdict.trim_end();
    Some(match verdict.strip_prefix("kvm: ") {
        Some(why) => Ok(format!("{why}, cached in {}", cache.display())),
        None => Err(format!(
            "{}, cached in {}",
            verdict.trim_start_matches("tcg: "),
            cache.display()
        )),
    })
}

fn kvm_verdict(ctx: &Ctx, p: &Prepared) -> Result<Result<String, String>> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Ok(Err(format!("cannot open /dev/kvm: {e}")));
    }
    if let Some(verdict) = cached_kvm_verdict(ctx, p) {
        return Ok(verdict);
    }
    if ctx.exec.dry_run {
        return Ok(Err("dry run: no KVM probe".into()));
    }
    let probe = RunRequest {
        accel: Accel::Kvm,
        mem: "512M".into(),
        cpus: 1,
        gdb_port: None,
        wait_gdb: false,
        append: Vec::new(),
        qemu_args: Vec::new(),
        timeout: Duration::from_secs(15),
        initramfs: false,
        out_dir: None,
    };
    eprintln!("probing KVM with a short boot (once; the verdict is cached)");
    let quiet = Ctx {
        exec: Exec::new(false, false)?,
        root: ctx.root.clone(),
        kernel_dir: ctx.kernel_dir.clone(),
        profiles_path: ctx.profiles_path.clone(),
        arch_name: ctx.arch_name.clone(),
    };
    let outcome = run_guest(&quiet, p, &probe, &["true".to_string()], true)?;
    let verdict = match outcome.exit {
        Some(0) if outcome.elapsed < Duration::from_secs(10) => Ok(format!(
            "a probe boot under KVM ran `true` in {:.1} s",
            outcome.elapsed.as_secs_f64()
        )),
        Some(_) => Err(format!(
            "a probe boot under KVM took {:.1} s, slower than TCG",
            outcome.elapsed.as_secs_f64()
        )),
        None if outcome.timed_out => Err(format!(
            "a probe boot under KVM did not finish in {:.0} s, where TCG takes about 5",
            outcome.elapsed.as_secs_f64()
        )),
        None => {
            let last = outcome
                .console_tail
                .last()
                .cloned()
                .unwrap_or_else(|| outcome.qemu_status.clone());
            Err(format!("a probe boot under KVM failed: {last}"))
        }
    };
    let line = match &verdict {
        Ok(why) => format!("kvm: {why}"),
        Err(why) => format!("tcg: {why}"),
    };
    let (cache, key) = kvm_cache(ctx, p);
    fsutil::write_if_changed(&cache, format!("{key}\n{line}\n").as_bytes())?;
    Ok(verdict)
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
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
        image: p.build_dir.join(&p.arch.image),
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
        keep: vec![
            crate::project_root(),
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
    run_guest(ctx, p, req, argv, false)
}

fn run_guest(
    ctx: &Ctx,
    p: &Prepared,
    req: &RunRequest,
    argv: &[String],
    quiet: bool,
) -> Result<RunOutcome> {
    let run_dir = p.state_dir().join("run");
    let job_path = run_dir.join(format!("job-{}", std::process::id()));
    let env_path = run_dir.join(format!("env-{}", std::process::id()));
    let cwd = std::env::current_dir()?;
    let (root, job, env) = if req.initramfs && !ctx.exec.dry_run {
        let cpio = crate::initramfs::build(
            ctx,
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
    let mut guest = guest_spec(p, req, root, Some(job), false, ctx.exec.verbose);
    guest.append.push(format!("study.env={env}"));
    let cmd = qemu::qemu_command(&p.arch, &guest);
    if ctx.exec.dry_run {
        eprintln!(
            "# would write the job file {}: cwd {} argv {argv:?}",
            job_path.display(),
            cwd.display()
        );
        eprintln!("$ {}", cmd.to_shell());
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
    let outcome = supervise(ctx, &cmd, req.timeout, req.gdb_port.is_some(), quiet);
    let _ = std::fs::remove_file(&job_path);
    let _ = std::fs::remove_file(&env_path);
    if let Root::Initramfs(cpio) = &guest.root {
        let _ = std::fs::remove_dir_all(cpio.parent().expect("in its run directory"));
    }
    outcome
}

/// Runs QEMU, passes the console through (but for init's marker), and
/// kills it when the timeout passes.
/// A guest stopped in a debugger is not hung: no timeout while `debugged`.
fn supervise(
    ctx: &Ctx,
    cmd: &crate::exec::Command,
    timeout: Duration,
    debugged: bool,
    quiet: bool,
) -> Result<RunOutcome> {
    let start = Instant::now();
    let mut child = ctx
        .exec
        .to_std_echoed(cmd, quiet)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.program))?;
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
                let show = !quiet && (exit.is_none() || ctx.exec.verbose);
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
fn interactive(ctx: &Ctx, p: &Prepared, req: &RunRequest) -> Result<ExitCode> {
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
    let cmd = qemu::qemu_command(&p.arch, &guest);
    if ctx.exec.dry_run {
        eprintln!("$ {}", cmd.to_shell());
        return Ok(ExitCode::SUCCESS);
    }
    fsutil::write_if_changed(&env_path, guest_env().as_bytes())?;
    eprintln!("a shell in the guest; `exit` or Ctrl-A X to leave");
    let status = ctx.exec.status(&cmd);
    let _ = std::fs::remove_file(&env_path);
    let status = status?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! Pure builders for the QEMU command line and the kernel command line:
//! the host's root over virtio-9p (as virtme does) or a busybox initramfs,
//! the accelerator, a loopback-only gdb stub.

use std::path::{Path, PathBuf};

use xshell::{Cmd, Shell};

use crate::{guest::status::STATUS_TAG, study::arch::Qemu};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The host's `/`, read-only: over virtio-9p under QEMU, over hostfs
    /// under UML.
    Host,
    /// A cpio initramfs (busybox) instead of a 9p root.
    Initramfs(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub image: PathBuf,
    pub accel: Accel,
    pub mem: String,
    pub cpus: u32,
    pub root: Root,
    /// The guest's init, a path on the root filesystem.
    pub init: String,
    /// The job file for init, a path on the root filesystem.
    pub job: Option<String>,
    /// init's environment file, a path on the root filesystem.
    pub env: Option<String>,
    /// The interactive shell's working directory.
    pub cwd: Option<String>,
    /// A writable host directory, mounted by tag `study-out` in the guest.
    pub out_dir: Option<PathBuf>,
    /// The host folder init reports the command's exit status in
    /// (guest::status): virtio-9p tag `study-status` under QEMU, hostfs
    /// under UML.
    pub status: Option<PathBuf>,
    pub gdb_port: Option<u16>,
    /// The kernel at its link address even without a gdb stub: a recorded
    /// run, which its replays under gdb must boot the same.
    pub nokaslr: bool,
    pub wait_gdb: bool,
    /// init starts the job once this file exists (a path on the root
    /// filesystem), which gdb creates as it first continues: the stub need
    /// not wait at the reset vector, and gdb reads vmlinux during the boot.
    pub hold: Option<String>,
    /// Keep kernel messages on the console (no `quiet`).
    pub verbose: bool,
    pub interactive: bool,
    pub append: Vec<String>,
    /// Appended to the `-cpu` model: `max,smap=off`.
    pub cpu_features: Vec<String>,
    pub qemu_args: Vec<String>,
    /// The host's TSC rate, for the guest clock under TCG.
    pub host_tsc_khz: Option<u64>,
    /// Host paths the guest must see (the repository, the working
    /// directory, the build dir), even under the tmpfs init mounts.
    pub keep: Vec<PathBuf>,
    /// The QEMU Machine Protocol's Unix socket (drgn, `dump`), with the
    /// vmcoreinfo device that lets a reader of the guest's memory find the
    /// kernel in it.
    pub qmp: Option<PathBuf>,
}

/// Where init mounts a tmpfs over the host's directory.
const SHADOWED: [&str; 4] = ["/tmp", "/run", "/root", "/var"];

/// How many `study.keep` paths study/guest/init.c takes (MAX_KEEP there).
const MAX_KEPT: usize = 8;

/// The `keep` paths that a tmpfs would hide, without any path whose
/// ancestor is already kept.
pub fn shadowed(keep: &[PathBuf]) -> Vec<PathBuf> {
    let mut under: Vec<&PathBuf> = keep
        .iter()
        .filter(|p| {
            SHADOWED
                .iter()
                .any(|d| p.starts_with(d) && p.as_path() != Path::new(d))
        })
        .collect();
    under.sort();
    under.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in under {
        if !out.iter().any(|kept| p.starts_with(kept)) {
            out.push(p.clone());
        }
    }
    out
}

pub const OUT_TAG: &str = "study-out";

/// `key=value` for the kernel command line, the value in double quotes
/// when it holds anything but plain path characters: the kernel's own
/// parser and init's both take `key="a b"` as one word and drop the quotes.
pub fn param(key: &str, value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./+:@%=,".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        format!("{key}={value}")
    } else {
        format!("{key}=\"{value}\"")
    }
}

/// A value no quoting carries on the kernel command line: a double quote
/// (nothing escapes it there), a control character, or non-UTF-8.
fn unquotable(value: &str) -> Option<char> {
    value.chars().find(|c| *c == '"' || c.is_control())
}

/// Refuses, in one line, a path the guest cannot be told about.
pub fn check_paths(guest: &Guest) -> anyhow::Result<()> {
    let mut paths: Vec<(&str, String)> = vec![("init", guest.init.clone())];
    paths.extend(guest.job.iter().map(|j| ("the job file", j.clone())));
    paths.extend(guest.env.iter().map(|e| ("the env file", e.clone())));
    paths.extend(guest.hold.iter().map(|h| ("the hold file", h.clone())));
    paths.extend(
        guest
            .status
            .iter()
            .map(|s| ("the status folder", s.display().to_string())),
    );
    paths.extend(
        guest
            .cwd
            .iter()
            .map(|c| ("the working directory", c.clone())),
    );
    paths.extend(
        shadowed(&guest.keep)
            .iter()
            .map(|k| ("a kept path", k.display().to_string())),
    );
    let kept = shadowed(&guest.keep);
    if let Some(extra) = kept.get(MAX_KEPT) {
        anyhow::bail!(
            "{} must stay visible in the guest, but its init keeps at most {MAX_KEPT} paths under \
             {}: move it, or one of {}, elsewhere",
            extra.display(),
            SHADOWED.join(", "),
            kept[..MAX_KEPT]
                .iter()
                .map(|k| k.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (what, path) in paths {
        if let Some(c) = unquotable(&path) {
            anyhow::bail!(
                "{what} {path:?} holds {c:?}, which the kernel command line cannot carry; \
                 run from (or move the checkout to) a path without it"
            );
        }
    }
    Ok(())
}

/// A value inside one of QEMU's `key=value,key=value` option lists: a
/// comma in it is written twice.
pub fn qemu_opt_value(value: &str) -> String {
    value.replace(',', ",,")
}

/// The 9p mount tag of the host's root, which `root=` names. Not virtme's
/// "/dev/root": Linux 6.1's prepare_namespace() (init/do_mounts.c) strips
/// "/dev/" from `root=` before mount_nodev_root() mounts it, so 9p asks for
/// a channel tagged "root" and finds none; only mount_block_root(), built
/// with CONFIG_BLOCK (not in tiny), retried with "/dev/root". 6.12 passes
/// `root=` through whole. Not "/dev/..." then, and not all hex digits,
/// which `root=` would read as a device number.
pub const ROOT_TAG: &str = "study-root";

/// The kernel command line under QEMU.
pub fn kernel_cmdline(q: &Qemu, guest: &Guest) -> String {
    let mut words = vec![format!("console={}", q.console)];
    match &guest.root {
        Root::Host => {
            words.push(format!("root={ROOT_TAG}"));
            words.push("rootfstype=9p".into());
            words.push("rootflags=trans=virtio,version=9p2000.L,msize=524288,access=any".into());
            words.push("ro".into());
        }
        Root::Initramfs(_) => words.push("rdinit=/init".into()),
    }
    let status = guest.status.as_ref().map(|_| format!("9p:{STATUS_TAG}"));
    words.extend(init_words(guest, status));
    // A panic reboots at once, and -no-reboot turns that into QEMU exiting.
    words.push("panic=-1".into());
    if guest.gdb_port.is_some() || guest.nokaslr {
        words.push("nokaslr".into());
    }
    if guest.qmp.is_some() {
        words.extend(q.cmdline_fw_cfg.iter().cloned());
    }
    words.extend(quiet_words(guest));
    if guest.accel == Accel::Tcg {
        // A fine clock every time: see study/notes/guest-clock.md.
        words.extend(q.cmdline_tcg.iter().cloned());
        if let (Some(param), Some(khz)) = (&q.host_tsc_khz_param_tcg, guest.host_tsc_khz) {
            words.push(format!("{param}={khz}"));
        }
    }
    // Last, so that --append can override any word above.
    words.extend(guest.append.iter().cloned());
    words.join(" ")
}

/// What init is told, whatever runs the kernel: itself (on the host's
/// root), its job, environment and working directory, where it reports the
/// exit status (`status`: the runner's way to the status folder), and the
/// host paths its tmpfs mounts must leave visible.
pub fn init_words(guest: &Guest, status: Option<String>) -> Vec<String> {
    let mut words = Vec::new();
    if guest.root == Root::Host {
        words.push(param("init", &guest.init));
    }
    if let Some(job) = &guest.job {
        words.push(param("study.job", job));
    }
    if let Some(env) = &guest.env {
        words.push(param("study.env", env));
    }
    if let Some(cwd) = &guest.cwd {
        words.push(param("study.cwd", cwd));
    }
    if let Some(hold) = &guest.hold {
        words.push(param("study.hold", hold));
    }
    if let Some(status) = status {
        words.push(param("study.status", &status));
    }
    // One word a path: a path may hold a comma.
    for keep in shadowed(&guest.keep) {
        words.push(param("study.keep", &keep.display().to_string()));
    }
    words
}

/// Panics (level 0) still print; routine errors do not mix with the
/// command's output.
pub fn quiet_words(guest: &Guest) -> Vec<String> {
    if guest.verbose {
        Vec::new()
    } else {
        vec!["quiet".into(), "loglevel=2".into()]
    }
}

/// What every guest's QEMU command line starts with.
pub struct Machine<'a> {
    pub binary: &'a str,
    pub machine: &'a str,
    pub accel: &'a str,
    pub cpu: &'a str,
    pub mem: &'a str,
    pub cpus: u32,
}

impl Machine<'_> {
    /// QEMU on this machine, with no default devices, no display, no
    /// user config, and an exit where the guest would reboot.
    pub fn cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        sh.cmd(self.binary)
            .args(["-machine", self.machine])
            .args(["-accel", self.accel])
            .args(["-cpu", self.cpu])
            .args(["-m", self.mem])
            .args(["-smp".to_string(), self.cpus.to_string()])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
    }
}

/// The guest's console on QEMU's stdio, a Ctrl-C there no signal to QEMU.
pub const STDIO_CONSOLE: [&str; 4] = [
    "-chardev",
    "stdio,id=console,signal=off",
    "-serial",
    "chardev:console",
];

/// A host folder shared over virtio-9p (`device`) as fsdev `id` with the
/// mount tag `tag`; `options` follow `security_model=none` (`,readonly=on`).
pub fn folder_9p(device: &str, id: &str, path: &Path, tag: &str, options: &str) -> [String; 4] {
    [
        "-fsdev".to_string(),
        format!(
            "local,id={id},path={},security_model=none{options}",
            qemu_opt_value(&path.display().to_string())
        ),
        "-device".to_string(),
        format!("{device},fsdev={id},mount_tag={tag}"),
    ]
}

/// The gdb stub, if a port is given: on loopback only (`-s` would offer a
/// kernel debugger to the network), and with `wait`, the CPUs stopped
/// until gdb continues them.
pub fn gdb_stub(port: Option<u16>, wait: bool) -> Vec<String> {
    let Some(port) = port else { return Vec::new() };
    let mut args = vec!["-gdb".to_string(), format!("tcp:127.0.0.1:{port}")];
    if wait {
        args.push("-S".to_string());
    }
    args
}

/// The QEMU command line.
pub fn qemu_command<'a>(sh: &'a Shell, q: &Qemu, guest: &Guest) -> Cmd<'a> {
    let model = match guest.accel {
        Accel::Kvm => &q.cpu_kvm,
        Accel::Tcg => &q.cpu_tcg,
    };
    let cpu = [model.clone()]
        .into_iter()
        .chain(guest.cpu_features.iter().cloned())
        .collect::<Vec<_>>()
        .join(",");
    let machine = Machine {
        binary: &q.binary,
        machine: &q.machine,
        accel: guest.accel.name(),
        cpu: &cpu,
        mem: &guest.mem,
        cpus: guest.cpus,
    };
    let mut cmd = machine.cmd(sh);
    cmd = if guest.interactive {
        // Ctrl-A X quits; Ctrl-C goes to the guest.
        cmd.args(["-serial", "mon:stdio"])
    } else {
        cmd.args(STDIO_CONSOLE)
    };
    cmd = cmd.args(["-kernel".to_string(), guest.image.display().to_string()]);
    match &guest.root {
        Root::Host => {
            let options = ",readonly=on,multidevs=remap";
            cmd = cmd.args(folder_9p(
                &q.virtio_9p,
                "root",
                Path::new("/"),
                ROOT_TAG,
                options,
            ));
        }
        Root::Initramfs(path) => {
            cmd = cmd.args(["-initrd".to_string(), path.display().to_string()])
        }
    }
    if let Some(out) = &guest.out_dir {
        cmd = cmd.args(folder_9p(&q.virtio_9p, "out", out, OUT_TAG, ""));
    }
    if let Some(status) = &guest.status {
        cmd = cmd.args(folder_9p(&q.virtio_9p, "status", status, STATUS_TAG, ""));
    }
    cmd = cmd.args(gdb_stub(guest.gdb_port, guest.wait_gdb));
    if let Some(socket) = &guest.qmp {
        // A Unix socket only: QMP can read and write all of guest memory.
        cmd = cmd
            .args([
                "-qmp".to_string(),
                format!(
                    "unix:{},server=on,wait=off",
                    qemu_opt_value(&socket.display().to_string())
                ),
            ])
            .args(["-device", "vmcoreinfo"]);
    }
    cmd.args(["-append".to_string(), kernel_cmdline(q, guest)])
        .args(guest.qemu_args.iter().cloned())
}

/// The job file init reads: NUL-separated working directory and argv.
pub fn job_text(cwd: &Path, argv: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(cwd.display().to_string().as_bytes());
    for arg in argv {
        out.push(0);
        out.extend_from_slice(arg.as_bytes());
    }
    out.push(0);
    out
}

/// A batch run on the host's root, for the command-line tests of each
/// runner.
#[cfg(test)]
pub(crate) fn test_guest() -> Guest {
    Guest {
        image: "/b/tiny/arch/x86/boot/bzImage".into(),
        accel: Accel::Tcg,
        mem: "1G".into(),
        cpus: 1,
        root: Root::Host,
        init: "/t/study-init".into(),
        job: Some("/b/tiny/.study/run/job".into()),
        env: None,
        cwd: None,
        out_dir: None,
        status: None,
        gdb_port: None,
        nokaslr: false,
        wait_gdb: false,
        hold: None,
        verbose: false,
        interactive: false,
        append: vec![],
        cpu_features: vec![],
        qemu_args: vec![],
        host_tsc_khz: Some(2596128),
        qmp: None,
        keep: vec!["/work/repo".into()],
    }
}

#[cfg(test)]
mod tests;

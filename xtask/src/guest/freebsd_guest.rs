//! A FreeBSD kernel as a guest (issue 35), the one module of that guest
//! mode: QEMU loads `kernel` through FreeBSD's PVH entry, the root is a
//! host folder over virtio-9p (p9fs(4)) that holds only this project's
//! study-init and guest programs (study/guest/freebsd/), compiled here
//! against the tree's own headers, and the command's words reach init in
//! the kernel environment. The facts are data (study/guest/freebsd/
//! guest.toml); the status folder is Linux's (guest::status).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{Cmd, Shell};

use crate::{
    ctx::Prepared,
    guest::{
        qemu::{folder_9p, gdb_stub, Machine, ROOT_TAG, STDIO_CONSOLE},
        run_request::RunRequest,
        status::{StatusFolder, STATUS_TAG},
    },
    util::exec::{to_shell, Exec},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuestData {
    pub qemu: QemuData,
    pub kenv: KenvData,
    pub programs: ProgramsData,
    pub gdb: GdbData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GdbData {
    pub file: String,
    pub setup: Vec<String>,
    pub source_prefix: String,
    pub helpers: Vec<String>,
}

/// What gdb's session does for a FreeBSD kernel, before it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbSetup {
    /// Commands before `file`, the sources' prefix mapped to the tree.
    pub setup: Vec<String>,
    /// The kernel gdb reads.
    pub file: PathBuf,
    /// The tree's helper scripts, each sourced (a failing one reported).
    pub helpers: Vec<PathBuf>,
}

impl GdbData {
    /// The session's setup for the build in `build_dir` of `tree`.
    pub fn setup(&self, tree: &Path, build_dir: &Path) -> GdbSetup {
        let mut setup = self.setup.clone();
        setup.push(format!(
            "set substitute-path {} {}",
            self.source_prefix,
            tree.display()
        ));
        GdbSetup {
            setup,
            file: build_dir.join(&self.file),
            helpers: self.helpers.iter().map(|h| tree.join(h)).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QemuData {
    pub binary: String,
    pub package: String,
    pub machine: String,
    pub accel: String,
    pub cpu: String,
    pub virtio_9p: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KenvData {
    pub fixed: Vec<String>,
    pub quiet: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProgramsData {
    pub compiler: String,
    pub flags: Vec<String>,
    pub links: std::collections::BTreeMap<String, String>,
    pub list: Vec<ProgramData>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProgramData {
    pub source: String,
    pub name: String,
}

/// The data file, relative to the study directory.
pub const DATA: &str = "guest/freebsd/guest.toml";

impl GuestData {
    pub fn load(study_dir: &Path) -> Result<GuestData> {
        let path = study_dir.join(DATA);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).map_err(|e| crate::study::origin::toml_error(&path, &text, &e))
    }
}

/// One FreeBSD guest run.
#[derive(Debug, Clone)]
pub struct FreebsdGuest {
    /// What QEMU boots (the build's `kernel`).
    pub kernel: PathBuf,
    /// The host folder that is the guest's root (see [`root_dir`]).
    pub root: PathBuf,
    pub argv: Vec<String>,
    /// The host's status folder (guest::status).
    pub status: Option<PathBuf>,
    pub mem: String,
    pub cpus: u32,
    pub gdb_port: Option<u16>,
    pub wait_gdb: bool,
    pub verbose: bool,
    pub append: Vec<String>,
    pub qemu_args: Vec<String>,
}

/// FreeBSD keeps 127 bytes of each NAME=VALUE word (boot_parse_arg).
const KENV_WORD_MAX: usize = 127;

/// A kenv value as study-init decodes it: bytes outside a plain set as
/// %XX, so a space, a comma or a quote survives FreeBSD's split.
pub fn encode(word: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"._/:+@=-".contains(&b);
    word.bytes()
        .map(|b| match plain(b) {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

/// The kernel environment for `guest`, in order: the fixed words, the
/// quiet ones, init's (the command's words, one variable each; the status
/// folder's tag), then --append's, which may override any of them.
pub fn kenv_words(data: &GuestData, guest: &FreebsdGuest) -> Result<Vec<String>> {
    let mut words = data.kenv.fixed.clone();
    if guest.verbose {
        words.push("study.verbose=1".into());
    } else {
        words.extend(data.kenv.quiet.iter().cloned());
    }
    if guest.status.is_some() {
        words.push(format!("study.status=p9fs:{STATUS_TAG}"));
    }
    words.extend(argv_words(&guest.argv)?);
    words.extend(guest.append.iter().cloned());
    Ok(words)
}

/// The command's words as kenv variables, `study.argv.N`, each refused in
/// one line when FreeBSD would cut it.
pub fn argv_words(argv: &[String]) -> Result<Vec<String>> {
    let mut words = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        let word = format!("study.argv.{i}={}", encode(arg));
        if word.len() > KENV_WORD_MAX {
            bail!(
                "the command's word {i} ({arg:?}) is {} bytes in FreeBSD's kernel environment \
                 ({word:?}), which keeps {KENV_WORD_MAX} of each word: give a shorter argument",
                word.len()
            );
        }
        words.push(word);
    }
    Ok(words)
}

/// The QEMU command line.
pub fn qemu_command<'a>(sh: &'a Shell, data: &GuestData, guest: &FreebsdGuest) -> Result<Cmd<'a>> {
    let q = &data.qemu;
    let machine = Machine {
        binary: &q.binary,
        machine: &q.machine,
        accel: &q.accel,
        cpu: &q.cpu,
        mem: &guest.mem,
        cpus: guest.cpus,
    };
    let mut cmd = machine
        .cmd(sh)
        .args(STDIO_CONSOLE)
        .args(["-kernel".to_string(), guest.kernel.display().to_string()])
        .args(folder_9p(
            &q.virtio_9p,
            "root",
            &guest.root,
            ROOT_TAG,
            ",readonly=on",
        ));
    if let Some(status) = &guest.status {
        cmd = cmd.args(folder_9p(&q.virtio_9p, "status", status, STATUS_TAG, ""));
    }
    // Loopback only, as for Linux guests.
    cmd = cmd.args(gdb_stub(guest.gdb_port, guest.wait_gdb));
    Ok(cmd
        .args(["-append".to_string(), kenv_words(data, guest)?.join(" ")])
        .args(guest.qemu_args.iter().cloned()))
}

/// A FreeBSD guest ready to start: QEMU's command line and the status
/// folder its init reports in. `study_dir`: the study data.
pub fn prepare<'a>(
    exec: &'a Exec,
    p: &Prepared,
    study_dir: &Path,
    req: &RunRequest,
    argv: Option<&[String]>,
    verbose: bool,
) -> Result<(Cmd<'a>, StatusFolder)> {
    let Some(argv) = argv else {
        bail!(
            "a FreeBSD guest has no shell (no FreeBSD userland: its init runs one command); \
             give one after `--`, e.g. `run -- tcp-echo`"
        );
    };
    if req.initramfs {
        bail!("--initramfs is for Linux guests: a FreeBSD guest's root is already its own folder over 9p");
    }
    // Refused before anything is written.
    argv_words(argv)?;
    let data = GuestData::load(study_dir)?;
    let root = build_root(exec, &data, study_dir, &p.tree.path, &p.build_dir)?;
    let run_dir = p.state().run();
    exec.create_dir_all(&run_dir)?;
    let status = StatusFolder::create(exec, &run_dir, req.linger)?;
    let guest = FreebsdGuest {
        kernel: p.image(),
        root,
        argv: argv.to_vec(),
        status: Some(status.dir.clone()),
        mem: req.mem.clone(),
        cpus: req.cpus,
        gdb_port: req.gdb_port,
        // No held command (study.hold) yet: a debugger's guest waits at the
        // reset vector while gdb reads kernel.full.
        wait_gdb: req.gdb_port.is_some() && (req.wait_gdb || req.hold_for_gdb),
        verbose,
        append: req.append.clone(),
        qemu_args: req.qemu_args.clone(),
    };
    exec.require(
        &data.qemu.binary,
        &format!("run `apt-get install {}`", data.qemu.package),
    )?;
    Ok((qemu_command(exec.sh(), &data, &guest)?, status))
}

/// Refuses, in one line, a command this guest mode does not have yet on a
/// FreeBSD build (`trace`, `drgn`, `dump`, `packetdrill`, `callgraph`, `record`, `replay`):
/// they read Linux's vmlinux, ftrace or /proc, or boot an initramfs.
pub fn refuse_on_freebsd(p: &Prepared, command: &str) -> Result<()> {
    if p.freebsd.is_some() {
        bail!(
            "{command}: not on a FreeBSD build yet ({}); `run`, `debug` and `gdb` are \
             (docs/src/freebsd-run.md)",
            p.tree.path.display()
        );
    }
    Ok(())
}

/// The guest's root in the build directory: /bin with study-init and the
/// programs, and the empty /dev (devfs) and /status (the status folder).
pub fn root_dir(build_dir: &Path) -> PathBuf {
    build_dir.join(".study/freebsd-root")
}

/// `{tree}` and `{include}` in a flag.
fn expand(flag: &str, tree: &Path, include: &Path) -> String {
    flag.replace("{tree}", &tree.display().to_string())
        .replace("{include}", &include.display().to_string())
}

/// The compile line of one program: `source` to `out`.
pub fn compile_command<'a>(
    sh: &'a Shell,
    data: &GuestData,
    tree: &Path,
    include: &Path,
    source: &Path,
    out: &Path,
) -> Cmd<'a> {
    let p = &data.programs;
    sh.cmd(&p.compiler)
        .args(p.flags.iter().map(|f| expand(f, tree, include)))
        .arg("-o")
        .arg(out)
        .arg(source)
}

/// Builds the root folder for `tree` in `build_dir` (see [`root_dir`]):
/// each program compiled aside and renamed, again only when its source,
/// rt.h or its command line changed. `study_dir`: the study data.
pub fn build_root(
    exec: &Exec,
    data: &GuestData,
    study_dir: &Path,
    tree: &Path,
    build_dir: &Path,
) -> Result<PathBuf> {
    let root = root_dir(build_dir);
    let bin = root.join("bin");
    let include = build_dir.join(".study/freebsd-include");
    for dir in [&bin, &root.join("dev"), &root.join("status"), &include] {
        exec.create_dir_all(dir)?;
    }
    for (name, target) in &data.programs.links {
        let link = include.join(name);
        let target = tree.join(target);
        if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            if link.symlink_metadata().is_ok() {
                exec.remove_all(&link)?;
            }
            exec.symlink(&target, &link)?;
        }
    }
    let sources = study_dir.join("guest/freebsd");
    let runtime = sources.join("rt.h");
    let mut required = false;
    for program in &data.programs.list {
        let source = sources.join(&program.source);
        let exe = bin.join(&program.name);
        // One per process: two runs of one build directory compile at once.
        let partial = bin.join(format!(".{}.partial-{}", program.name, std::process::id()));
        let cmd = compile_command(exec.sh(), data, tree, &include, &source, &partial);
        // The stamp holds the command line: new flags or a new tree rebuild.
        let again = compile_command(exec.sh(), data, tree, &include, &source, &exe);
        let line = format!("{}\n", to_shell(&again.into()));
        let stamp = bin.join(format!(".{}.cmd", program.name));
        let fresh = std::fs::read_to_string(&stamp).is_ok_and(|s| s == line)
            && newer(&exe, &source)
            && newer(&exe, &runtime);
        if fresh {
            continue;
        }
        if !required {
            exec.require(
                &data.programs.compiler,
                "run `apt-get install clang-14 lld-14`",
            )?;
            required = true;
        }
        exec.run(cmd).with_context(|| {
            format!(
                "{} did not compile against {}",
                source.display(),
                tree.display()
            )
        })?;
        exec.rename(&partial, &exe)?;
        exec.write(&stamp, &line)?;
    }
    Ok(root)
}

fn newer(a: &Path, b: &Path) -> bool {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((time(a), time(b)), (Some(a), Some(b)) if a >= b)
}

#[cfg(test)]
mod tests;

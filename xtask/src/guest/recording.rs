//! A recording of one guest run (`record`, `replay`): QEMU's record/replay
//! (`-icount rr=record|replay`) on an initramfs guest, its files under the
//! build directory (`.study/record/NAME/`, the one place that names them),
//! the QEMU that can make and replay it (chosen by its version, not its
//! path), and the QEMU arguments of each mode.
//!
//! A recording is written into `NAME.partial-PID/` and renamed into place
//! once whole: a failed or interrupted `record` leaves none.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::cmd;

use crate::{
    ctx::Prepared,
    guest::qemu::qemu_opt_value,
    study::{
        arch::{Arch, Replay},
        host_tools,
    },
    util::exec::{which, Exec},
};

/// QEMU's replay log: every input the guest took, by instruction count.
pub const LOG: &str = "replay.bin";
/// The qcow2 image that holds the snapshot QEMU takes at the start.
pub const SNAPSHOTS: &str = "snapshots.qcow2";
/// The initramfs the guest booted: a replay boots the same bytes.
pub const INITRAMFS: &str = "initramfs.cpio";
/// The kernel command line: a replay must give the same.
pub const CMDLINE: &str = "cmdline";
/// vmlinux's GNU build ID, in hex.
pub const BUILD_ID: &str = "build-id";
/// The command, one word a line.
pub const COMMAND: &str = "command";
/// Its exit status, `N\n`.
pub const EXIT: &str = "exit";
/// `QEMU emulator version ...` of the QEMU that recorded: its log format is
/// its own.
pub const QEMU: &str = "qemu-version";

/// Every file of a whole recording.
pub const FILES: [&str; 8] = [
    LOG, SNAPSHOTS, INITRAMFS, CMDLINE, BUILD_ID, COMMAND, EXIT, QEMU,
];

/// The name a recording gets without `--name`.
pub const DEFAULT_NAME: &str = "last";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Record,
    Replay,
}

/// A QEMU found on this host, and what it can do.
#[derive(Debug, Clone)]
pub struct RrQemu {
    pub binary: String,
    /// Its `--version` line.
    pub version: String,
    /// Whether its reverse execution works (its version is at least the
    /// arch file's `min-qemu`).
    pub reverses: bool,
}

/// What a guest run needs to record or replay: the mode, the recording's
/// directory (the partial one while recording), and the QEMU.
#[derive(Debug, Clone)]
pub struct Rr {
    pub mode: Mode,
    pub dir: PathBuf,
    pub qemu: RrQemu,
}

impl Rr {
    /// The arguments QEMU gets beside the run's own: record/replay by
    /// instruction count, the snapshot at the start (`rrsnapshot=init`: the
    /// only snapshot QEMU's reverse steps can load without hanging, see
    /// docs/src/time-travel.md) in an image of its own.
    pub fn qemu_args(&self) -> Vec<String> {
        let mode = match self.mode {
            Mode::Record => "record",
            Mode::Replay => "replay",
        };
        let path = |f: &str| qemu_opt_value(&self.dir.join(f).display().to_string());
        vec![
            "-icount".into(),
            format!("shift=auto,rr={mode},rrfile={},rrsnapshot=init", path(LOG)),
            "-drive".into(),
            format!("file={},if=none,id=rr", path(SNAPSHOTS)),
        ]
    }

    /// The kernel command line: kept by a recording, checked by a replay
    /// (another one would make the guest diverge from its log).
    pub fn check_cmdline(&self, exec: &Exec, cmdline: &str) -> Result<()> {
        let path = self.dir.join(CMDLINE);
        match self.mode {
            Mode::Record => exec.write(&path, format!("{cmdline}\n")).map(drop),
            Mode::Replay => {
                let recorded = read(&path)?;
                if recorded.trim_end() != cmdline {
                    bail!(
                        "{}: the kernel command line differs from the recording's ({:?} now): \
                         record it again",
                        path.display(),
                        cmdline
                    );
                }
                Ok(())
            }
        }
    }
}

/// `record`'s directory for `name` in the build, checked to be a plain
/// word (it names a directory).
pub fn dir_of(p: &Prepared, name: &str) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !plain {
        bail!("recording name {name:?}: give a plain word (letters, digits, _ - .)");
    }
    Ok(p.state().recordings().join(name))
}

/// `MAJOR.MINOR.PATCH` from QEMU's `--version` line.
pub fn parse_version(line: &str) -> Option<(u32, u32, u32)> {
    let word = line.split("version ").nth(1)?.split_whitespace().next()?;
    let mut parts = word.split('.').map(|n| n.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The first line of `binary --version` (`QEMU emulator version ...`), or
/// None when it does not run.
pub fn version_line(exec: &Exec, binary: &str) -> Option<String> {
    let sh = exec.sh();
    let out = exec.query(cmd!(sh, "{binary} --version")).ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// The QEMUs this host has for `p`'s architecture: the one on PATH, then
/// the arch file's `qemu-tool` when it is unpacked.
pub fn candidates(exec: &Exec, root: &Path, study_dir: &Path, p: &Prepared) -> Result<Vec<RrQemu>> {
    let replay = setup(p, study_dir)?;
    let min = parse_version(&format!("version {}", replay.min_qemu)).with_context(|| {
        format!(
            "study/arch/{}.toml: min-qemu {:?}",
            p.arch.name, replay.min_qemu
        )
    })?;
    let mut binaries = Vec::new();
    if let Some(path) = which(&p.arch.qemu()?.binary) {
        binaries.push(path.display().to_string());
    }
    let tools = host_tools::load(study_dir)?;
    if let Some(path) = tools
        .iter()
        .find(|t| t.name == replay.qemu_tool)
        .and_then(|t| t.find(root))
    {
        binaries.push(path.display().to_string());
    }
    Ok(binaries
        .into_iter()
        .filter_map(|binary| {
            let version = version_line(exec, &binary)?;
            let reverses = parse_version(&version).is_some_and(|v| v >= min);
            Some(RrQemu {
                binary,
                version,
                reverses,
            })
        })
        .collect())
}

/// The arch file's `[replay]`, or the one line saying there is none.
pub fn setup<'a>(p: &'a Prepared, study_dir: &Path) -> Result<&'a Replay> {
    p.arch.replay.as_ref().with_context(|| {
        format!(
            "record and replay are set up for {} (study/arch/{}.toml has no [replay] table{})",
            Arch::names_where(study_dir, |a| a.replay.is_some()).join(" and "),
            p.arch.name,
            match p.arch.qemu {
                None => ": UML runs no QEMU, whose record/replay this is",
                Some(_) => "",
            }
        )
    })
}

/// The QEMU `record` takes: the first that reverses, else the first found
/// (its recording replays, but reverse commands are refused).
pub fn pick_for_record(candidates: Vec<RrQemu>, p: &Prepared) -> Result<RrQemu> {
    let any = candidates.first().cloned();
    match candidates.into_iter().find(|q| q.reverses).or(any) {
        Some(q) => Ok(q),
        None => bail!(
            "record needs {}: run `cargo xtask setup --install`",
            p.arch.qemu()?.binary
        ),
    }
}

/// The QEMU that recorded `recorded` (its version line): the log format is
/// each version's own.
pub fn pick_for_replay(candidates: Vec<RrQemu>, recorded: &str) -> Result<RrQemu> {
    let found: Vec<String> = candidates.iter().map(|q| q.version.clone()).collect();
    candidates
        .into_iter()
        .find(|q| q.version == recorded)
        .with_context(|| {
            format!(
                "the recording was made by {recorded:?}, which this host lacks (it has {}): \
                 record it again",
                if found.is_empty() {
                    "no QEMU".to_string()
                } else {
                    found.join(", ")
                }
            )
        })
}

/// The one line a reverse command gets from a QEMU that cannot reverse.
pub fn no_reverse_line(qemu: &RrQemu, replay: &Replay) -> String {
    format!(
        "{} cannot run backwards (reverse execution needs QEMU {} or later): run `cargo xtask \
         setup --install`, then record again; `study-record` at a stop still reverses within \
         gdb's own recording",
        qemu.version, replay.min_qemu
    )
}

/// vmlinux's GNU build ID, in hex.
pub fn build_id(vmlinux: &Path) -> Result<String> {
    use object::Object;
    let data =
        std::fs::read(vmlinux).with_context(|| format!("cannot read {}", vmlinux.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF file", vmlinux.display()))?;
    let id = file
        .build_id()
        .ok()
        .flatten()
        .with_context(|| format!("{} has no GNU build ID note", vmlinux.display()))?;
    Ok(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// What init printed last as the command's status, on a console without a
/// status folder (QEMU cannot replay a 9p export): `study-init: exit
/// status N`.
pub fn exit_from_console(tail: &[String]) -> Option<i32> {
    tail.iter().rev().find_map(|l| {
        l.trim()
            .strip_prefix("study-init: exit status ")?
            .parse()
            .ok()
    })
}

/// A whole recording, checked against the build it is replayed on.
pub struct Recording {
    pub command: Vec<String>,
    pub exit: i32,
    pub qemu_version: String,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

impl Recording {
    /// The recording in `dir`; one line when it is missing, lacks a file,
    /// or was made on another vmlinux.
    pub fn load(p: &Prepared, dir: &Path) -> Result<Recording> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        if !dir.is_dir() {
            bail!(
                "no recording {name:?} in {}: make one with `cargo xtask record{} -- CMD`",
                dir.parent().unwrap_or(dir).display(),
                if name == DEFAULT_NAME {
                    String::new()
                } else {
                    format!(" --name {name}")
                }
            );
        }
        if let Some(missing) = FILES.iter().find(|f| !dir.join(f).is_file()) {
            bail!(
                "recording {name:?} lacks {}: record it again",
                dir.join(missing).display()
            );
        }
        let recorded = read(&dir.join(BUILD_ID))?.trim().to_string();
        let now = build_id(&p.build_dir.join("vmlinux"))?;
        if recorded != now {
            bail!(
                "recording {name:?} is of another vmlinux (build ID {recorded}, {} has {now}): \
                 record it again on this build",
                p.build_dir.join("vmlinux").display()
            );
        }
        let exit = read(&dir.join(EXIT))?;
        let exit = exit
            .trim()
            .parse()
            .with_context(|| format!("{}: not an exit status", dir.join(EXIT).display()))?;
        Ok(Recording {
            command: read(&dir.join(COMMAND))?
                .lines()
                .map(String::from)
                .collect(),
            exit,
            qemu_version: read(&dir.join(QEMU))?.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_exit_lines_are_read_from_qemu_and_init() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            Some((10, 0, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
            Some((7, 2, 22))
        );
        assert_eq!(parse_version("version 10.0"), Some((10, 0, 0)));
        assert_eq!(parse_version("qemu"), None);
        let tail: Vec<String> = [
            "hi",
            "study-init: exit status 3",
            "reboot: Restarting system",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(exit_from_console(&tail), Some(3));
        assert_eq!(exit_from_console(&tail[..1]), None);
    }

    #[test]
    fn the_qemu_arguments_name_the_recording_files() {
        let rr = Rr {
            mode: Mode::Replay,
            dir: "/b/tiny/.study/record/a,b".into(),
            qemu: RrQemu {
                binary: "qemu-system-x86_64".into(),
                version: "QEMU emulator version 10.0.2".into(),
                reverses: true,
            },
        };
        expect_test::expect![[r#"
            [
                "-icount",
                "shift=auto,rr=replay,rrfile=/b/tiny/.study/record/a,,b/replay.bin,rrsnapshot=init",
                "-drive",
                "file=/b/tiny/.study/record/a,,b/snapshots.qcow2,if=none,id=rr",
            ]
        "#]]
        .assert_debug_eq(&rr.qemu_args());
    }
}

//! drgn's command line for a build: which memory it reads (a live guest
//! over QMP, or a vmcore), the build's own symbols, and the study helpers
//! (study/drgn/) on its path.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::Cmd;

use crate::{ctx::Prepared, study::host_tools, util::exec::Exec};

/// The memory drgn reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    /// A running guest, through its QMP socket.
    Live(PathBuf),
    /// A vmcore, from `dump` or gdb's `study-dump`.
    Core(PathBuf),
}

/// What drgn does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// A Python prompt with the helpers imported.
    Interactive,
    /// `-e CODE`, with the helpers imported; the words are its `sys.argv[1:]`.
    Code(String, Vec<String>),
    /// A script and its arguments, the helpers among its globals.
    Script(Vec<String>),
}

/// The helpers' folder, put on drgn's Python path.
pub fn helpers_dir(study_dir: &Path) -> PathBuf {
    study_dir.join("drgn")
}

/// The drgn command for `p`'s build reading `memory`.
pub fn drgn_command<'a>(
    exec: &'a Exec,
    p: &Prepared,
    study_dir: &Path,
    memory: &Memory,
    work: &Work,
) -> Result<Cmd<'a>> {
    let drgn = host_tools::required_path(study_dir, "drgn", &p.arch.name, "drgn")?;
    let vmlinux = p.build_dir.join("vmlinux");
    if !vmlinux.is_file() {
        bail!(
            "{}: no vmlinux to read symbols from; run `cargo xtask build` first",
            vmlinux.display()
        );
    }
    if let Memory::Core(file) = memory {
        if !file.is_file() {
            bail!(
                "{}: no such vmcore; write one with `cargo xtask dump FILE -- CMD`, or \
                 `study-dump FILE` at a gdb stop",
                file.display()
            );
        }
    }
    let helpers = helpers_dir(study_dir);
    Ok(exec
        .sh()
        .cmd(drgn)
        .args(words(&vmlinux, &p.build_dir, &helpers, memory, work))
        .env("PYTHONPATH", &helpers))
}

/// drgn's arguments. The build directory is the only kernel directory:
/// the host's own /lib/modules describe another kernel.
fn words(
    vmlinux: &Path,
    build_dir: &Path,
    helpers: &Path,
    memory: &Memory,
    work: &Work,
) -> Vec<String> {
    let mut words = match memory {
        Memory::Live(socket) => vec!["--qemu".to_string(), socket.display().to_string()],
        Memory::Core(file) => vec!["--core".to_string(), file.display().to_string()],
    };
    words.extend([
        "--quiet".to_string(),
        "--no-default-kernel-directories".to_string(),
        "--kernel-directory".to_string(),
        build_dir.display().to_string(),
        "--symbols".to_string(),
        vmlinux.display().to_string(),
    ]);
    let session = helpers.join("session.py").display().to_string();
    match work {
        Work::Interactive => words.push(session),
        Work::Code(code, args) => {
            words.extend([session, "-e".to_string(), code.clone()]);
            words.extend(args.iter().cloned());
        }
        Work::Script(argv) => {
            words.push(session);
            words.extend(argv.iter().cloned());
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_code_and_core_script_words() {
        let live = words(
            Path::new("/b/vmlinux"),
            Path::new("/b"),
            Path::new("/r/study/drgn"),
            &Memory::Live("/b/.study/run/qmp-7".into()),
            &Work::Code("print(1)".into(), vec!["x".into()]),
        );
        assert_eq!(
            live.join(" "),
            "--qemu /b/.study/run/qmp-7 --quiet --no-default-kernel-directories \
             --kernel-directory /b --symbols /b/vmlinux /r/study/drgn/session.py -e print(1) x"
        );
        let core = words(
            Path::new("/b/vmlinux"),
            Path::new("/b"),
            Path::new("/r/study/drgn"),
            &Memory::Core("/t/vmcore".into()),
            &Work::Script(vec!["mine.py".into(), "--all".into()]),
        );
        assert_eq!(
            core.join(" "),
            "--core /t/vmcore --quiet --no-default-kernel-directories \
             --kernel-directory /b --symbols /b/vmlinux /r/study/drgn/session.py mine.py --all"
        );
    }
}

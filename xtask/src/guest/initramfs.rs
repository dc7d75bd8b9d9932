//! A busybox initramfs, for hosts where a 9p root is not possible: Debian's
//! static busybox with its applets, our init as /init, the guest programs,
//! and the job, packed with `cpio -H newc`.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use xshell::cmd;

use crate::{
    ctx::Prepared,
    guest::programs::guest_init,
    util::{exec::Exec, fsutil, supervise::TempPath},
};

const BUSYBOX: &str = "/bin/busybox";

/// Packs an initramfs holding `job` and `env` (init's job and environment
/// files) and returns its path, and its directory, removed when dropped.
pub fn build(exec: &Exec, p: &Prepared, job: &[u8], env: &[u8]) -> Result<(PathBuf, TempPath)> {
    if !Path::new(BUSYBOX).is_file() {
        bail!("--initramfs needs {BUSYBOX}: run `apt-get install busybox-static`");
    }
    // One directory a run: two runs at once must not pack each other's job.
    let dir = p
        .state_dir()
        .join(format!("initramfs/run-{}", std::process::id()));
    let guard = TempPath::new(dir.clone());
    let root = dir.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for sub in [
        "bin", "dev", "proc", "sys", "tmp", "run", "root", "var", "study",
    ] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    let applets = exec.query(cmd!(exec.sh(), "{BUSYBOX} --list"))?;
    for applet in String::from_utf8_lossy(&applets.stdout)
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        symlink("busybox", root.join("bin").join(applet))
            .with_context(|| format!("applet {applet}"))?;
    }
    std::fs::copy(guest_init(), root.join("init"))?;
    std::fs::copy(env!("STUDY_GUEST_TCP_ECHO"), root.join("bin/tcp-echo"))?;
    std::fs::write(root.join("study/job"), job)?;
    std::fs::write(root.join("study/env"), env)?;
    let cpio = dir.join("initramfs.cpio");
    // The file list, sorted, on cpio's stdin: no shell between them.
    let mut names: Vec<String> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let rel = e.path().strip_prefix(&root).ok()?.display().to_string();
            Some(if rel.is_empty() {
                ".".into()
            } else {
                format!("./{rel}")
            })
        })
        .collect();
    names.sort();
    let list = names.join("\n") + "\n";
    let sh = exec.sh();
    let _dir = sh.push_dir(&root);
    let archive =
        exec.capture_with_input(cmd!(sh, "cpio --quiet -o -H newc"), Some(list.into_bytes()))?;
    fsutil::write_if_changed(&cpio, &archive.stdout)?;
    std::fs::remove_dir_all(&root)?;
    Ok((cpio, guard))
}

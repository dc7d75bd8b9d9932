//! The kernel source tree: finding it, checking it, and filling it from a
//! release tarball (`cargo xtask kernel --tarball`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use xshell::cmd;

use crate::util::{
    exec::Exec,
    lock::{Access, FileLock, Wait},
    supervise::TempPath,
};

pub const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

#[derive(Debug, Clone)]
pub struct KernelTree {
    pub path: PathBuf,
    pub version: String,
}

impl KernelTree {
    /// Opens the tree at `path`, or says how to get one.
    pub fn open(path: &Path) -> Result<KernelTree> {
        KernelTree::open_given(path, false)
    }

    /// [`KernelTree::open`] of a path the user gave (`--kernel`): a
    /// directory that holds something else is their mistake, said in one
    /// line, not a checkout to fetch.
    pub fn open_given(path: &Path, explicit: bool) -> Result<KernelTree> {
        let makefile = path.join("Makefile");
        if !path.join("Kconfig").is_file() || !makefile.is_file() {
            let holds_files = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
            if explicit && holds_files {
                bail!(
                    "--kernel {}: no Linux tree there (no Kconfig and Makefile at its top); \
                     point --kernel at a kernel source tree",
                    path.display()
                );
            }
            bail!(
                "no kernel tree in {}: run `git submodule update --init --depth 1 kernel`, or \
                 `cargo xtask kernel --tarball {DEBIAN_TARBALL}` (apt-get install linux-source-6.12)",
                path.display()
            );
        }
        let text = std::fs::read_to_string(&makefile)
            .with_context(|| format!("cannot read {}", makefile.display()))?;
        let version = version_from_makefile(&text).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no VERSION/PATCHLEVEL lines; is this a Linux tree?",
                makefile.display()
            )
        })?;
        let path = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        Ok(KernelTree { path, version })
    }

    /// `6.12` from `6.12.117`: the key for version-specific data.
    pub fn series(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// `6.12.117` from the top Makefile's VERSION, PATCHLEVEL, SUBLEVEL and
/// EXTRAVERSION lines.
pub fn version_from_makefile(text: &str) -> Option<String> {
    let field = |name: &str| {
        text.lines().take(20).find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let version = field("VERSION")?;
    let patchlevel = field("PATCHLEVEL")?;
    let sublevel = field("SUBLEVEL").unwrap_or_default();
    let extra = field("EXTRAVERSION").unwrap_or_default();
    let mut out = format!("{version}.{patchlevel}");
    if !sublevel.is_empty() && sublevel != "0" {
        out.push_str(&format!(".{sublevel}"));
    }
    out.push_str(&extra);
    Some(out)
}

/// Unpacks `tarball` into `dest` (absent or empty) through a temporary
/// sibling directory, so a failed or killed unpack leaves nothing
/// half-written. A lock beside `dest` keeps two unpacks apart: the second
/// waits (or, with `wait` = refuse, fails) and then finds the tree there.
pub fn unpack(exec: &Exec, tarball: &Path, dest: &Path, wait: Wait) -> Result<()> {
    let lock = if exec.dry_run {
        None
    } else {
        let name = dest.file_name().context("destination has no name")?;
        let path = dest.with_file_name(format!(".{}.lock", name.to_string_lossy()));
        let what = format!("kernel tree {}", dest.display());
        Some(FileLock::acquire(&path, &what, Access::Exclusive, wait)?)
    };
    let result = unpack_locked(exec, tarball, dest);
    if let Some(lock) = lock {
        lock.remove_file();
    }
    result
}

fn unpack_locked(exec: &Exec, tarball: &Path, dest: &Path) -> Result<()> {
    if KernelTree::open(dest).is_ok() {
        // Another command unpacked it while this one waited.
        return Ok(());
    }
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!(
            "{} is not empty and holds no kernel tree; move it away first",
            dest.display()
        );
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .context("destination has no name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.unpacking"));
    let not_a_kernel = |why: &str| {
        anyhow::anyhow!(
            "{} {why}: give a Linux release tarball, e.g. {DEBIAN_TARBALL}",
            tarball.display()
        )
    };
    let cmd = cmd!(exec.sh(), "tar -xf {tarball} -C {tmp} --strip-components=1");
    if exec.dry_run {
        exec.show(cmd);
        eprintln!("# would move {} to {}", tmp.display(), dest.display());
        return Ok(());
    }
    // Removed on every way out but the rename, a signal included.
    let _tmp = TempPath::new(tmp.clone());
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let out = exec.output(cmd)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("tar failed")
            .trim();
        return Err(not_a_kernel(&format!("cannot be unpacked ({why})")));
    }
    if KernelTree::open(&tmp).is_err() {
        return Err(not_a_kernel(
            "holds no Linux tree (no Kconfig and Makefile at its top)",
        ));
    }
    if dest.exists() {
        std::fs::remove_dir(dest)?;
    }
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("cannot move the tree to {}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let text =
            "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = x\n";
        assert_eq!(version_from_makefile(text).as_deref(), Some("6.12.117"));
        let text = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n";
        assert_eq!(version_from_makefile(text).as_deref(), Some("6.12-rc3"));
        assert_eq!(version_from_makefile("all:\n"), None);
    }

    #[test]
    fn a_given_directory_that_is_no_kernel_is_one_line() {
        let dir = std::env::temp_dir().join(format!("not-a-kernel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README"), "hello").unwrap();
        let err = KernelTree::open_given(&dir, true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--kernel {}: no Linux tree there (no Kconfig and Makefile at its top); \
                 point --kernel at a kernel source tree",
                dir.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_tree_says_how_to_get_one() {
        let err = KernelTree::open(Path::new("/nonexistent/kernel"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "no kernel tree in /nonexistent/kernel: run `git submodule update --init --depth 1 kernel`, \
             or `cargo xtask kernel --tarball /usr/src/linux-source-6.12.tar.xz` (apt-get install linux-source-6.12)"
        );
    }
}

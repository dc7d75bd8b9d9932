//! The kernel source tree: finding it, checking it, and filling it from a
//! release tarball (`cargo xtask kernel --tarball`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use xshell::cmd;

use crate::util::exec::Exec;

pub const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

#[derive(Debug, Clone)]
pub struct KernelTree {
    pub path: PathBuf,
    pub version: String,
}

impl KernelTree {
    /// Opens the tree at `path`, or says how to get one.
    pub fn open(path: &Path) -> Result<KernelTree> {
        let makefile = path.join("Makefile");
        if !path.join("Kconfig").is_file() || !makefile.is_file() {
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
/// sibling directory, so a failed unpack leaves nothing half-written.
pub fn unpack(exec: &Exec, tarball: &Path, dest: &Path) -> Result<()> {
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
    if !exec.dry_run {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
    }
    let cmd = cmd!(exec.sh(), "tar -xf {tarball} -C {tmp} --strip-components=1");
    if let Err(e) = exec.run(cmd) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if exec.dry_run {
        eprintln!("# would move {} to {}", tmp.display(), dest.display());
        return Ok(());
    }
    if let Err(e) = KernelTree::open(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("{} does not hold a kernel tree: {e}", tarball.display());
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

//! Writing generated files atomically, and only when their content changes,
//! so that a rerun leaves mtimes alone and Kbuild rebuilds nothing.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// Writes `contents` to `path` through a temporary file and a rename, unless
/// `path` already holds exactly `contents`. Returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    write_with_mode(path, contents, None)
}

/// Copies `from` to `to` with [`write_if_changed`], and `from`'s mode with
/// it: an executable (a guest program, busybox, init) stays one.
pub fn copy_if_changed(from: &Path, to: &Path) -> Result<bool> {
    let contents =
        std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mode = std::fs::metadata(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .permissions();
    write_with_mode(to, &contents, Some(mode))
}

fn write_with_mode(
    path: &Path,
    contents: &[u8],
    mode: Option<std::fs::Permissions>,
) -> Result<bool> {
    let same_mode = |p: &Path| {
        mode.as_ref()
            .is_none_or(|m| std::fs::metadata(p).is_ok_and(|meta| meta.permissions() == *m))
    };
    if std::fs::read(path).is_ok_and(|old| old == contents) && same_mode(path) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = temp_sibling(path);
    let result = (|| -> Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        if let Some(mode) = &mode {
            file.set_permissions(mode.clone())?;
        }
        file.sync_data()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// A file name that stands for `path` (every character but letters and
/// digits as `_`): for caches and locks under target/ keyed by a path.
pub fn name_for(path: &Path) -> String {
    path.display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_on_change_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("fsutil-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/file.txt");

        assert!(write_if_changed(&path, b"one").unwrap());
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));

        assert!(!write_if_changed(&path, b"one").unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

        assert!(write_if_changed(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.txt")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

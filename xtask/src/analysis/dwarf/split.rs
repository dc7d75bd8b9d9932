//! Where a skeleton unit's `.dwo` file is.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The `.dwo` file a skeleton unit of `object` names: `dwo_name` under the
/// unit's compilation directory, as the compiler wrote it; else beside
/// `object`, for a build directory that was moved or copied (Kbuild's
/// compiler writes each object's `.dwo` beside it).
pub(super) fn dwo_path(object: &Path, comp_dir: Option<&str>, dwo_name: &str) -> Result<PathBuf> {
    let as_written = Path::new(comp_dir.unwrap_or("")).join(dwo_name);
    if as_written.is_file() {
        return Ok(as_written);
    }
    if let (Some(dir), Some(name)) = (object.parent(), Path::new(dwo_name).file_name()) {
        let beside = dir.join(name);
        if beside.is_file() {
            return Ok(beside);
        }
    }
    bail!(
        "{}: its DWARF is in the split DWARF file {} (-gsplit-dwarf), which is missing; \
         rebuild the object to write it again",
        object.display(),
        as_written.display()
    )
}

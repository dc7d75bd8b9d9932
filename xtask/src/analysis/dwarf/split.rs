//! Where a skeleton unit's `.dwo` file is.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The `.dwo` file a skeleton unit of `object` (an object or vmlinux) names:
/// `dwo_name` under the unit's compilation directory, as the compiler wrote
/// it; else, for a build directory that was moved or copied, under
/// `object`'s directory (vmlinux at the top of the build directory, whose
/// units name `net/ipv4/tcp.dwo`) or beside `object` (Kbuild's compiler
/// writes each object's `.dwo` beside it).
pub(crate) fn dwo_path(object: &Path, comp_dir: Option<&str>, dwo_name: &str) -> Result<PathBuf> {
    let as_written = Path::new(comp_dir.unwrap_or("")).join(dwo_name);
    if as_written.is_file() {
        return Ok(as_written);
    }
    let dir = object.parent().unwrap_or(Path::new(""));
    let moved = [
        Some(dir.join(dwo_name)),
        Path::new(dwo_name).file_name().map(|name| dir.join(name)),
    ];
    if let Some(found) = moved.into_iter().flatten().find(|path| path.is_file()) {
        return Ok(found);
    }
    bail!(
        "{}: its DWARF is in the split DWARF file {} (-gsplit-dwarf), which is missing; \
         rebuild the object to write it again",
        object.display(),
        as_written.display()
    )
}

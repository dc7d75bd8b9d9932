//! Where a skeleton unit's `.dwo` file is, and the ones an object's units name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The `.dwo` file a skeleton unit of `object` (an object or vmlinux) names:
/// `dwo_name` under the unit's compilation directory, as the compiler wrote
/// it, a relative one (`.`, study.mk's map for split DWARF) read from
/// `object`'s directory, as gdb and libdw read it, never from ours; else,
/// for a build directory that was moved or copied, under `object`'s
/// directory (vmlinux at the top of the build directory, whose units name
/// `net/ipv4/tcp.dwo`) or beside `object` (Kbuild's compiler writes each
/// object's `.dwo` beside it).
pub(crate) fn dwo_path(object: &Path, comp_dir: Option<&str>, dwo_name: &str) -> Result<PathBuf> {
    let dir = object.parent().unwrap_or(Path::new(""));
    let as_written = dir.join(comp_dir.unwrap_or("")).join(dwo_name);
    let moved = [
        Some(dir.join(dwo_name)),
        Path::new(dwo_name).file_name().map(|name| dir.join(name)),
    ];
    let candidates = std::iter::once(Some(as_written.clone())).chain(moved);
    if let Some(found) = candidates.flatten().find(|path| path.is_file()) {
        return Ok(found);
    }
    bail!(
        "{}: its DWARF is in the split DWARF file {} (-gsplit-dwarf), which is missing; \
         rebuild the object to write it again",
        object.display(),
        as_written.display()
    )
}

/// The split DWARF files the skeleton units of the object at `path` name,
/// in unit order, found as [`dwo_path`] finds them; none for an
/// object whose DWARF is its own.
pub(crate) fn split_files(path: &Path) -> Result<Vec<PathBuf>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF object file", path.display()))?;
    let mut out = Vec::new();
    super::each_unit(&file, gimli::DwarfFileType::Main, &mut |unit| {
        if let Some(dwo_name) = &unit.root.dwo_name {
            out.push(dwo_path(path, unit.root.comp_dir.as_deref(), dwo_name)?);
        }
        Ok(())
    })
    .with_context(|| format!("cannot read the DWARF of {}", path.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative comp_dir is the object's directory's, whatever ours is.
    #[test]
    fn a_relative_comp_dir_is_read_from_the_objects_directory() {
        let dir = crate::analysis::dwarf::tests::scratch_dir("dwo-path");
        std::fs::create_dir_all(dir.join("sub/net")).unwrap();
        std::fs::write(dir.join("sub/net/t.dwo"), "").unwrap();
        let vmlinux = dir.join("vmlinux");
        assert_eq!(
            dwo_path(&vmlinux, Some("sub"), "net/t.dwo").unwrap(),
            dir.join("sub/net/t.dwo")
        );
        assert_eq!(
            dwo_path(&vmlinux, Some("."), "sub/net/t.dwo").unwrap(),
            dir.join("./sub/net/t.dwo")
        );
        let error = dwo_path(&vmlinux, Some("elsewhere"), "net/t.dwo").unwrap_err();
        assert!(error.to_string().contains("elsewhere/net/t.dwo"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

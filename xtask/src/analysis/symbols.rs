//! Where a function's code comes from: System.map's text symbols, and the
//! source file of each function from vmlinux's DWARF (`dwarf::lines`,
//! which reads a split DWARF build's `.dwo` files too).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use anyhow::{Context, Result};

use crate::{
    analysis::dwarf::lines::{tree_relative, SourceLines, Store},
    ctx::Prepared,
    util::fsutil,
};

/// Function name → tree-relative source file, through System.map and
/// vmlinux's DWARF.
pub fn source_files(p: &Prepared, names: &[String]) -> Result<HashMap<String, String>> {
    let map = fsutil::read_to_string(&p.build_dir.join("System.map"))?;
    files_of(&p.build_dir.join("vmlinux"), &map, &p.tree.path, names)
}

fn files_of(
    vmlinux: &Path,
    map: &str,
    tree: &Path,
    names: &[String],
) -> Result<HashMap<String, String>> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let symbols = text_symbols(map);
    // The middle of each function, not its first address: where an entry
    // starts with ftrace's patchable NOPs (arm64), the line table gives
    // those the row before, another function's.
    let mut middles = Vec::new();
    for (i, (addr, name)) in symbols.iter().enumerate() {
        if !wanted.contains(name) || middles.iter().any(|(n, _)| n == name) {
            continue;
        }
        let next = symbols.get(i + 1).map_or(*addr, |(a, _)| *a);
        middles.push((*name, addr + next.saturating_sub(*addr) / 2));
    }
    let mut out = HashMap::new();
    if middles.is_empty() {
        return Ok(out);
    }
    let data =
        std::fs::read(vmlinux).with_context(|| format!("cannot read {}", vmlinux.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{}: not an ELF file", vmlinux.display()))?;
    let store = Store::new();
    let lines = SourceLines::new(vmlinux, &file, &store)?;
    let prefix = format!("{}/", tree.display());
    for (name, middle) in middles {
        if let Some(file) = lines.own_file(middle)? {
            out.insert(name.to_string(), tree_relative(&file, &prefix));
        }
    }
    Ok(out)
}

/// System.map's text symbols, sorted by address.
fn text_symbols(map: &str) -> Vec<(u64, &str)> {
    let mut symbols: Vec<(u64, &str)> = map
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (addr, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "t" | "T" | "W" | "w")
                .then(|| Some((u64::from_str_radix(addr, 16).ok()?, name)))?
        })
        .collect();
    symbols.sort();
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dwarf::lines::tests::split_program;

    #[test]
    fn text_symbols_are_sorted_by_address() {
        let map = "ffff800080364d18 T loopback_xmit\nffff800080010000 t _stext\nffff800080364d00 D data\n";
        assert_eq!(
            text_symbols(map),
            [
                (0xffff800080010000, "_stext"),
                (0xffff800080364d18, "loopback_xmit")
            ]
        );
    }

    /// On a split DWARF program, where binutils' addr2line answers `??`:
    /// `outer`'s own file, though its code is all a header's inlined
    /// function.
    #[test]
    fn each_function_gets_its_own_file() {
        let (program, dir) = split_program("symbols", "-gdwarf-5");
        let nm = std::process::Command::new("nm")
            .arg("-n")
            .arg(&program)
            .output()
            .expect("nm runs");
        let map = String::from_utf8(nm.stdout).unwrap();
        let names = ["outer", "_start", "absent"].map(String::from);
        let files = files_of(&program, &map, &dir, &names).unwrap();
        assert_eq!(files.get("outer").map(String::as_str), Some("outer.c"));
        assert_eq!(files.get("_start").map(String::as_str), Some("outer.c"));
        assert_eq!(files.len(), 2, "{files:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

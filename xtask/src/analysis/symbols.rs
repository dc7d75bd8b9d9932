//! Where a function's code comes from: System.map's text symbols, and the
//! source file of each function through `addr2line` on vmlinux's DWARF.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use xshell::cmd;

use crate::{
    ctx::Prepared,
    util::{exec::Exec, fsutil},
};

/// Function name → tree-relative source file, through System.map and
/// `addr2line` on vmlinux's DWARF.
pub fn source_files(
    exec: &Exec,
    p: &Prepared,
    names: &[String],
) -> Result<HashMap<String, String>> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let map = fsutil::read_to_string(&p.build_dir.join("System.map"))?;
    let symbols = text_symbols(&map);
    // The middle of each function, not its first address: where an entry
    // starts with ftrace's patchable NOPs (arm64), the line table gives
    // those the row before, another function's.
    let mut addresses = Vec::new();
    let mut order = Vec::new();
    for (i, (addr, name)) in symbols.iter().enumerate() {
        if !wanted.contains(name) || order.contains(&name.to_string()) {
            continue;
        }
        let next = symbols.get(i + 1).map_or(*addr, |(a, _)| *a);
        addresses.push(format!("{:#x}", addr + next.saturating_sub(*addr) / 2));
        order.push(name.to_string());
    }
    let mut out = HashMap::new();
    if addresses.is_empty() {
        return Ok(out);
    }
    let vmlinux = p.build_dir.join("vmlinux");
    let addr2line = p.arch.binutil("addr2line")?;
    let output = exec.query(cmd!(
        exec.sh(),
        "{addr2line} -a -i -e {vmlinux} {addresses...}"
    ))?;
    let prefix = format!("{}/", p.tree.path.display());
    for (name, file) in order
        .into_iter()
        .zip(outermost_files(&String::from_utf8_lossy(&output.stdout)))
    {
        let rel = file
            .strip_prefix(&prefix)
            .unwrap_or(&file)
            .trim_start_matches("./");
        out.insert(name, rel.to_string());
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

/// `addr2line -a -i`'s answer, one file per address: the outermost frame's
/// (the last line of each block), the function's own, not that of a
/// function inlined into it.
fn outermost_files(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("0x") {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            *last = line.split(':').next().unwrap_or("").to_string();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_outermost_frames_file() {
        let answer = "0xffff800080364d18\n/l/include/net/dst.h:335\n/l/drivers/net/loopback.c:80 (discriminator 1)\n\
                      0xffff80008054cd88\n/l/net/ipv4/tcp.c:1350\n";
        assert_eq!(
            outermost_files(answer),
            ["/l/drivers/net/loopback.c", "/l/net/ipv4/tcp.c"]
        );
        let map = "ffff800080364d18 T loopback_xmit\nffff800080010000 t _stext\nffff800080364d00 D data\n";
        assert_eq!(
            text_symbols(map),
            [
                (0xffff800080010000, "_stext"),
                (0xffff800080364d18, "loopback_xmit")
            ]
        );
    }
}

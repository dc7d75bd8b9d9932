//! The static call graph of a linked kernel, read from vmlinux itself: its
//! function symbols, the call instructions in each function's code (x86_64
//! and um decoded with iced-x86, arm64's fixed-width `bl`/`blr` by mask),
//! each call site's file:line from the DWARF line table, and whether ftrace
//! can trace the function (an entry in `__mcount_loc`). Kept per build
//! directory, and made again only when vmlinux changes.

use std::{borrow::Cow, collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::callgraph::decode::{decode_calls, Isa, RawCall},
    study::callgraph_rules::CallgraphRules,
};

/// Bumped when the index's layout or what goes into it changes (a decoder
/// that reads more calls): an older file is made again.
const FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    format: u32,
    /// vmlinux's size and modification time when the index was made.
    pub key: String,
    /// Tree-relative source files, shared by index.
    pub files: Vec<String>,
    pub functions: Vec<Function>,
    /// Call sites the rules left out, by callee: `__fentry__` and the like.
    pub ignored: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// Its own source file (the outermost frame at its entry).
    pub file: Option<u32>,
    /// ftrace can trace it: it has an entry in `__mcount_loc`. `inline`
    /// implies `notrace` in the kernel, so an out-of-line `static inline`
    /// helper (at -O0) is a real call that function_graph never shows.
    pub traceable: bool,
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub site: u64,
    pub file: Option<u32>,
    pub line: u32,
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A call of the function with this index.
    Direct(u32),
    /// A jump to the start of another function: a tail call.
    Tail(u32),
    /// Through a register or memory (or a retpoline thunk).
    Indirect,
}

impl Index {
    /// The key an index made from `vmlinux` now carries.
    pub fn key_of(vmlinux: &Path) -> Result<String> {
        let meta = vmlinux
            .metadata()
            .with_context(|| format!("cannot read {}", vmlinux.display()))?;
        let mtime = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(format!("{} {}", meta.len(), mtime.as_nanos()))
    }

    /// An index of these functions, for tests of what reads one.
    #[cfg(test)]
    pub fn of(files: Vec<String>, functions: Vec<Function>) -> Index {
        Index {
            format: FORMAT,
            key: String::new(),
            files,
            functions,
            ignored: BTreeMap::new(),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Index> {
        let index: Index = bincode::deserialize(bytes).ok()?;
        (index.format == FORMAT).then_some(index)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serialize(self).expect("plain data serializes")
    }

    pub fn file(&self, id: Option<u32>) -> &str {
        id.map_or("?", |i| self.files[i as usize].as_str())
    }

    /// Reads `vmlinux` (of the tree at `tree`, for the tree-relative paths).
    pub fn build(vmlinux: &Path, tree: &Path, rules: &CallgraphRules) -> Result<Index> {
        let key = Index::key_of(vmlinux)?;
        let data =
            std::fs::read(vmlinux).with_context(|| format!("cannot read {}", vmlinux.display()))?;
        let file = object::File::parse(&*data)
            .with_context(|| format!("{}: not an ELF file", vmlinux.display()))?;
        let isa = match file.architecture() {
            object::Architecture::X86_64 => Isa::X86_64,
            object::Architecture::Aarch64 => Isa::Aarch64,
            other => bail!("{}: no call decoder for {other:?}", vmlinux.display()),
        };
        let mut functions = function_symbols(&file);
        let traceable = mcount_sites(&file)?;
        for f in &mut functions {
            let at = traceable.partition_point(|&a| a < f.addr);
            f.traceable = traceable.get(at).is_some_and(|&a| a < f.addr + f.size);
        }
        let starts: Vec<u64> = functions.iter().map(|f| f.addr).collect();
        let by_start = |addr: u64| starts.binary_search(&addr).ok().map(|i| i as u32);

        let dwarf = load_dwarf(&file)?;
        let lines = addr2line::Context::from_dwarf(dwarf)
            .with_context(|| format!("{}: cannot read its DWARF", vmlinux.display()))?;
        let mut files = Files::new(tree);
        let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
        let sections = code_sections(&file);
        for i in 0..functions.len() {
            let (addr, size) = (functions[i].addr, functions[i].size);
            let Some(code) = code_of(&sections, addr, size) else {
                continue;
            };
            functions[i].file = own_file(&lines, addr, &mut files);
            let mut calls = Vec::new();
            for raw in decode_calls(isa, addr, code) {
                let target = match raw {
                    RawCall::Indirect { .. } => Target::Indirect,
                    RawCall::Direct { target, .. } | RawCall::Jump { target, .. } => {
                        let Some(callee) = by_start(target) else {
                            // Into the middle of a function, or a jump
                            // inside this one: not a call of a function.
                            continue;
                        };
                        if callee as usize == i && matches!(raw, RawCall::Jump { .. }) {
                            continue;
                        }
                        let name = &functions[callee as usize].name;
                        if rules.ignores(name) {
                            *ignored.entry(name.clone()).or_default() += 1;
                            continue;
                        }
                        match raw {
                            _ if rules.is_thunk(name) => Target::Indirect,
                            RawCall::Jump { .. } => Target::Tail(callee),
                            _ => Target::Direct(callee),
                        }
                    }
                };
                let site = raw.site();
                let (file, line) = match lines.find_location(site) {
                    Ok(Some(loc)) => (loc.file.map(|f| files.id(f)), loc.line.unwrap_or(0)),
                    _ => (None, 0),
                };
                calls.push(Call {
                    site,
                    file,
                    line,
                    target,
                });
            }
            functions[i].calls = calls;
        }
        Ok(Index {
            format: FORMAT,
            key,
            files: files.names,
            functions,
            ignored,
        })
    }
}

/// Every function symbol with a size, sorted by address; of aliases at one
/// address (`__pfx_` padding aside), the first name.
fn function_symbols(file: &object::File) -> Vec<Function> {
    let mut out: Vec<Function> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            (!name.starts_with("__pfx_") && !name.starts_with("__cfi_")).then(|| Function {
                name: name.to_string(),
                addr: s.address(),
                size: s.size(),
                file: None,
                traceable: false,
                calls: Vec::new(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.addr.cmp(&b.addr).then(a.name.cmp(&b.name)));
    out.dedup_by_key(|f| f.addr);
    out
}

/// The addresses ftrace may patch, sorted: the `__mcount_loc` table
/// between its two linker symbols. Where the kernel is linked without
/// applying its relative relocations (arm64), a slot holds zero and its
/// value is the relocation's addend.
fn mcount_sites(file: &object::File) -> Result<Vec<u64>> {
    let symbol = |name: &str| file.symbols().find(|s| s.name() == Ok(name));
    let (Some(start), Some(stop)) = (symbol("__start_mcount_loc"), symbol("__stop_mcount_loc"))
    else {
        // No ftrace in this kernel (um): nothing is traceable.
        return Ok(Vec::new());
    };
    let (start, stop) = (start.address(), stop.address());
    let Some(section) = file
        .sections()
        .find(|s| s.address() <= start && stop <= s.address() + s.size())
    else {
        return Ok(Vec::new());
    };
    let data = section.uncompressed_data()?;
    let from = (start - section.address()) as usize;
    let to = (stop - section.address()) as usize;
    let mut addends = BTreeMap::new();
    if let Some(relocations) = file.dynamic_relocations() {
        for (offset, r) in relocations {
            if (start..stop).contains(&offset) {
                addends.insert(offset, r.addend() as u64);
            }
        }
    }
    let little = file.is_little_endian();
    let mut sites: Vec<u64> = data[from..to.min(data.len())]
        .chunks_exact(8)
        .enumerate()
        .map(|(i, word)| {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            let value = if little {
                u64::from_le_bytes(word)
            } else {
                u64::from_be_bytes(word)
            };
            if value == 0 {
                addends.get(&(start + 8 * i as u64)).copied().unwrap_or(0)
            } else {
                value
            }
        })
        .filter(|&a| a != 0)
        .collect();
    sites.sort_unstable();
    Ok(sites)
}

/// The executable sections' addresses and bytes.
fn code_sections<'a>(file: &'a object::File) -> Vec<(u64, Cow<'a, [u8]>)> {
    file.sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
        .filter_map(|s| Some((s.address(), s.uncompressed_data().ok()?)))
        .collect()
}

fn code_of<'a>(sections: &'a [(u64, Cow<[u8]>)], addr: u64, size: u64) -> Option<&'a [u8]> {
    sections.iter().find_map(|(start, data)| {
        let from = addr.checked_sub(*start)? as usize;
        data.get(from..from + size as usize)
    })
}

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

fn load_dwarf<'a>(file: &'a object::File<'a>) -> Result<gimli::Dwarf<Reader<'a>>> {
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    // Decompressed sections must outlive the Dwarf that borrows them.
    let mut owned: Vec<(gimli::SectionId, &'a [u8])> = Vec::new();
    for id in [
        gimli::SectionId::DebugAbbrev,
        gimli::SectionId::DebugAddr,
        gimli::SectionId::DebugAranges,
        gimli::SectionId::DebugInfo,
        gimli::SectionId::DebugLine,
        gimli::SectionId::DebugLineStr,
        gimli::SectionId::DebugRanges,
        gimli::SectionId::DebugRngLists,
        gimli::SectionId::DebugStr,
        gimli::SectionId::DebugStrOffsets,
    ] {
        if let Some(section) = file.section_by_name(id.name()) {
            let data: &'a [u8] = match section.uncompressed_data()? {
                Cow::Borrowed(b) => b,
                Cow::Owned(v) => Box::leak(v.into_boxed_slice()),
            };
            owned.push((id, data));
        }
    }
    let data_of = |id: gimli::SectionId| -> Result<Reader<'a>, gimli::Error> {
        let data = owned
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(&[][..], |(_, d)| d);
        Ok(gimli::EndianSlice::new(data, endian))
    };
    Ok(gimli::Dwarf::load(data_of)?)
}

/// The function's own source file: the outermost frame's at its entry (the
/// line table there may already be in an inlined header's code).
fn own_file(lines: &addr2line::Context<Reader>, addr: u64, files: &mut Files) -> Option<u32> {
    let mut frames = lines.find_frames(addr).skip_all_loads().ok()?;
    let mut outermost = None;
    while let Ok(Some(frame)) = frames.next() {
        if let Some(file) = frame.location.and_then(|l| l.file) {
            outermost = Some(file.to_string());
        }
    }
    let file = match outermost {
        Some(file) => file,
        None => lines.find_location(addr).ok()??.file?.to_string(),
    };
    Some(files.id(&file))
}

/// Source paths, tree-relative, each stored once.
struct Files {
    prefix: String,
    names: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
}

impl Files {
    fn new(tree: &Path) -> Files {
        Files {
            prefix: format!("{}/", tree.display()),
            names: Vec::new(),
            ids: Default::default(),
        }
    }

    fn id(&mut self, path: &str) -> u32 {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        let name = tree_relative(path, &self.prefix);
        let id = self.names.len() as u32;
        self.names.push(name);
        self.ids.insert(path.to_string(), id);
        id
    }
}

/// `net/ipv4/tcp.c` for `/k/net/ipv4/tcp.c`, `./net/ipv4/tcp.c` or a
/// path through the build directory (`/b/../k/net/...`).
fn tree_relative(path: &str, tree_prefix: &str) -> String {
    let path = path.strip_prefix(tree_prefix).unwrap_or(path);
    let mut path = path.trim_start_matches("./");
    while let Some(rest) = path.strip_prefix("../") {
        path = rest;
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_tree_relative() {
        assert_eq!(tree_relative("/k/net/ipv4/tcp.c", "/k/"), "net/ipv4/tcp.c");
        assert_eq!(
            tree_relative("./include/net/sock.h", "/k/"),
            "include/net/sock.h"
        );
        assert_eq!(tree_relative("/other/x.c", "/k/"), "/other/x.c");
    }
}

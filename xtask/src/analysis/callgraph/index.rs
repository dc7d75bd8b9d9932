//! The static call graph of a linked kernel, read from vmlinux itself: its
//! function symbols, the call instructions in each function's code (x86_64
//! and um decoded with iced-x86, arm64's fixed-width `bl`/`blr` by mask),
//! each call site's file:line from the DWARF line table, and whether ftrace
//! can trace the function (an entry in `__mcount_loc`). Kept per build
//! directory, and made again only when vmlinux changes.

use std::{borrow::Cow, collections::BTreeMap, path::Path};

use addr2line::LookupContinuation;
use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        callgraph::decode::{decode_calls, Isa, RawCall},
        dwarf::split,
    },
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

        let store = Store::new();
        let dwarf = Dwarf::new(vmlinux, &file, &store)?;
        let mut files = Files::new(tree);
        let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
        let sections = code_sections(&file);
        for i in 0..functions.len() {
            let (addr, size) = (functions[i].addr, functions[i].size);
            let Some(code) = code_of(&sections, addr, size) else {
                continue;
            };
            functions[i].file = dwarf.own_file(addr, &mut files)?;
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
                let (file, line) = match dwarf.lines.find_location(site) {
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

/// Section data the DWARF borrows: decompressed sections, and the split
/// DWARF files read on demand.
type Store = typed_arena::Arena<Vec<u8>>;

fn endian_of(file: &object::File) -> gimli::RunTimeEndian {
    if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    }
}

/// The DWARF sections of `file`, by the names `name` gives them (a `.dwo`
/// file's are `.debug_info.dwo` and so on).
fn load_dwarf<'a>(
    file: &object::File<'a>,
    name: impl Fn(gimli::SectionId) -> Option<&'static str>,
    store: &'a Store,
) -> Result<gimli::Dwarf<Reader<'a>>> {
    let endian = endian_of(file);
    gimli::Dwarf::load(|id| -> Result<Reader<'a>> {
        let data: &'a [u8] = match name(id).and_then(|name| file.section_by_name(name)) {
            Some(section) => match section.uncompressed_data()? {
                Cow::Borrowed(data) => data,
                Cow::Owned(data) => store.alloc(data),
            },
            None => &[],
        };
        Ok(gimli::EndianSlice::new(data, endian))
    })
}

/// vmlinux's DWARF, with the `.dwo` files of a split DWARF build
/// (`CONFIG_DEBUG_INFO_SPLIT`) read when a lookup needs one: the line
/// tables stay in vmlinux, the inlining and the functions move out.
struct Dwarf<'a> {
    vmlinux: &'a Path,
    lines: addr2line::Context<Reader<'a>>,
    store: &'a Store,
}

impl<'a> Dwarf<'a> {
    fn new(vmlinux: &'a Path, file: &object::File<'a>, store: &'a Store) -> Result<Dwarf<'a>> {
        let dwarf = load_dwarf(file, |id| Some(id.name()), store)?;
        let lines = addr2line::Context::from_dwarf(dwarf)
            .with_context(|| format!("{}: cannot read its DWARF", vmlinux.display()))?;
        Ok(Dwarf {
            vmlinux,
            lines,
            store,
        })
    }

    fn frames(&self, addr: u64) -> Result<addr2line::FrameIter<'_, Reader<'a>>> {
        let mut lookup = self.lines.find_frames(addr);
        loop {
            match lookup {
                addr2line::LookupResult::Output(frames) => return Ok(frames?),
                addr2line::LookupResult::Load { load, continuation } => {
                    lookup = continuation.resume(Some(self.load_dwo(&load)?));
                }
            }
        }
    }

    fn load_dwo(
        &self,
        load: &addr2line::SplitDwarfLoad<Reader<'a>>,
    ) -> Result<std::sync::Arc<gimli::Dwarf<Reader<'a>>>> {
        let text =
            |r: &Option<Reader<'a>>| r.map(|r| String::from_utf8_lossy(r.slice()).into_owned());
        let name = text(&load.path).unwrap_or_default();
        let path = split::dwo_path(self.vmlinux, text(&load.comp_dir).as_deref(), &name)?;
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let data: &'a [u8] = self.store.alloc(data);
        let file = object::File::parse(data)
            .with_context(|| format!("{}: not an ELF file", path.display()))?;
        let mut dwo = load_dwarf(&file, |id| id.dwo_name(), self.store)?;
        let header = dwo.units().next()?;
        let dwo_id = match header {
            Some(header) => dwo.unit(header)?.dwo_id,
            None => None,
        };
        if dwo_id != Some(load.dwo_id) {
            bail!(
                "{}: not the split DWARF of {} that {} was linked with (its dwo_id differs); \
                 rebuild to write it again",
                path.display(),
                name,
                self.vmlinux.display()
            );
        }
        dwo.make_dwo(&load.parent);
        Ok(std::sync::Arc::new(dwo))
    }

    /// The function's own source file: the outermost frame's at its entry
    /// (the line table there may already be in an inlined header's code).
    fn own_file(&self, addr: u64, files: &mut Files) -> Result<Option<u32>> {
        let mut frames = self.frames(addr)?;
        let mut outermost = None;
        while let Some(frame) = frames.next()? {
            if let Some(file) = frame.location.and_then(|l| l.file) {
                outermost = Some(file.to_string());
            }
        }
        let file = match outermost {
            Some(file) => file,
            None => match self.lines.find_location(addr)?.and_then(|l| l.file) {
                Some(file) => file.to_string(),
                None => return Ok(None),
            },
        };
        Ok(Some(files.id(&file)))
    }
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

    /// `outer` starts in the code of `twice`, inlined from a header: the
    /// line table at its entry says `twice.h`, and only the inlining
    /// (in the `.dwo` file of a split DWARF build) says `outer.c`.
    const HEADER: &str = "static inline __attribute__((always_inline)) int twice(int x)\n\
                          { return x * 2 + 1; }\n";
    const SOURCE: &str = "#include \"twice.h\"\n\
                          int outer(int x) { return twice(x); }\n\
                          void _start(void) { for (;;) outer(1); }\n";

    fn split_program(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("xtask-callgraph-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("twice.h"), HEADER).unwrap();
        std::fs::write(dir.join("outer.c"), SOURCE).unwrap();
        let status = std::process::Command::new("gcc")
            .current_dir(&dir)
            .args(["-O2", "-g", "-gsplit-dwarf", "-nostdlib", "-static"])
            .args(["outer.c", "-o", "outer"])
            .status()
            .expect("gcc runs");
        assert!(status.success(), "gcc failed");
        (dir.join("outer"), dir)
    }

    fn rules() -> CallgraphRules {
        CallgraphRules {
            ignore: Vec::new(),
            indirect_thunks: Vec::new(),
        }
    }

    #[test]
    fn a_split_dwarf_function_has_its_own_file_from_the_dwo() {
        let (program, dir) = split_program("own-file");
        let dwos: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "dwo"))
            .collect();
        assert_eq!(dwos.len(), 1, "gcc -gsplit-dwarf writes one .dwo: {dwos:?}");

        let data = std::fs::read(&program).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let outer = function_symbols(&file)
            .into_iter()
            .find(|f| f.name == "outer")
            .unwrap();
        let store = Store::new();
        let dwarf = Dwarf::new(&program, &file, &store).unwrap();
        let at_entry = dwarf.lines.find_location(outer.addr).unwrap().unwrap();
        assert!(
            at_entry.file.unwrap().ends_with("twice.h"),
            "the line table at outer's entry is the header's: {:?}",
            at_entry.file
        );

        let index = Index::build(&program, &dir, &rules()).unwrap();
        let outer = index.functions.iter().find(|f| f.name == "outer").unwrap();
        assert_eq!(index.file(outer.file), "outer.c");

        // Moved: found under vmlinux's directory by its recorded name.
        let moved = dir.with_extension("moved");
        let _ = std::fs::remove_dir_all(&moved);
        std::fs::rename(&dir, &moved).unwrap();
        let index = Index::build(&moved.join("outer"), &moved, &rules()).unwrap();
        let outer = index.functions.iter().find(|f| f.name == "outer").unwrap();
        assert!(index.file(outer.file).ends_with("outer.c"));

        // Gone: one error that names the missing file.
        for dwo in std::fs::read_dir(&moved).unwrap() {
            let dwo = dwo.unwrap().path();
            if dwo.extension().is_some_and(|e| e == "dwo") {
                std::fs::remove_file(dwo).unwrap();
            }
        }
        let err = Index::build(&moved.join("outer"), &moved, &rules()).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains(".dwo") && err.contains("missing"), "{err}");
        std::fs::remove_dir_all(&moved).unwrap();
    }
}

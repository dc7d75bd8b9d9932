//! The static call graph of a linked kernel, read from vmlinux itself: its
//! function symbols, the call instructions in each function's code (x86_64
//! and um decoded with iced-x86, arm64's fixed-width `bl`/`blr` by mask),
//! each call site's file:line from the DWARF line table, and whether ftrace
//! can trace the function (an entry in `__mcount_loc`). Kept per build
//! directory, and made again only when vmlinux or study/callgraph.toml's
//! rules change.

use std::{borrow::Cow, collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        callgraph::{
            decode::{decode, Isa, RawCall, StoreAt},
            member::PointerMember,
            stored::{self, CodeStore, Place, Stored},
        },
        dwarf::lines::{tree_relative, SourceLines, Store},
    },
    study::callgraph_rules::CallgraphRules,
};

/// Bumped when the index's layout or what goes into it changes (a decoder
/// that reads more calls): an older file is made again.
const FORMAT: u32 = 8;

#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    format: u32,
    /// vmlinux's size and modification time when the index was made, and
    /// the rules it was made with.
    pub key: String,
    /// Tree-relative source files, shared by index.
    pub files: Vec<String>,
    pub functions: Vec<Function>,
    /// Call sites the rules left out, by callee: `__fentry__` and the like.
    pub ignored: BTreeMap<String, usize>,
    /// Where function addresses are stored in static initializers.
    pub stored: Vec<Stored>,
    /// Where code stores function addresses into members.
    pub code_stores: Vec<CodeStore>,
    /// The function-pointer members of named types, with their offsets
    /// and their innermost named type's label (`member::Variables::pointer_members`).
    pub members: Vec<PointerMember>,
    /// By compilation unit, the members its code can call through
    /// (`stored::Read::visible`).
    pub visible: BTreeMap<String, Vec<u32>>,
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
    /// An indirect call's member offset, from the load that fed it
    /// (`decode`'s `RawCall::Indirect`).
    pub load: Option<u64>,
    /// An indirect call's pointer, where it is a global itself (loaded
    /// from the start of a data symbol): its name.
    pub global: Option<String>,
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
    /// The key an index made from `vmlinux` with `rules` now carries: the
    /// rules are built into the index (what it leaves out, what counts as
    /// indirect), so editing them makes it again as a new link does.
    pub fn key_of(vmlinux: &Path, rules: &CallgraphRules) -> Result<String> {
        let meta = vmlinux
            .metadata()
            .with_context(|| format!("cannot read {}", vmlinux.display()))?;
        let mtime = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(format!(
            "{} {} ignore={:?} indirect-thunks={:?}",
            meta.len(),
            mtime.as_nanos(),
            rules.ignore,
            rules.indirect_thunks
        ))
    }

    /// The index stored at `path`, if it is one of `vmlinux` as it is now,
    /// made with these `rules`.
    pub fn stored(path: &Path, vmlinux: &Path, rules: &CallgraphRules) -> Result<Option<Index>> {
        let key = Index::key_of(vmlinux, rules)?;
        Ok(std::fs::read(path)
            .ok()
            .and_then(|bytes| Index::from_bytes(&bytes))
            .filter(|i| i.key == key))
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
            stored: Vec::new(),
            code_stores: Vec::new(),
            members: Vec::new(),
            visible: BTreeMap::new(),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Index> {
        let index: Index = bincode::deserialize(bytes).ok()?;
        (index.format == FORMAT).then_some(index)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serialize(self).expect("plain data serializes")
    }

    /// Where `f`'s address is stored in static initializers.
    pub fn stored_of(&self, f: u32) -> impl Iterator<Item = &Stored> {
        self.stored.iter().filter(move |s| s.function == f)
    }

    pub fn file(&self, id: Option<u32>) -> &str {
        id.map_or("?", |i| self.files[i as usize].as_str())
    }

    /// Reads `vmlinux` (of the tree at `tree`, for the tree-relative paths).
    pub fn build(vmlinux: &Path, tree: &Path, rules: &CallgraphRules) -> Result<Index> {
        let key = Index::key_of(vmlinux, rules)?;
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
        let lines = SourceLines::new(vmlinux, &file, &store)?;
        let mut files = Files::new(tree);
        let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
        let sections = code_sections(&file);
        let mut code_stores = Vec::new();
        let globals = data_symbols(&file);
        for i in 0..functions.len() {
            let (addr, size) = (functions[i].addr, functions[i].size);
            let Some(code) = code_of(&sections, addr, size) else {
                continue;
            };
            functions[i].file = lines.own_file(addr)?.map(|f| files.id(&f));
            let mut calls = Vec::new();
            let is_function = |a: u64| by_start(a).is_some();
            let (raw_calls, raw_stores) = decode(isa, addr, code, &is_function);
            for raw in raw_stores {
                let place = match raw.at {
                    StoreAt::Member(offset) => Place::Member { offset },
                    StoreAt::Frame(frame) => Place::Local {
                        frame,
                        variable: None,
                        slot: None,
                        member: None,
                    },
                    StoreAt::Global(at) => {
                        let Some((start, name)) = global_at(&globals, at) else {
                            continue;
                        };
                        Place::Global {
                            variable: name.to_string(),
                            offset: at - start,
                            slot: None,
                            member: None,
                        }
                    }
                };
                let (file, line) = match lines.location(raw.site) {
                    Ok(Some((file, line))) => (Some(files.id(file)), line),
                    _ => (None, 0),
                };
                code_stores.push(CodeStore {
                    function: by_start(raw.value).expect("is_function"),
                    by: i as u32,
                    site: raw.site,
                    file,
                    line,
                    place,
                });
            }
            for raw in raw_calls {
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
                let (load, global) = match raw {
                    RawCall::Indirect { load, global, .. } => (
                        load,
                        global
                            .and_then(|at| global_at(&globals, at))
                            .filter(|&(start, _)| global == Some(start))
                            .map(|(_, name)| name.to_string()),
                    ),
                    _ => (None, None),
                };
                let (file, line) = match lines.location(site) {
                    Ok(Some((file, line))) => (Some(files.id(file)), line),
                    _ => (None, 0),
                };
                calls.push(Call {
                    site,
                    file,
                    line,
                    target,
                    load,
                    global,
                });
            }
            functions[i].calls = calls;
        }
        let stored::Read {
            stored,
            members,
            visible,
        } = stored::read(&file, vmlinux, &files.prefix, &functions, &mut code_stores)?;
        Ok(Index {
            format: FORMAT,
            key,
            files: files.names,
            functions,
            ignored,
            stored,
            code_stores,
            members,
            visible,
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

/// vmlinux's data symbols with a size: (address, size, name), sorted.
fn data_symbols<'a>(file: &'a object::File) -> Vec<(u64, u64, &'a str)> {
    let mut out: Vec<(u64, u64, &str)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Data && s.size() > 0)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?)))
        .collect();
    out.sort_unstable();
    out
}

/// The data symbol around `at`: its address and name.
fn global_at<'a>(globals: &[(u64, u64, &'a str)], at: u64) -> Option<(u64, &'a str)> {
    let i = globals.partition_point(|g| g.0 <= at).checked_sub(1)?;
    let (start, size, name) = globals[i];
    (at < start + size).then_some((start, name))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dwarf::lines::tests::split_program;

    #[test]
    fn a_split_dwarf_function_is_indexed_with_its_own_file() {
        let (program, dir) = split_program("index", "-gdwarf-5");
        let rules = CallgraphRules {
            ignore: Vec::new(),
            indirect_thunks: Vec::new(),
        };
        let index = Index::build(&program, &dir, &rules).unwrap();
        let outer = index.functions.iter().find(|f| f.name == "outer").unwrap();
        assert_eq!(index.file(outer.file), "outer.c");
        let start = index.functions.iter().find(|f| f.name == "_start").unwrap();
        let call = start.calls.first().expect("_start calls outer");
        assert_eq!((index.file(call.file), call.line), ("outer.c", 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// study/callgraph.toml's rules are built into the index: the same
    /// vmlinux with other rules does not read the stored one.
    #[test]
    fn an_index_is_made_again_when_the_rules_change() {
        let (program, dir) = split_program("index-rules", "-gdwarf-5");
        let none = CallgraphRules {
            ignore: Vec::new(),
            indirect_thunks: Vec::new(),
        };
        let stored = dir.join("callgraph.index");
        std::fs::write(
            &stored,
            Index::build(&program, &dir, &none).unwrap().to_bytes(),
        )
        .unwrap();
        assert!(Index::stored(&stored, &program, &none).unwrap().is_some());

        let ignore_outer = CallgraphRules {
            ignore: vec!["outer".into()],
            ..none.clone()
        };
        assert!(Index::stored(&stored, &program, &ignore_outer)
            .unwrap()
            .is_none());
        // Made again, the index is another: _start's call of outer is left out.
        let again = Index::build(&program, &dir, &ignore_outer).unwrap();
        let start = again.functions.iter().find(|f| f.name == "_start").unwrap();
        assert!(start.calls.is_empty(), "{:?}", start.calls);
        assert_eq!(again.ignored.get("outer"), Some(&1));

        let outer_is_a_thunk = CallgraphRules {
            indirect_thunks: vec!["outer".into()],
            ..none.clone()
        };
        assert!(Index::stored(&stored, &program, &outer_is_a_thunk)
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

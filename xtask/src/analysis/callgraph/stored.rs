//! Where each function's address is stored in a static initializer
//! (`struct proto tcp_prot = { .backlog_rcv = tcp_v4_do_rcv }`): the
//! absolute relocations in the data sections of each object vmlinux was
//! linked from (vmlinux itself keeps none), the variable that holds the
//! slot (the object's symbol around it), and the member at that offset
//! (the variable's type in the object's DWARF, its `.dwo` file under
//! split DWARF). Each entry is checked against vmlinux: the slot there must
//! hold the function's address, so an object not linked in, or a name
//! shared by two static variables, does not give a wrong entry. And where
//! code stores one ([`CodeStore`], found by `decode`): into a global or a
//! local, named here from the storing function's object's DWARF.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionKind, SymbolKind,
};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        callgraph::{
            index::Function,
            member::{self, PointerMember},
        },
        dwarf::lines::Store,
    },
    util::progress::{Progress, Shown},
};

/// One slot of a statically initialized variable that holds a function's
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The function (an index into the index's functions).
    pub function: u32,
    /// The variable, as its symbol is named (`tcp_prot`).
    pub variable: String,
    /// The slot's offset in the variable.
    pub offset: u64,
    /// `struct proto.backlog_rcv`: the innermost named type around the
    /// slot and the member path in it; `None` when the DWARF does not say.
    pub member: Option<String>,
    /// The slot's offset in that type: what a call through the member
    /// loads from the pointer to it.
    pub member_offset: Option<u64>,
    /// The object's source file and the variable's line.
    pub file: String,
    pub line: u32,
}

/// A function's address stored by code: into a member through a pointer
/// (`sk->sk_destruct = inet_sock_destruct`, the member named from the
/// line and the offset, as an indirect site's is: `sites::Sites`), into a
/// global or into a local (the member from the DWARF of the storing
/// function's object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeStore {
    /// The function whose address is stored.
    pub function: u32,
    /// The function whose code stores it, and the store's address.
    pub by: u32,
    pub site: u64,
    pub file: Option<u32>,
    pub line: u32,
    pub place: Place,
}

/// Where code stores a function's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Place {
    /// A member at `offset` from a pointer.
    Member { offset: u64 },
    /// A global (`net_hotdata`, as its symbol is named in vmlinux), at
    /// `offset` in it; `slot` the named variable's path to it
    /// (`net_hotdata.tcp_protocol.handler`), `member` its innermost named
    /// type's (`struct net_protocol.handler`). `None` where the global is
    /// itself the pointer or the DWARF does not say.
    Global {
        variable: String,
        offset: u64,
        slot: Option<String>,
        member: Option<String>,
    },
    /// A local of the storing function, at `frame` from its frame base
    /// (`DW_OP_fbreg`); the variable (`ops`), its path and its member
    /// once the DWARF names them.
    Local {
        frame: i64,
        variable: Option<String>,
        slot: Option<String>,
        member: Option<String>,
    },
}

impl Place {
    /// The member the DWARF names, for a global or a local.
    pub fn member(&self) -> Option<&str> {
        match self {
            Place::Member { .. } => None,
            Place::Global { member, .. } | Place::Local { member, .. } => member.as_deref(),
        }
    }

    /// `into net_hotdata.tcp_protocol.handler` (a global) or `into its
    /// local ops.update` (a local); empty for a member through a pointer.
    pub fn text(&self) -> String {
        match self {
            Place::Member { .. } => String::new(),
            Place::Global { variable, slot, .. } => {
                format!(" into the global {}", slot.as_deref().unwrap_or(variable))
            }
            Place::Local {
                slot,
                variable,
                frame,
                ..
            } => match (slot, variable) {
                (Some(slot), _) => format!(" into its local {slot}"),
                (None, Some(v)) => format!(" into its local {v}"),
                (None, None) => format!(" into a local at frame offset {frame}"),
            },
        }
    }
}

/// The objects vmlinux was linked from: the members of the thin archive
/// `vmlinux.a` beside it (Kbuild's since 6.1). None without it.
pub fn linked_objects(vmlinux: &Path) -> Result<Vec<PathBuf>> {
    let dir = vmlinux.parent().unwrap_or(Path::new(""));
    let archive = dir.join("vmlinux.a");
    let Ok(data) = std::fs::read(&archive) else {
        return Ok(Vec::new());
    };
    let file = object::read::archive::ArchiveFile::parse(&*data)
        .with_context(|| format!("{}: not an archive", archive.display()))?;
    let mut out = Vec::new();
    for member in file.members() {
        let member = member?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        if name.ends_with(".o") {
            out.push(dir.join(name));
        }
    }
    Ok(out)
}

/// vmlinux's view for the check: its data symbols by name, and the 8-byte
/// word at an address.
pub struct Linked<'a> {
    symbols: HashMap<&'a str, Vec<u64>>,
    sections: Vec<(u64, std::borrow::Cow<'a, [u8]>)>,
    /// Where vmlinux is linked without applying its relative relocations
    /// (arm64), a slot holds zero and its value is the relocation's addend.
    addends: HashMap<u64, u64>,
    little: bool,
}

impl<'a> Linked<'a> {
    pub fn new(file: &'a object::File<'a>) -> Linked<'a> {
        let mut symbols: HashMap<&str, Vec<u64>> = HashMap::new();
        for s in file.symbols().filter(|s| s.kind() == SymbolKind::Data) {
            if let Ok(name) = s.name() {
                symbols.entry(name).or_default().push(s.address());
            }
        }
        let sections = file
            .sections()
            .filter(|s| matches!(s.kind(), SectionKind::Data | SectionKind::ReadOnlyData))
            .filter_map(|s| Some((s.address(), s.uncompressed_data().ok()?)))
            .collect();
        let addends = file
            .dynamic_relocations()
            .into_iter()
            .flatten()
            .map(|(offset, r)| (offset, r.addend() as u64))
            .collect();
        Linked {
            symbols,
            sections,
            addends,
            little: file.is_little_endian(),
        }
    }

    fn word(&self, addr: u64) -> Option<u64> {
        self.sections.iter().find_map(|(start, data)| {
            let from = addr.checked_sub(*start)? as usize;
            let word: [u8; 8] = data.get(from..from + 8)?.try_into().ok()?;
            let value = match self.little {
                true => u64::from_le_bytes(word),
                false => u64::from_be_bytes(word),
            };
            match value {
                0 => self.addends.get(&addr).copied(),
                value => Some(value),
            }
        })
    }

    /// The function vmlinux's `variable` holds at `offset`, where one of
    /// the variables of that name holds one.
    fn held(
        &self,
        variable: &str,
        offset: u64,
        by_start: &impl Fn(u64) -> Option<u32>,
    ) -> Vec<u32> {
        self.symbols
            .get(variable)
            .into_iter()
            .flatten()
            .filter_map(|&at| by_start(self.word(at + offset)?))
            .collect()
    }
}

/// A slot found in one object, before the check against vmlinux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub function: String,
    pub variable: String,
    pub offset: u64,
}

/// The slots of `object`'s data that an absolute, pointer-sized relocation
/// fills with a function's address: to the function's symbol, or to its
/// section at the function's offset (a static function).
pub fn slots(object: &object::File) -> Vec<Slot> {
    let width = if object.is_64() { 64 } else { 32 };
    let functions: HashMap<(object::SectionIndex, u64), &str> = object
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text)
        .filter_map(|s| Some(((s.section_index()?, s.address()), s.name().ok()?)))
        .collect();
    let mut out = Vec::new();
    for section in object.sections() {
        if !matches!(
            section.kind(),
            SectionKind::Data | SectionKind::ReadOnlyData
        ) {
            continue;
        }
        let mut variables: Vec<(u64, u64, &str)> = object
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Data && s.section_index() == Some(section.index()))
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?)))
            .collect();
        variables.sort();
        for (offset, r) in section.relocations() {
            if r.kind() != RelocationKind::Absolute || r.size() != width {
                continue;
            }
            let RelocationTarget::Symbol(target) = r.target() else {
                continue;
            };
            let Ok(target) = object.symbol_by_index(target) else {
                continue;
            };
            let function = match target.kind() {
                // Defined here, or in another object (vmlinux says which
                // function the slot holds).
                SymbolKind::Text | SymbolKind::Unknown if r.addend() == 0 => target.name().ok(),
                SymbolKind::Section => target.section_index().and_then(|s| {
                    functions
                        .get(&(s, target.address().wrapping_add(r.addend() as u64)))
                        .copied()
                }),
                _ => None,
            };
            let Some(function) = function else {
                continue;
            };
            let at = variables.partition_point(|v| v.0 <= offset);
            let Some(&(start, size, variable)) = at.checked_sub(1).map(|i| &variables[i]) else {
                continue;
            };
            if offset < start + size {
                out.push(Slot {
                    function: function.to_string(),
                    variable: variable.to_string(),
                    offset: offset - start,
                });
            }
        }
    }
    out
}

/// What [`read`] finds.
pub struct Read {
    pub stored: Vec<Stored>,
    /// Every function-pointer member of a named type.
    pub members: Vec<PointerMember>,
    /// By compilation unit (its tree-relative source file): the members
    /// (indexes into `members`) its DWARF knows, the only ones its code
    /// can call through.
    pub visible: BTreeMap<String, Vec<u32>>,
}

/// Every slot of every object vmlinux was linked from, checked against
/// vmlinux, with its member named from the object's DWARF; every
/// function-pointer member of a named type in those objects' DWARF, with
/// its offset (those no initializer stores into too); and the globals and
/// locals of `code_stores`, named from the DWARF of the object that
/// defines the storing function.
pub fn read(
    vmlinux: &object::File,
    vmlinux_path: &Path,
    tree_prefix: &str,
    functions: &[Function],
    code_stores: &mut [CodeStore],
) -> Result<Read> {
    // By the storing function's name and size (a static function's name
    // may be another object's too): the stores to name.
    let mut to_name: HashMap<(String, u64), Vec<usize>> = HashMap::new();
    for (i, c) in code_stores.iter().enumerate() {
        if !matches!(c.place, Place::Member { .. }) {
            let by = &functions[c.by as usize];
            to_name
                .entry((by.name.clone(), by.size))
                .or_default()
                .push(i);
        }
    }
    let mut members: HashMap<PointerMember, u32> = HashMap::new();
    let mut visible: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let linked = Linked::new(vmlinux);
    let starts: Vec<u64> = functions.iter().map(|f| f.addr).collect();
    let by_start = |addr: u64| starts.binary_search(&addr).ok().map(|i| i as u32);
    let mut out = Vec::new();
    let objects = linked_objects(vmlinux_path)?;
    // Most of a first index's time: every object and its split DWARF.
    let mut progress = Progress::new(
        "callgraph, reading the objects",
        "objects",
        Some(objects.len() as u64),
        Shown::detect(),
    );
    let build_dir = vmlinux_path.parent().unwrap_or(Path::new(""));
    let mut known = member::KnownTypes::new();
    for path in objects {
        let shown = path.strip_prefix(build_dir).unwrap_or(&path);
        progress.step(&shown.display().to_string());
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        let Ok(object) = object::File::parse(&*data) else {
            continue;
        };
        let found: Vec<(Slot, u32)> = slots(&object)
            .into_iter()
            .filter_map(|slot| {
                let held = linked.held(&slot.variable, slot.offset, &by_start);
                let f = held
                    .into_iter()
                    .find(|&f| functions[f as usize].name == slot.function)?;
                Some((slot, f))
            })
            .collect();
        let store = Store::new();
        let types = member::Variables::of_object(&path, &store).ok();
        let source = types
            .as_ref()
            .and_then(|t| t.unit_name.clone())
            .map(|n| crate::analysis::dwarf::lines::tree_relative(&n, tree_prefix))
            .unwrap_or_else(|| path.with_extension("c").display().to_string());
        if let Some(types) = &types {
            let mut ids: Vec<u32> = types
                .pointer_members(&mut known)
                .into_iter()
                .map(|m| {
                    let next = members.len() as u32;
                    *members.entry(m).or_insert(next)
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            visible.entry(source.clone()).or_default().extend(ids);
        }
        if let Some(types) = &types {
            let here: Vec<usize> = object
                .symbols()
                .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
                .filter_map(|s| to_name.remove(&(s.name().ok()?.to_string(), s.size())))
                .flatten()
                .collect();
            for i in here {
                let by = &functions[code_stores[i].by as usize].name;
                name_place(types, by, &mut code_stores[i].place);
            }
        }
        for (slot, function) in found {
            let (member, line) = types
                .as_ref()
                .map(|t| {
                    (
                        t.member(&slot.variable, slot.offset),
                        t.line(&slot.variable),
                    )
                })
                .unwrap_or((None, 0));
            let (member, member_offset) = member.unzip();
            out.push(Stored {
                function,
                variable: slot.variable,
                offset: slot.offset,
                member,
                member_offset,
                file: source.clone(),
                line,
            });
        }
    }
    progress.finish();
    for ids in visible.values_mut() {
        ids.sort_unstable();
        ids.dedup();
    }
    let mut by_id: Vec<(u32, PointerMember)> = members.into_iter().map(|(m, i)| (i, m)).collect();
    by_id.sort_unstable_by_key(|(i, _)| *i);
    Ok(Read {
        stored: out,
        members: by_id.into_iter().map(|(_, m)| m).collect(),
        visible,
    })
}

/// A global's or a local's path and member, from the storing function's
/// unit.
fn name_place(types: &member::Variables, by: &str, place: &mut Place) {
    match place {
        Place::Member { .. } => {}
        Place::Global {
            variable,
            offset,
            slot,
            member,
        } => {
            if let Some(ty) = types.type_of_variable(variable) {
                let (path, named) = types.slot_in(ty, *offset);
                let base = variable.rsplit_once('.').map_or(&**variable, |(b, _)| b);
                *slot = path.map(|p| format!("{base}{p}"));
                *member = named;
            }
        }
        Place::Local {
            frame,
            variable,
            slot,
            member,
        } => {
            if let Some((name, ty, offset)) = types.local(by, *frame) {
                let (path, named) = types.slot_in(ty, offset);
                *slot = path.map(|p| format!("{name}{p}"));
                *variable = Some(name);
                *member = named;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots and members of a small object gcc compiles with split
    /// DWARF, against the C layout of x86_64 and arm64 (an int and its
    /// padding before each pointer; `struct ops` is 16 bytes).
    #[test]
    fn slots_and_members_of_a_compiled_object() {
        let dir = std::env::temp_dir().join(format!("xtask-stored-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ops.c"),
            "struct ops { int id; void (*handler)(void); };\n\
             struct table { struct ops first; struct ops more[2]; };\n\
             static void quiet(void) {}\n\
             void loud(void) {}\n\
             struct ops one = { .id = 1, .handler = loud };\n\
             static struct table many = { .first = { .handler = quiet },\n\
             \x20                           .more = { [1] = { .handler = loud } } };\n\
             void *keep(void) { return &many; }\n",
        )
        .unwrap();
        let status = std::process::Command::new("gcc")
            .current_dir(&dir)
            .args(["-c", "-O0", "-g", "-gsplit-dwarf", "ops.c", "-o", "ops.o"])
            .status()
            .expect("gcc runs");
        assert!(status.success());
        let data = std::fs::read(dir.join("ops.o")).unwrap();
        let object = object::File::parse(&*data).unwrap();
        let mut found: Vec<(String, String, u64)> = slots(&object)
            .into_iter()
            .map(|s| (s.function, s.variable, s.offset))
            .collect();
        found.sort();
        let slot = |f: &str, v: &str, o| (f.to_string(), v.to_string(), o);
        assert_eq!(
            found,
            [
                slot("loud", "many", 40),
                slot("loud", "one", 8),
                slot("quiet", "many", 8)
            ]
        );
        let store = Store::new();
        let types = member::Variables::of_object(&dir.join("ops.o"), &store).unwrap();
        let handler = Some(("struct ops.handler".to_string(), 8));
        assert_eq!(types.member("one", 8), handler);
        assert_eq!(types.member("many", 40), handler, "more[1].handler");
        assert_eq!(types.member("many", 0), None, "an int is no pointer");
        assert_eq!(types.line("many"), 6);
        assert_eq!(types.unit_name.as_deref(), Some("ops.c"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The member of a variable at a byte offset, from the DWARF of the object
//! that defines it: `tcp_prot` at 136 is `struct proto.backlog_rcv`; of a
//! global the object's code stores into (its `extern` declaration gives
//! the type), and of a function's local at an offset of its frame. Read
//! from the object's `.dwo` file (split DWARF, as Kbuild's
//! `CONFIG_DEBUG_INFO_SPLIT` writes it beside the object).

use std::{cell::OnceCell, collections::HashMap, path::Path};

use anyhow::{bail, Context, Result};
use gimli::{constants, AttributeValue, UnitOffset};

use crate::analysis::dwarf::{
    lines::{load_dwarf, Store},
    split::split_files,
};

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

/// A function-pointer member: its label from the outermost named type,
/// its offset there, and its label from the innermost named type.
pub type PointerMember = (String, u64, String);

/// The pointer members of the named types read so far, by the type's
/// label, size and declaration line.
pub type KnownTypes = HashMap<(String, Option<u64>, Option<u64>), Vec<PointerMember>>;

/// The innermost named type around a slot with the slot's offset in it
/// (none yet, below it), and the member path in it.
type MemberPath = (Option<(String, u64)>, Vec<String>);

/// The file-scope and static variables of one object, with their types.
pub struct Variables<'a> {
    dwarf: gimli::Dwarf<Reader<'a>>,
    unit: gimli::Unit<Reader<'a>>,
    /// By name: the type and the declaration's line (read when first asked).
    variables: OnceCell<HashMap<String, (UnitOffset, u32)>>,
    /// The unit's own source file, as the compiler named it.
    pub unit_name: Option<String>,
}

impl<'a> Variables<'a> {
    /// Those of `object`, from the `.dwo` file its skeleton unit names.
    pub fn of_object(object: &Path, store: &'a Store) -> Result<Variables<'a>> {
        let Some(path) = split_files(object)?.into_iter().next() else {
            bail!("{}: no split DWARF (-gsplit-dwarf)", object.display());
        };
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let data: &'a [u8] = store.alloc(data);
        let file = object::File::parse(data)
            .with_context(|| format!("{}: not an ELF file", path.display()))?;
        let mut dwarf = load_dwarf(&file, |id| id.dwo_name(), store)?;
        dwarf.file_type = gimli::DwarfFileType::Dwo;
        Variables::of_dwarf(dwarf)
    }

    /// Those of the first compilation unit of `dwarf`.
    pub fn of_dwarf(dwarf: gimli::Dwarf<Reader<'a>>) -> Result<Variables<'a>> {
        let Some(header) = dwarf.units().next()? else {
            bail!("no compilation unit");
        };
        let unit = dwarf.unit(header)?;
        let unit_name = {
            let mut entries = unit.entries();
            match entries.next_dfs()? {
                Some((_, root)) => {
                    attr(root, constants::DW_AT_name).and_then(|v| string(&dwarf, &unit, v))
                }
                None => None,
            }
        };
        Ok(Variables {
            dwarf,
            unit,
            variables: OnceCell::new(),
            unit_name,
        })
    }

    /// The unit's variables, read once, when a slot asks: the whole unit's
    /// tree is walked, for the static variables inside functions.
    fn variables(&self) -> &HashMap<String, (UnitOffset, u32)> {
        self.variables
            .get_or_init(|| self.read_variables().unwrap_or_default())
    }

    fn read_variables(&self) -> Result<HashMap<String, (UnitOffset, u32)>> {
        let (dwarf, unit) = (&self.dwarf, &self.unit);
        let mut variables: HashMap<String, (UnitOffset, u32)> = HashMap::new();
        let mut entries = unit.entries();
        while let Some((_, entry)) = entries.next_dfs()? {
            if entry.tag() != constants::DW_TAG_variable {
                continue;
            }
            // A definition of a variable declared before (`extern` in a
            // header) names it and its type only in the declaration.
            let declared = match attr(entry, constants::DW_AT_specification) {
                Some(AttributeValue::UnitRef(offset)) => Some(unit.entry(offset)?),
                _ => None,
            };
            let named = declared.as_ref().unwrap_or(entry);
            let name = attr(named, constants::DW_AT_name).and_then(|v| string(dwarf, unit, v));
            let ty = match attr(named, constants::DW_AT_type) {
                Some(AttributeValue::UnitRef(offset)) => offset,
                _ => continue,
            };
            let Some(name) = name else { continue };
            let line = attr(entry, constants::DW_AT_decl_line)
                .or_else(|| attr(named, constants::DW_AT_decl_line))
                .and_then(|v| v.udata_value())
                .unwrap_or(0) as u32;
            let defined = attr(entry, constants::DW_AT_location).is_some();
            if defined || !variables.contains_key(&name) {
                variables.insert(name, (ty, line));
            }
        }
        Ok(variables)
    }

    /// The variable a symbol names: `ops.12`, a static in a function, is
    /// `ops` in the DWARF.
    fn variable(&self, symbol: &str) -> Option<(UnitOffset, u32)> {
        let variables = self.variables();
        variables.get(symbol).copied().or_else(|| {
            let (base, suffix) = symbol.rsplit_once('.')?;
            suffix.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            variables.get(base).copied()
        })
    }

    pub fn line(&self, symbol: &str) -> u32 {
        self.variable(symbol).map_or(0, |v| v.1)
    }

    /// `struct proto.backlog_rcv` for `tcp_prot` at 136: the innermost named
    /// structure or union around the pointer at `offset`, and the member
    /// path in it. `None` when the slot is not a pointer member of a named
    /// type (the variable is itself the pointer, or the DWARF lacks it).
    /// With the member's offset in that type.
    pub fn member(&self, symbol: &str, offset: u64) -> Option<(String, u64)> {
        let (ty, _) = self.variable(symbol)?;
        let (named, path) = self.path(ty, offset, 0)?;
        let (named, at) = named?;
        Some((format!("{named}.{}", path.join(".")), at))
    }

    /// A slot `offset` bytes into a value of type `ty`: its path from the
    /// value (`.tcp_protocol.handler`, `[1].handler`; empty for the value
    /// itself) and the member as [`member`](Self::member) labels it.
    pub fn slot_in(&self, ty: UnitOffset, offset: u64) -> (Option<String>, Option<String>) {
        let member = self
            .path(ty, offset, 0)
            .and_then(|(named, path)| Some(format!("{}.{}", named?.0, path.join("."))));
        (self.access(ty, offset, 0), member)
    }

    /// The type of variable `symbol` (a global's `extern` declaration's
    /// where this unit only declares it).
    pub fn type_of_variable(&self, symbol: &str) -> Option<UnitOffset> {
        self.variable(symbol).map(|v| v.0)
    }

    fn access(&self, ty: UnitOffset, offset: u64, depth: usize) -> Option<String> {
        if depth > 32 {
            return None;
        }
        let ty = self.strip(ty)?;
        let entry = self.unit.entry(ty).ok()?;
        match entry.tag() {
            constants::DW_TAG_pointer_type if offset == 0 => Some(String::new()),
            constants::DW_TAG_array_type => {
                let element = self.type_of(&entry)?;
                let size = self.size(element)?;
                (size > 0).then_some(())?;
                let inner = self.access(element, offset % size, depth + 1)?;
                Some(format!("[{}]{inner}", offset / size))
            }
            constants::DW_TAG_structure_type | constants::DW_TAG_union_type => self
                .members_covering(ty, offset)
                .into_iter()
                .find_map(|(name, member_ty, inside)| {
                    let inner = self.access(member_ty, inside, depth + 1)?;
                    Some(match name {
                        Some(name) => format!(".{name}{inner}"),
                        None => inner,
                    })
                }),
            _ => None,
        }
    }

    /// The local of `function` (its definition in this unit) that covers
    /// `frame` bytes from the frame base (`DW_OP_fbreg`): its name, its
    /// type and the offset of `frame` in it.
    pub fn local(&self, function: &str, frame: i64) -> Option<(String, UnitOffset, u64)> {
        let mut tree = self.unit.entries_tree(None).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let entry = child.entry();
            if entry.tag() != constants::DW_TAG_subprogram
                || attr(entry, constants::DW_AT_high_pc).is_none()
            {
                continue;
            }
            let name = self.name(entry).or_else(|| {
                let origin = [
                    constants::DW_AT_abstract_origin,
                    constants::DW_AT_specification,
                ]
                .into_iter()
                .find_map(|at| match attr(entry, at)? {
                    AttributeValue::UnitRef(o) => Some(o),
                    _ => None,
                })?;
                self.name(&self.unit.entry(origin).ok()?)
            });
            if name.as_deref() == Some(function) {
                return self.local_in(child, frame, 0);
            }
        }
        None
    }

    fn local_in(
        &self,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'a>>,
        frame: i64,
        depth: usize,
    ) -> Option<(String, UnitOffset, u64)> {
        let mut children = node.children();
        while let Ok(Some(child)) = children.next() {
            let entry = child.entry();
            if entry.tag() == constants::DW_TAG_variable {
                let start = match attr(entry, constants::DW_AT_location) {
                    Some(AttributeValue::Exprloc(expr)) => frame_offset(expr, self.unit.encoding()),
                    _ => None,
                };
                let ty = self.type_of(entry);
                if let (Some(start), Some(ty)) = (start, ty) {
                    let size = self.size(ty).unwrap_or(0) as i64;
                    if (start..start + size).contains(&frame) {
                        return Some((self.name(entry)?, ty, (frame - start) as u64));
                    }
                }
            }
            if depth < 16 {
                if let Some(found) = self.local_in(child, frame, depth + 1) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The members of the structure or union `ty` that cover `offset`, in
    /// their order: each one's name (none for an anonymous one), its type,
    /// and `offset` inside it. [`Self::access`] and [`Self::path`] walk
    /// down through them.
    fn members_covering(
        &self,
        ty: UnitOffset,
        offset: u64,
    ) -> Vec<(Option<String>, UnitOffset, u64)> {
        let mut out = Vec::new();
        let Ok(mut tree) = self.unit.entries_tree(Some(ty)) else {
            return out;
        };
        let Ok(root) = tree.root() else {
            return out;
        };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let member = child.entry();
            if member.tag() != constants::DW_TAG_member {
                continue;
            }
            let at = attr(member, constants::DW_AT_data_member_location)
                .and_then(|v| v.udata_value())
                .unwrap_or(0);
            let Some(member_ty) = self.type_of(member) else {
                continue;
            };
            if offset < at || self.size(member_ty).is_some_and(|s| offset >= at + s) {
                continue;
            }
            out.push((self.name(member), member_ty, offset - at));
        }
        out
    }

    fn path(&self, ty: UnitOffset, offset: u64, depth: usize) -> Option<MemberPath> {
        if depth > 32 {
            return None;
        }
        let ty = self.strip(ty)?;
        let entry = self.unit.entry(ty).ok()?;
        match entry.tag() {
            constants::DW_TAG_pointer_type if offset == 0 => Some((None, Vec::new())),
            constants::DW_TAG_array_type => {
                let element = self.type_of(&entry)?;
                let size = self.size(element)?;
                (size > 0).then_some(())?;
                self.path(element, offset % size, depth + 1)
            }
            tag @ (constants::DW_TAG_structure_type | constants::DW_TAG_union_type) => {
                let own = self.name(&entry).map(|n| match tag {
                    constants::DW_TAG_union_type => format!("union {n}"),
                    _ => format!("struct {n}"),
                });
                for (name, member_ty, inside) in self.members_covering(ty, offset) {
                    let Some((inner, mut path)) = self.path(member_ty, inside, depth + 1) else {
                        continue;
                    };
                    if inner.is_some() {
                        return Some((inner, path));
                    }
                    if let Some(name) = name {
                        path.insert(0, name);
                    }
                    return Some((own.map(|own| (own, offset)), path));
                }
                None
            }
            _ => None,
        }
    }

    /// The function-pointer members of the unit's named structures and
    /// unions, with their offsets in them: `("struct proto.sendmsg", 40)`.
    /// Those of an anonymous structure or union inside count as the named
    /// one's; those of a named one inside count as both, with the
    /// innermost named type's own label third (`struct
    /// packet_offload.callbacks.gro_receive` at 16 is `struct
    /// offload_callbacks.gro_receive`, which static initializers fill).
    ///
    /// A type is read once for all units (`known`): the same header's
    /// structure, met again in another unit, by its label, size and line.
    pub fn pointer_members(&self, known: &mut KnownTypes) -> Vec<PointerMember> {
        let mut out = Vec::new();
        let Ok(mut tree) = self.unit.entries_tree(None) else {
            return out;
        };
        let Ok(root) = tree.root() else {
            return out;
        };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let entry = child.entry();
            let kind = match entry.tag() {
                constants::DW_TAG_structure_type => "struct",
                constants::DW_TAG_union_type => "union",
                _ => continue,
            };
            if attr(entry, constants::DW_AT_declaration).is_some() {
                continue;
            }
            let Some(name) = self.name(entry) else {
                continue;
            };
            let label = format!("{kind} {name}");
            let number = |at| attr(entry, at).and_then(|v| v.udata_value());
            let key = (
                label,
                number(constants::DW_AT_byte_size),
                number(constants::DW_AT_decl_line),
            );
            if let Some(members) = known.get(&key) {
                out.extend(members.iter().cloned());
                continue;
            }
            let mut members = Vec::new();
            self.pointers_in(entry.offset(), (&key.0, &key.0), 0, &mut members, 0);
            out.extend(members.iter().cloned());
            known.insert(key, members);
        }
        out
    }

    fn pointers_in(
        &self,
        ty: UnitOffset,
        (prefix, inner): (&str, &str),
        base: u64,
        out: &mut Vec<PointerMember>,
        depth: usize,
    ) {
        let Ok(mut tree) = self.unit.entries_tree(Some(ty)) else {
            return;
        };
        let Ok(root) = tree.root() else {
            return;
        };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let member = child.entry();
            if member.tag() != constants::DW_TAG_member {
                continue;
            }
            let at = base
                + attr(member, constants::DW_AT_data_member_location)
                    .and_then(|v| v.udata_value())
                    .unwrap_or(0);
            let Some(member_ty) = self.type_of(member).and_then(|t| self.strip(t)) else {
                continue;
            };
            let Ok(target) = self.unit.entry(member_ty) else {
                continue;
            };
            let name = self.name(member);
            let (path, inner_path) = match &name {
                Some(n) => (format!("{prefix}.{n}"), format!("{inner}.{n}")),
                None => (prefix.to_string(), inner.to_string()),
            };
            match target.tag() {
                constants::DW_TAG_pointer_type => {
                    let to = self.type_of(&target).and_then(|t| self.strip(t));
                    let is_function = to
                        .and_then(|t| self.unit.entry(t).ok())
                        .is_some_and(|e| e.tag() == constants::DW_TAG_subroutine_type);
                    if is_function && name.is_some() {
                        out.push((path, at, inner_path));
                    }
                }
                tag @ (constants::DW_TAG_structure_type | constants::DW_TAG_union_type)
                    if depth < 8 =>
                {
                    let own = self.name(&target).map(|n| match tag {
                        constants::DW_TAG_union_type => format!("union {n}"),
                        _ => format!("struct {n}"),
                    });
                    let inner = own.unwrap_or(inner_path);
                    self.pointers_in(member_ty, (&path, &inner), at, out, depth + 1)
                }
                _ => {}
            }
        }
    }

    /// Through typedefs and qualifiers.
    fn strip(&self, mut ty: UnitOffset) -> Option<UnitOffset> {
        for _ in 0..32 {
            let entry = self.unit.entry(ty).ok()?;
            match entry.tag() {
                constants::DW_TAG_typedef
                | constants::DW_TAG_const_type
                | constants::DW_TAG_volatile_type
                | constants::DW_TAG_restrict_type
                | constants::DW_TAG_atomic_type => ty = self.type_of(&entry)?,
                _ => return Some(ty),
            }
        }
        None
    }

    fn size(&self, ty: UnitOffset) -> Option<u64> {
        let ty = self.strip(ty)?;
        let entry = self.unit.entry(ty).ok()?;
        if let Some(size) = attr(&entry, constants::DW_AT_byte_size).and_then(|v| v.udata_value()) {
            return Some(size);
        }
        match entry.tag() {
            constants::DW_TAG_pointer_type => Some(u64::from(self.unit.encoding().address_size)),
            constants::DW_TAG_array_type => {
                let element = self.size(self.type_of(&entry)?)?;
                let mut count = 1;
                let mut tree = self.unit.entries_tree(Some(ty)).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let range = child.entry();
                    if range.tag() != constants::DW_TAG_subrange_type {
                        continue;
                    }
                    let n = match attr(range, constants::DW_AT_count) {
                        Some(v) => v.udata_value()?,
                        None => {
                            attr(range, constants::DW_AT_upper_bound)
                                .and_then(|v| v.udata_value())?
                                + 1
                        }
                    };
                    count *= n;
                }
                Some(element * count)
            }
            _ => None,
        }
    }

    fn type_of(
        &self,
        entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'a>>,
    ) -> Option<UnitOffset> {
        match attr(entry, constants::DW_AT_type)? {
            AttributeValue::UnitRef(offset) => Some(offset),
            _ => None,
        }
    }

    fn name(&self, entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'a>>) -> Option<String> {
        string(&self.dwarf, &self.unit, attr(entry, constants::DW_AT_name)?)
    }
}

/// `N` of a location that is `DW_OP_fbreg N` alone.
fn frame_offset(expr: gimli::Expression<Reader<'_>>, encoding: gimli::Encoding) -> Option<i64> {
    let mut ops = expr.operations(encoding);
    match (ops.next().ok()?, ops.next().ok()?) {
        (Some(gimli::Operation::FrameOffset { offset }), None) => Some(offset),
        _ => None,
    }
}

fn string<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    unit: &gimli::Unit<Reader<'a>>,
    value: AttributeValue<Reader<'a>>,
) -> Option<String> {
    let s = dwarf.attr_string(unit, value).ok()?;
    Some(String::from_utf8_lossy(s.slice()).into_owned())
}

fn attr<'a>(
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'a>>,
    at: constants::DwAt,
) -> Option<AttributeValue<Reader<'a>>> {
    entry.attr_value(at).ok().flatten()
}

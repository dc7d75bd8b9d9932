//! DWARF evidence for an object file: the optimization level its compiler
//! really used and how many of its parameters and locals a debugger can show.
//!
//! The level comes from `DW_AT_producer`, which gcc fills with the options it
//! was given (`-grecord-gcc-switches`, on by default); the last `-O` flag in it
//! wins, as it does for gcc. Debuggability is the share of parameters and
//! local variables of concrete code that carry a location or a constant value
//! (see [`ObjectSummary`] for the exact counting rule).
//!
//! Only `.debug_info`, `.debug_abbrev` and the string sections are read. Unit
//! headers and root DIEs are read with relocations applied (a relocatable
//! object's references to other DWARF sections are relocations); the DIE trees
//! are then walked with gimli's raw entry reader over the bare section, reading
//! the few attribute values that matter and skipping the rest, so an object
//! with megabytes of DWARF takes milliseconds.
//!
//! An object built with split DWARF (`-gsplit-dwarf`,
//! `CONFIG_DEBUG_INFO_SPLIT`) holds only skeleton units; each names the
//! `.dwo` file its DWARF went to, which is read in its place (`split.rs`).

use std::{borrow::Cow, cell::RefCell, path::Path};

use anyhow::{Context, Result};
use gimli::{
    constants, Abbreviations, AttributeValue, DebugStrOffsetsBase, DwarfFileType, EndianSlice,
    EntriesRaw, RelocateReader, RunTimeEndian, SectionId, UnitHeader, UnitSectionOffset,
};
use object::{
    read::SectionRelocationIterator, Object, ObjectSection, ObjectSymbol, RelocationKind,
    RelocationTarget, SectionKind,
};
use serde::Serialize;

use crate::study::opt_rules::Level;

/// What the DWARF of one object file says about its optimization and
/// debuggability.
///
/// Counting rule for `params` and `locals`: a `DW_TAG_formal_parameter`
/// (params) or `DW_TAG_variable` (locals) is counted when it belongs to
/// concrete code, that is when its chain of enclosing DIEs, walking up
/// through `DW_TAG_lexical_block` and `DW_TAG_inlined_subroutine` DIEs that
/// have code, reaches a `DW_TAG_subprogram` that
/// - has code,
/// - is not an abstract instance (no `DW_AT_inline`), and
/// - is not a declaration (no `DW_AT_declaration`).
///
/// "Has code" means has `DW_AT_low_pc` or `DW_AT_ranges`: a debugger never
/// stops in a scope without, so its variables do not count (even at -O0,
/// gcc keeps such blocks for branches it folded away, like the size cases
/// of the kernel's `cmpxchg` macros). Any other DIE in the chain (a
/// structure or subroutine type, a call site, ...) ends it, so the
/// parameters of function types are not counted. Variables with
/// `DW_AT_declaration` (`extern int x;` inside a function) are not counted,
/// nor are file-scope variables. Concrete DIEs that only point to their
/// abstract origin (the parameters of an inlined call, of an out-of-line
/// copy of an inline function) are counted, static locals and artificial
/// parameters too.
///
/// A counted DIE is *located* when it has `DW_AT_const_value`, or
/// `DW_AT_location` that is not an empty expression (DWARF's spelling of
/// "optimized out"). A location list counts as located whatever share of
/// the scope it covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObjectSummary {
    /// The last `-O` flag in the producer of the first unit that has one
    /// (assembler units have none).
    #[serde(serialize_with = "serialize_level")]
    pub level: Option<Level>,
    /// The producer of the unit `level` comes from; without a level, the
    /// first producer found.
    pub producer: Option<String>,
    pub params: usize,
    pub params_located: usize,
    pub locals: usize,
    pub locals_located: usize,
    /// Units in `.debug_info`, a skeleton unit counted as the units of its
    /// `.dwo` file.
    pub units: usize,
}

impl ObjectSummary {
    /// Adds the counts of a later unit (or `.dwo` file); its level and
    /// producer count only where none came before.
    fn absorb(&mut self, later: ObjectSummary) {
        if self.level.is_none() && later.level.is_some() {
            self.level = later.level;
            self.producer = later.producer;
        } else if self.producer.is_none() {
            self.producer = later.producer;
        }
        self.params += later.params;
        self.params_located += later.params_located;
        self.locals += later.locals;
        self.locals_located += later.locals_located;
        self.units += later.units;
    }

    /// Located parameters and locals over all counted ones; 1.0 when there
    /// are none.
    pub fn located_share(&self) -> f64 {
        let total = self.params + self.locals;
        if total == 0 {
            1.0
        } else {
            (self.params_located + self.locals_located) as f64 / total as f64
        }
    }
}

fn serialize_level<S: serde::Serializer>(
    level: &Option<Level>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match level {
        Some(level) => serializer.serialize_some(level.name()),
        None => serializer.serialize_none(),
    }
}

/// Summarizes the DWARF of an ELF relocatable object or executable. An
/// object without debug information gives an empty summary (no units).
pub fn summarize(path: &Path) -> Result<ObjectSummary> {
    summarize_as(path, DwarfFileType::Main)
}

/// Summarizes an object (`Main`) or a split DWARF file (`Dwo`).
fn summarize_as(path: &Path, file_type: DwarfFileType) -> Result<ObjectSummary> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF object file", path.display()))?;
    summarize_file(&file, file_type, path)
        .with_context(|| format!("cannot read the DWARF of {}", path.display()))
}

/// A reader of a (decompressed) section that applies the section's
/// relocations to the offsets and addresses it reads.
type Reader<'a> = RelocateReader<Bare<'a>, Relocations<'a>>;

/// A reader of a (decompressed) section as it is in the file.
type Bare<'a> = EndianSlice<'a, RunTimeEndian>;

/// The sections read; the others are loaded empty.
const SECTIONS: [SectionId; 5] = [
    SectionId::DebugInfo,
    SectionId::DebugAbbrev,
    SectionId::DebugStr,
    SectionId::DebugLineStr,
    SectionId::DebugStrOffsets,
];

struct Section<'a> {
    id: SectionId,
    data: Cow<'a, [u8]>,
    relocations: RefCell<RelocationCursor<'a>>,
}

fn load_section<'a>(
    file: &'a object::File<'a>,
    id: SectionId,
    file_type: DwarfFileType,
) -> Result<Option<Section<'a>>> {
    let name = match file_type {
        DwarfFileType::Main => Some(id.name()),
        DwarfFileType::Dwo => id.dwo_name(),
    };
    let Some(section) = name.and_then(|name| file.section_by_name(name)) else {
        return Ok(None);
    };
    let data = section
        .uncompressed_data()
        .with_context(|| format!("cannot decompress {}", section.name().unwrap_or("?")))?;
    Ok(Some(Section {
        id,
        data,
        relocations: RefCell::new(RelocationCursor {
            file,
            pending: Some(section.relocations()),
            frontier: None,
            seen: Vec::new(),
        }),
    }))
}

/// An absolute relocation, the kind DWARF uses for references to sections
/// and symbols; the others (TLS offsets in location expressions, say) are
/// left unapplied.
#[derive(Debug, Clone, Copy)]
struct Relocation {
    offset: u64,
    target: RelocationTarget,
    addend: i64,
    implicit_addend: bool,
}

/// The relocations of one section, read from the object only as far as the
/// highest offset asked about. Values are only relocated in unit headers and
/// root DIEs, which open their units, so an object with one unit reads a
/// few of the tens of thousands of relocations its `.debug_info` may have.
/// This relies on relocations being sorted by offset, as assemblers and
/// linkers emit them; should the scan come across disorder, it reads and
/// sorts all the rest.
#[derive(Debug)]
struct RelocationCursor<'a> {
    file: &'a object::File<'a>,
    /// The relocations not read yet; `None` for a section that has none.
    pending: Option<SectionRelocationIterator<'a, 'a>>,
    /// The offset of the last relocation read, if any.
    frontier: Option<u64>,
    seen: Vec<Relocation>,
}

impl RelocationCursor<'_> {
    /// The value read at `offset`, relocated as `object::RelocationMap`
    /// does: references to DWARF sections become section offsets, other
    /// references addresses.
    fn relocate(&mut self, offset: u64, value: u64) -> u64 {
        self.read_past(offset);
        let Ok(index) = self.seen.binary_search_by_key(&offset, |r| r.offset) else {
            return value;
        };
        let relocation = self.seen[index];
        let base = match relocation.target {
            RelocationTarget::Symbol(symbol) => match self.file.symbol_by_index(symbol) {
                Ok(symbol) => symbol.address(),
                Err(_) => return value,
            },
            RelocationTarget::Section(section) => match self.file.section_by_index(section) {
                Ok(section) if section.kind() == SectionKind::Debug => 0,
                Ok(section) => section.address(),
                Err(_) => return value,
            },
            _ => return value,
        };
        let resolved = base.wrapping_add(relocation.addend as u64);
        if relocation.implicit_addend {
            value.wrapping_add(resolved)
        } else {
            resolved
        }
    }

    /// Reads relocations until one beyond `offset`.
    fn read_past(&mut self, offset: u64) {
        while self.frontier.is_none_or(|frontier| frontier <= offset) {
            let Some((at, relocation)) = self.pending.as_mut().and_then(Iterator::next) else {
                return;
            };
            self.keep(at, &relocation);
            if self.frontier.is_some_and(|frontier| at < frontier) {
                while let Some((at, relocation)) = self.pending.as_mut().and_then(Iterator::next) {
                    self.keep(at, &relocation);
                }
                self.seen.sort_by_key(|r| r.offset);
                return;
            }
            self.frontier = Some(at);
        }
    }

    fn keep(&mut self, offset: u64, relocation: &object::Relocation) {
        if relocation.kind() == RelocationKind::Absolute {
            self.seen.push(Relocation {
                offset,
                target: relocation.target(),
                addend: relocation.addend(),
                implicit_addend: relocation.has_implicit_addend(),
            });
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Relocations<'a>(&'a RefCell<RelocationCursor<'a>>);

impl gimli::read::Relocate for Relocations<'_> {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(self.0.borrow_mut().relocate(offset as u64, value))
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        let relocated = self.0.borrow_mut().relocate(offset as u64, value as u64);
        <usize as gimli::ReaderOffset>::from_u64(relocated)
    }
}

/// Summarizes the units of `file` (read from `path`), each skeleton
/// unit by its `.dwo` file, in unit order.
fn summarize_file<'a>(
    file: &'a object::File<'a>,
    file_type: DwarfFileType,
    path: &Path,
) -> Result<ObjectSummary> {
    let mut summary = ObjectSummary::default();
    each_unit(file, file_type, &mut |unit| {
        if let Some(dwo_name) = &unit.root.dwo_name {
            let dwo = split::dwo_path(path, unit.root.comp_dir.as_deref(), dwo_name)?;
            summary.absorb(summarize_as(&dwo, DwarfFileType::Dwo)?);
            return Ok(());
        }
        let mut counted = ObjectSummary {
            units: 1,
            ..ObjectSummary::default()
        };
        let bare = bare_header(unit.header, unit.debug_info, unit.endian)?;
        count_unit(&bare, unit.abbreviations, &mut counted)?;
        counted.level = unit.root.producer.as_deref().and_then(level_of_producer);
        counted.producer = unit.root.producer;
        summary.absorb(counted);
        Ok(())
    })?;
    Ok(summary)
}

/// One unit of a file, as [`each_unit`] gives it.
struct UnitAt<'u, 'a> {
    root: Root,
    header: &'u UnitHeader<Reader<'a>>,
    abbreviations: &'u Abbreviations,
    debug_info: &'a [u8],
    endian: RunTimeEndian,
}

/// Each unit of `file`, its header and root read with relocations applied.
fn each_unit<'a>(
    file: &'a object::File<'a>,
    file_type: DwarfFileType,
    visit: &mut dyn FnMut(UnitAt<'_, '_>) -> Result<()>,
) -> Result<()> {
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let mut sections = Vec::new();
    for id in SECTIONS {
        sections.extend(load_section(file, id, file_type)?);
    }
    let no_relocations = RefCell::new(RelocationCursor {
        file,
        pending: None,
        frontier: None,
        seen: Vec::new(),
    });
    let section = |id| sections.iter().find(|s: &&Section| s.id == id);
    let mut dwarf = gimli::Dwarf::load(|id| -> gimli::Result<Reader<'_>> {
        let (data, relocations) = match section(id) {
            Some(section) => (&*section.data, &section.relocations),
            None => (&[][..], &no_relocations),
        };
        Ok(RelocateReader::new(
            EndianSlice::new(data, endian),
            Relocations(relocations),
        ))
    })?;
    dwarf.file_type = file_type;
    let debug_info = section(SectionId::DebugInfo).map_or(&[][..], |s| &*s.data);

    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        let abbreviations = dwarf.abbreviations(&header)?;
        let root = read_root(&dwarf, &header, &abbreviations)?;
        visit(UnitAt {
            root,
            header: &header,
            abbreviations: &abbreviations,
            debug_info,
            endian,
        })?;
    }
    Ok(())
}

/// The level the last `-O` flag of a producer string selects.
fn level_of_producer(producer: &str) -> Option<Level> {
    producer.split_whitespace().rev().find_map(Level::from_flag)
}

/// The strings of a unit's root DIE that matter here.
#[derive(Debug, Default)]
struct Root {
    producer: Option<String>,
    /// Set on a skeleton unit: the `.dwo` file that holds the unit's DWARF
    /// (`DW_AT_dwo_name`, or DWARF 4's `DW_AT_GNU_dwo_name`)...
    dwo_name: Option<String>,
    /// ...relative to this directory.
    comp_dir: Option<String>,
}

/// The root DIE of a unit.
fn read_root<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    header: &UnitHeader<Reader<'a>>,
    abbreviations: &Abbreviations,
) -> Result<Root> {
    let mut entries = header.entries_raw(abbreviations, None)?;
    let Some(abbrev) = entries.read_abbreviation()? else {
        return Ok(Root::default());
    };
    let encoding = header.encoding();
    let (mut producer, mut dwo_name, mut comp_dir) = (None, None, None);
    let mut str_offsets_base =
        DebugStrOffsetsBase::default_for_encoding_and_file(encoding, dwarf.file_type);
    for spec in abbrev.attributes() {
        let slot = match spec.name() {
            constants::DW_AT_producer => &mut producer,
            constants::DW_AT_dwo_name | constants::DW_AT_GNU_dwo_name => &mut dwo_name,
            constants::DW_AT_comp_dir => &mut comp_dir,
            constants::DW_AT_str_offsets_base => {
                let value = entries.read_attribute(*spec)?.value();
                if let AttributeValue::DebugStrOffsetsBase(base) = value {
                    str_offsets_base = base;
                }
                continue;
            }
            _ => {
                entries.skip_attributes(std::slice::from_ref(spec))?;
                continue;
            }
        };
        *slot = Some(entries.read_attribute(*spec)?.value());
    }
    let string = |value: Option<AttributeValue<Reader<'a>>>| -> Result<Option<String>> {
        let string = match value {
            None => return Ok(None),
            Some(AttributeValue::String(string)) => string,
            Some(AttributeValue::DebugStrRef(offset)) => dwarf.debug_str.get_str(offset)?,
            Some(AttributeValue::DebugLineStrRef(offset)) => {
                dwarf.debug_line_str.get_str(offset)?
            }
            Some(AttributeValue::DebugStrOffsetsIndex(index)) => {
                let offset = dwarf.debug_str_offsets.get_str_offset(
                    encoding.format,
                    str_offsets_base,
                    index,
                )?;
                dwarf.debug_str.get_str(offset)?
            }
            Some(_) => return Ok(None),
        };
        Ok(Some(gimli::Reader::to_string_lossy(&string)?.into_owned()))
    };
    Ok(Root {
        producer: string(producer)?,
        dwo_name: string(dwo_name)?,
        comp_dir: string(comp_dir)?,
    })
}

/// The same unit as `header`, read from the bare `.debug_info`.
fn bare_header<'a>(
    header: &UnitHeader<Reader<'a>>,
    debug_info: &'a [u8],
    endian: RunTimeEndian,
) -> Result<UnitHeader<Bare<'a>>> {
    let UnitSectionOffset::DebugInfoOffset(start) = header.offset() else {
        anyhow::bail!("unit outside .debug_info");
    };
    let entries = debug_info
        .get(start.0 + header.header_size()..start.0 + header.length_including_self())
        .context("unit past the end of .debug_info")?;
    Ok(UnitHeader::new(
        header.encoding(),
        header.unit_length(),
        header.type_(),
        header.debug_abbrev_offset(),
        header.offset(),
        EndianSlice::new(entries, endian),
    ))
}

/// Where a DIE sits, as far as counting goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    /// In a concrete subprogram, possibly inside blocks and inlined calls.
    Code,
    /// Anywhere else: file scope, types, abstract instances, declarations.
    Elsewhere,
}

/// The attributes that decide how a DIE is counted.
#[derive(Debug, Default)]
struct Attrs {
    located: bool,
    declaration: bool,
    inline: bool,
    has_code: bool,
}

/// Adds the parameters and locals of one unit to `summary`.
fn count_unit(
    header: &UnitHeader<Bare<'_>>,
    abbreviations: &Abbreviations,
    summary: &mut ObjectSummary,
) -> Result<()> {
    let mut entries = header.entries_raw(abbreviations, None)?;
    // For each enclosing entry with children, its depth and the scope its
    // children are in; the root's children are at file scope.
    let mut scopes: Vec<(isize, Scope)> = Vec::new();
    while !entries.is_empty() {
        let depth = entries.next_depth();
        let Some(abbrev) = entries.read_abbreviation()? else {
            continue;
        };
        while scopes.last().is_some_and(|&(d, _)| d >= depth) {
            scopes.pop();
        }
        let scope = scopes.last().map_or(Scope::Elsewhere, |&(_, s)| s);

        let tag = abbrev.tag();
        let variable = matches!(
            tag,
            constants::DW_TAG_formal_parameter | constants::DW_TAG_variable
        );
        let scope_tag = matches!(
            tag,
            constants::DW_TAG_subprogram
                | constants::DW_TAG_lexical_block
                | constants::DW_TAG_inlined_subroutine
        );
        let attrs = if (variable && scope == Scope::Code) || (scope_tag && abbrev.has_children()) {
            read_attrs(&mut entries, abbrev.attributes())?
        } else {
            entries.skip_attributes(abbrev.attributes())?;
            Attrs::default()
        };

        if variable && scope == Scope::Code && !attrs.declaration {
            let (count, located) = if tag == constants::DW_TAG_formal_parameter {
                (&mut summary.params, &mut summary.params_located)
            } else {
                (&mut summary.locals, &mut summary.locals_located)
            };
            *count += 1;
            *located += usize::from(attrs.located);
        }
        if abbrev.has_children() {
            let inner = match tag {
                constants::DW_TAG_subprogram
                    if attrs.has_code && !attrs.inline && !attrs.declaration =>
                {
                    Scope::Code
                }
                constants::DW_TAG_lexical_block | constants::DW_TAG_inlined_subroutine
                    if attrs.has_code =>
                {
                    scope
                }
                _ => Scope::Elsewhere,
            };
            scopes.push((depth, inner));
        }
    }
    Ok(())
}

/// Reads the attributes of a subprogram, parameter or variable: the values
/// that matter, and the presence of the others.
fn read_attrs(
    entries: &mut EntriesRaw<'_, '_, Bare<'_>>,
    specs: &[gimli::AttributeSpecification],
) -> Result<Attrs> {
    let mut attrs = Attrs::default();
    for spec in specs {
        match spec.name() {
            constants::DW_AT_location => {
                attrs.located |= match entries.read_attribute(*spec)?.value() {
                    AttributeValue::Exprloc(expression) => !expression.0.is_empty(),
                    AttributeValue::Block(block) => !block.is_empty(),
                    _ => true,
                };
                continue;
            }
            constants::DW_AT_declaration => {
                attrs.declaration = !matches!(
                    entries.read_attribute(*spec)?.value(),
                    AttributeValue::Flag(false)
                );
                continue;
            }
            constants::DW_AT_const_value => attrs.located = true,
            constants::DW_AT_inline => attrs.inline = true,
            constants::DW_AT_low_pc | constants::DW_AT_ranges => attrs.has_code = true,
            _ => {}
        }
        entries.skip_attributes(std::slice::from_ref(spec))?;
    }
    Ok(attrs)
}

pub mod lines;
pub(crate) mod split;
#[cfg(test)]
mod tests;

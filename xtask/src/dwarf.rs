//! DWARF evidence for an object file: the optimization level its compiler
//! really used and how many of its parameters and locals a debugger can show.
//!
//! The level comes from `DW_AT_producer`, which gcc fills with the options it
//! was given (`-grecord-gcc-switches`, on by default); the last `-O` flag in it
//! wins, as it does for gcc. Debuggability is the share of parameters and
//! local variables of concrete code that carry a location or a constant value
//! (see [`ObjectSummary`] for the exact counting rule).
//!
//! Only `.debug_info`, `.debug_abbrev` and the string sections are read, and
//! the DIE trees are walked with gimli's raw entry reader, reading attribute
//! values only where the answer depends on them: a multi-megabyte kernel
//! object takes milliseconds.

use std::{borrow::Cow, path::Path};

use anyhow::{Context, Result};
use gimli::{
    constants, AttributeValue, DebugStrOffsetsBase, EndianSlice, Reader as _, RelocateReader,
    RunTimeEndian, SectionId,
};
use object::{Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionKind};
use serde::Serialize;

use crate::opt_rules::Level;

/// What the DWARF of one object file says about its optimization and
/// debuggability.
///
/// Counting rule for `params` and `locals`: a `DW_TAG_formal_parameter`
/// (params) or `DW_TAG_variable` (locals) is counted when it belongs to
/// concrete code, that is when its nearest enclosing scope chain, walking up
/// through `DW_TAG_lexical_block` and `DW_TAG_inlined_subroutine`, reaches a
/// `DW_TAG_subprogram` that
/// - has code (`DW_AT_low_pc` or `DW_AT_ranges`),
/// - is not an abstract instance (no `DW_AT_inline`), and
/// - is not a declaration (no `DW_AT_declaration`).
///
/// Any other DIE in between (a structure or subroutine type, a call site,
/// ...) ends the chain, so the parameters of function types are not counted.
/// Variables with `DW_AT_declaration` (`extern int x;` inside a function) are
/// not counted, nor are file-scope variables. Concrete DIEs that only point
/// to their abstract origin (the parameters of an inlined call, of an
/// out-of-line copy of an inline function) are counted, static locals and
/// artificial parameters too.
///
/// A counted DIE is *located* when it has `DW_AT_const_value`, or
/// `DW_AT_location` that is not an empty expression (DWARF's spelling of
/// "optimized out"). A location list counts as located whatever the share of
/// the scope it covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Units in `.debug_info`.
    pub units: usize,
}

impl ObjectSummary {
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
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF object file", path.display()))?;
    summarize_file(&file).with_context(|| format!("cannot read the DWARF of {}", path.display()))
}

/// The gimli reader: a slice of a (decompressed) section, with the
/// relocations of a relocatable object applied as values are read.
type Reader<'a> = RelocateReader<EndianSlice<'a, RunTimeEndian>, Relocations<'a>>;

/// The sections read; the others are loaded empty.
const SECTIONS: [SectionId; 5] = [
    SectionId::DebugInfo,
    SectionId::DebugAbbrev,
    SectionId::DebugStr,
    SectionId::DebugLineStr,
    SectionId::DebugStrOffsets,
];

/// A relocation of a DWARF section, resolved only when a value is read at
/// its offset: the DIE walk skips nearly every attribute value, so of the
/// tens of thousands of relocations in a big object's `.debug_info` only
/// those of unit headers and root DIEs are ever resolved.
#[derive(Debug, Clone, Copy)]
struct Relocation {
    offset: u64,
    target: RelocationTarget,
    addend: i64,
    implicit_addend: bool,
}

/// The relocations of one section, sorted by offset.
#[derive(Debug, Clone, Copy)]
struct Relocations<'a> {
    file: &'a object::File<'a>,
    sorted: &'a [Relocation],
}

impl Relocations<'_> {
    /// The value read at `offset`, relocated as `object::RelocationMap`
    /// does: references to DWARF sections become section offsets, other
    /// references addresses.
    fn relocate(&self, offset: usize, value: u64) -> u64 {
        let Ok(index) = self
            .sorted
            .binary_search_by_key(&(offset as u64), |r| r.offset)
        else {
            return value;
        };
        let relocation = self.sorted[index];
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
}

impl gimli::read::Relocate for Relocations<'_> {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(self.relocate(offset, value))
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        <usize as gimli::ReaderOffset>::from_u64(self.relocate(offset, value as u64))
    }
}

struct Section<'data> {
    id: SectionId,
    data: Cow<'data, [u8]>,
    relocations: Vec<Relocation>,
}

fn load_section<'data>(
    file: &object::File<'data>,
    id: SectionId,
) -> Result<Option<Section<'data>>> {
    let Some(section) = file.section_by_name(id.name()) else {
        return Ok(None);
    };
    let data = section
        .uncompressed_data()
        .with_context(|| format!("cannot decompress {}", id.name()))?;
    // Only absolute relocations carry the section offsets and addresses
    // DWARF needs; others (TLS offsets in location expressions, say) are
    // left unapplied.
    let mut relocations = Vec::new();
    for (offset, relocation) in section.relocations() {
        if relocation.kind() == RelocationKind::Absolute {
            relocations.push(Relocation {
                offset,
                target: relocation.target(),
                addend: relocation.addend(),
                implicit_addend: relocation.has_implicit_addend(),
            });
        }
    }
    // Assemblers emit them in order already; this only checks.
    relocations.sort_by_key(|r| r.offset);
    eprintln!("relocs {:?} {}", id, relocations.len());
    Ok(Some(Section {
        id,
        data,
        relocations,
    }))
}

fn summarize_file(file: &object::File<'_>) -> Result<ObjectSummary> {
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let t = std::time::Instant::now();
    let mut sections = Vec::new();
    for id in SECTIONS {
        sections.extend(load_section(file, id)?);
    }
    eprintln!("load {:?}", t.elapsed());
    let dwarf = gimli::Dwarf::load(|id| -> gimli::Result<Reader<'_>> {
        let (data, sorted) = match sections.iter().find(|s| s.id == id) {
            Some(section) => (&*section.data, &*section.relocations),
            None => (&[][..], &[][..]),
        };
        Ok(RelocateReader::new(
            EndianSlice::new(data, endian),
            Relocations { file, sorted },
        ))
    })?;

    let mut summary = ObjectSummary {
        level: None,
        producer: None,
        params: 0,
        params_located: 0,
        locals: 0,
        locals_located: 0,
        units: 0,
    };
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        summary.units += 1;
        let producer = walk_unit(&dwarf, &header, &mut summary)?;
        let level = producer.as_deref().and_then(level_of_producer);
        if level.is_some() && summary.level.is_none() {
            summary.level = level;
            summary.producer = producer;
        } else if summary.producer.is_none() {
            summary.producer = producer;
        }
    }
    Ok(summary)
}

/// The level the last `-O` flag of a producer string selects.
fn level_of_producer(producer: &str) -> Option<Level> {
    producer.split_whitespace().rev().find_map(Level::from_flag)
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

/// Adds the parameters and locals of one unit to `summary` and returns the
/// unit's producer.
fn walk_unit(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    header: &gimli::UnitHeader<Reader<'_>>,
    summary: &mut ObjectSummary,
) -> Result<Option<String>> {
    let abbreviations = dwarf.abbreviations(header)?;
    let mut entries = header.entries_raw(&abbreviations, None)?;

    let producer = match entries.read_abbreviation()? {
        Some(root) => read_producer(dwarf, header, &mut entries, root)?,
        None => return Ok(None),
    };

    // The scope the children of an entry at a given depth are in, for the
    // entries enclosing the current one.
    let mut scopes: Vec<(isize, Scope)> = vec![(0, Scope::Elsewhere)];
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
        let relevant = match tag {
            constants::DW_TAG_formal_parameter | constants::DW_TAG_variable => scope == Scope::Code,
            constants::DW_TAG_subprogram => true,
            _ => false,
        };
        let attrs = if relevant {
            read_attrs(&mut entries, abbrev.attributes())?
        } else {
            entries.skip_attributes(abbrev.attributes())?;
            Attrs::default()
        };

        let inner = match tag {
            constants::DW_TAG_formal_parameter | constants::DW_TAG_variable => {
                if scope == Scope::Code && !attrs.declaration {
                    let (count, located) = if tag == constants::DW_TAG_formal_parameter {
                        (&mut summary.params, &mut summary.params_located)
                    } else {
                        (&mut summary.locals, &mut summary.locals_located)
                    };
                    *count += 1;
                    *located += usize::from(attrs.located);
                }
                Scope::Elsewhere
            }
            constants::DW_TAG_subprogram
                if attrs.has_code && !attrs.inline && !attrs.declaration =>
            {
                Scope::Code
            }
            constants::DW_TAG_lexical_block | constants::DW_TAG_inlined_subroutine => scope,
            _ => Scope::Elsewhere,
        };
        if abbrev.has_children() {
            scopes.push((depth, inner));
        }
    }
    Ok(producer)
}

/// Reads the attributes of a unit's root DIE and returns its producer.
fn read_producer(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    header: &gimli::UnitHeader<Reader<'_>>,
    entries: &mut gimli::EntriesRaw<'_, '_, Reader<'_>>,
    root: &gimli::Abbreviation,
) -> Result<Option<String>> {
    let encoding = header.encoding();
    let mut producer = None;
    let mut str_offsets_base =
        DebugStrOffsetsBase::default_for_encoding_and_file(encoding, gimli::DwarfFileType::Main);
    for spec in root.attributes() {
        let attr = entries.read_attribute(*spec)?;
        match attr.name() {
            constants::DW_AT_producer => producer = Some(attr.value()),
            constants::DW_AT_str_offsets_base => {
                if let AttributeValue::DebugStrOffsetsBase(base) = attr.value() {
                    str_offsets_base = base;
                }
            }
            _ => {}
        }
    }
    let string = match producer {
        None => return Ok(None),
        Some(AttributeValue::String(string)) => string,
        Some(AttributeValue::DebugStrRef(offset)) => dwarf.debug_str.get_str(offset)?,
        Some(AttributeValue::DebugLineStrRef(offset)) => dwarf.debug_line_str.get_str(offset)?,
        Some(AttributeValue::DebugStrOffsetsIndex(index)) => {
            let offset =
                dwarf
                    .debug_str_offsets
                    .get_str_offset(encoding.format, str_offsets_base, index)?;
            dwarf.debug_str.get_str(offset)?
        }
        Some(_) => return Ok(None),
    };
    Ok(Some(string.to_string_lossy()?.into_owned()))
}

/// Reads the attributes of a subprogram, parameter or variable. Only
/// values that matter are read; the others are skipped, which reads no
/// relocation.
fn read_attrs(
    entries: &mut gimli::EntriesRaw<'_, '_, Reader<'_>>,
    specs: &[gimli::AttributeSpecification],
) -> Result<Attrs> {
    let mut attrs = Attrs::default();
    for spec in specs {
        match spec.name() {
            constants::DW_AT_location | constants::DW_AT_declaration => {
                let attr = entries.read_attribute(*spec)?;
                match attr.value() {
                    // An empty expression: optimized out.
                    AttributeValue::Exprloc(expression) => {
                        attrs.located |= !expression.0.is_empty()
                    }
                    AttributeValue::Block(block) => attrs.located |= !block.is_empty(),
                    AttributeValue::Flag(set) => attrs.declaration = set,
                    _ if attr.name() == constants::DW_AT_location => attrs.located = true,
                    _ => {}
                }
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

#[cfg(test)]
mod tests {
    use std::{
        path::PathBuf,
        process::Command,
        time::{Duration, Instant},
    };

    use super::*;

    /// Counts at -O0: params `a`, `lost`, `n`, `out`; locals `tmp`, `inner`
    /// (in a block), `calls` (static), `from_call`, `r`. Not counted: the
    /// file-scope `file_scope`, the declarations `ext_decl` and `ext_fn`
    /// (and its parameter), the parameter of the function pointer type.
    const SOURCE: &str = r#"
extern int ext_fn(int);
int file_scope;
int (*hook)(int unnamed_type_param);

static inline int helper(int a, int lost)
{
	int tmp = lost + 1;
	{
		int inner = a * 3;
		ext_fn(inner);
	}
	return a * 2;
}

int api(int n, int *out)
{
	extern int ext_decl;
	static int calls;
	int from_call = ext_fn(n);
	int r = helper(n, from_call);
	calls++;
	*out = r + ext_decl + file_scope;
	return r + helper(n + 1, ext_fn(2));
}
"#;
    const PARAMS: usize = 4;
    const LOCALS: usize = 5;

    /// A fresh directory for one test.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-dwarf-{}-{}", std::process::id(), test));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Compiles `source` (named `name`) in `dir` with gcc and the given
    /// flags and returns the object's path.
    fn compile(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
        let source_path = dir.join(name);
        std::fs::write(&source_path, source).unwrap();
        let object = source_path.with_extension(format!("{}.o", flags.join("").replace('-', "")));
        let status = Command::new("gcc")
            .args(["-c", "-g"])
            .args(flags)
            .arg(&source_path)
            .arg("-o")
            .arg(&object)
            .status()
            .expect("gcc runs");
        assert!(status.success(), "gcc {flags:?} {name} failed");
        object
    }

    fn assert_exact_o0_counts(summary: &ObjectSummary) {
        assert_eq!(summary.params, PARAMS, "{summary:?}");
        assert_eq!(summary.params_located, PARAMS, "{summary:?}");
        assert_eq!(summary.locals, LOCALS, "{summary:?}");
        assert_eq!(summary.locals_located, LOCALS, "{summary:?}");
        assert_eq!(summary.located_share(), 1.0);
    }

    #[test]
    fn o0_locates_every_parameter_and_local() {
        let dir = scratch_dir("o0");
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O0"])).unwrap();
        assert_eq!(summary.level, Some(Level::O0));
        assert_eq!(summary.units, 1);
        let producer = summary.producer.as_deref().unwrap();
        assert!(producer.starts_with("GNU C"), "{producer}");
        assert!(producer.contains(" -O0"), "{producer}");
        assert_exact_o0_counts(&summary);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn o2_loses_some_locations() {
        let dir = scratch_dir("o2");
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O2"])).unwrap();
        eprintln!("-O2: {summary:?}");
        assert_eq!(summary.level, Some(Level::O2));
        assert!(summary.producer.as_deref().unwrap().contains(" -O2"));
        // Inlined twice: the concrete copies of helper's parameters and
        // locals count, its abstract instance does not.
        assert!(summary.params >= PARAMS, "{summary:?}");
        assert!(summary.locals >= LOCALS, "{summary:?}");
        // `from_call` only feeds the unused `lost`.
        assert!(summary.locals_located < summary.locals, "{summary:?}");
        assert!(summary.located_share() < 1.0, "{summary:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn last_o_flag_wins() {
        let dir = scratch_dir("last");
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O2", "-Og", "-O0"])).unwrap();
        assert_eq!(summary.level, Some(Level::O0));
        assert_exact_o0_counts(&summary);
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O0", "-Og"])).unwrap();
        assert_eq!(summary.level, Some(Level::Og));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dwarf4_and_compressed_sections() {
        let dir = scratch_dir("dwarf4");
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O0", "-gdwarf-4"])).unwrap();
        assert_eq!(summary.level, Some(Level::O0));
        assert_exact_o0_counts(&summary);
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O2", "-gdwarf-4"])).unwrap();
        assert_eq!(summary.level, Some(Level::O2));
        assert!(summary.located_share() < 1.0, "{summary:?}");
        let summary = summarize(&compile(&dir, "t.c", SOURCE, &["-O0", "-gz=zlib"])).unwrap();
        assert_eq!(summary.level, Some(Level::O0));
        assert_exact_o0_counts(&summary);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `ld -r` of an assembler object and a C object: the C unit's
    /// producer string is at a non-zero offset of the merged `.debug_str`
    /// and its abbreviations at a non-zero offset of `.debug_abbrev`, both
    /// reached through relocations only.
    #[test]
    fn assembler_units_and_relocations() {
        let dir = scratch_dir("ldr");
        let asm = compile(&dir, "entry.S", ".text\nentry:\n\tnop\n\tret\n", &[]);
        let c = compile(&dir, "t.c", SOURCE, &["-O0"]);
        let asm_summary = summarize(&asm).unwrap();
        assert_eq!(asm_summary.level, None);
        let asm_producer = asm_summary.producer.as_deref().unwrap();
        assert!(asm_producer.starts_with("GNU AS"), "{asm_producer}");
        assert_eq!(asm_summary.located_share(), 1.0);

        let both = dir.join("both.o");
        let status = Command::new("ld")
            .arg("-r")
            .arg(&asm)
            .arg(&c)
            .arg("-o")
            .arg(&both)
            .status()
            .expect("ld runs");
        assert!(status.success());
        let summary = summarize(&both).unwrap();
        assert_eq!(summary.units, 2);
        assert_eq!(summary.level, Some(Level::O0));
        let producer = summary.producer.as_deref().unwrap();
        assert!(producer.starts_with("GNU C"), "{producer}");
        assert_exact_o0_counts(&summary);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn no_debug_info_is_an_empty_summary() {
        let dir = scratch_dir("nodebug");
        let object = dir.join("t.o");
        let source = dir.join("t.c");
        std::fs::write(&source, SOURCE).unwrap();
        let status = Command::new("gcc")
            .args(["-c", "-O2"])
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap();
        assert!(status.success());
        let summary = summarize(&object).unwrap();
        assert_eq!(summary.units, 0);
        assert_eq!(summary.level, None);
        assert_eq!(summary.located_share(), 1.0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn non_elf_is_a_clear_error() {
        let dir = scratch_dir("nonelf");
        let path = dir.join("notes.o");
        std::fs::write(&path, "just text, not an object\n").unwrap();
        let error = format!("{:#}", summarize(&path).unwrap_err());
        assert!(error.contains(&*path.to_string_lossy()), "{error}");
        assert!(error.contains("not an ELF object"), "{error}");
        let missing = dir.join("missing.o");
        let error = format!("{:#}", summarize(&missing).unwrap_err());
        assert!(error.contains(&*missing.to_string_lossy()), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn serializes_level_by_name() {
        let summary = ObjectSummary {
            level: Some(Level::Og),
            producer: None,
            params: 1,
            params_located: 1,
            locals: 3,
            locals_located: 2,
            units: 1,
        };
        assert_eq!(summary.located_share(), 0.75);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["level"], "Og");
        assert_eq!(json["producer"], serde_json::Value::Null);
    }

    /// A generated C file of a few thousand functions: prints its object's
    /// size and how long summarizing it takes. Run with `--ignored`.
    #[test]
    #[ignore]
    fn timing_large_object() {
        let dir = scratch_dir("large");
        let mut source = String::from("extern int sink(int);\n");
        for i in 0..3000 {
            source.push_str(&format!(
                "struct s{i} {{ int a, b; long c[4]; }};\n\
                 int f{i}(struct s{i} *p, int x, int y)\n{{\n\
                 \tint t = x * {i};\n\tint u = sink(t + y);\n\
                 \tfor (int k = 0; k < y; k++) {{ int v = p->c[k & 3]; u += sink(v); }}\n\
                 \treturn u + p->a;\n}}\n"
            ));
        }
        for flags in [["-O0"], ["-O2"]] {
            let object = compile(&dir, "big.c", &source, &flags);
            let size = std::fs::metadata(&object).unwrap().len();
            let start = Instant::now();
            let summary = summarize(&object).unwrap();
            let elapsed: Duration = start.elapsed();
            eprintln!(
                "{flags:?}: {size} bytes, {elapsed:?}, share {:.3}, {summary:?}",
                summary.located_share()
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
#[cfg(test)]
mod bench_tmp {
    #[test]
    #[ignore]
    fn bench_env() {
        let p = std::path::PathBuf::from(std::env::var("DWARF_BENCH").unwrap());
        let t = std::time::Instant::now();
        for _ in 0..20 {
            super::summarize(&p).unwrap();
        }
        eprintln!("per run {:?}", t.elapsed() / 20);
    }
}

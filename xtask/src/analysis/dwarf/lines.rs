//! Where vmlinux's code comes from: each address's file and line, and each
//! function's own source file, from its DWARF. A split DWARF build
//! (`CONFIG_DEBUG_INFO_SPLIT`) keeps the line tables in vmlinux and moves
//! the functions and their inlining to each object's `.dwo` file, read
//! here when a lookup needs it (binutils' `addr2line` 2.40 answers `??`
//! there).

use std::{borrow::Cow, path::Path, sync::Arc};

use addr2line::LookupContinuation;
use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection};

use crate::analysis::dwarf::split;

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

/// Section data the DWARF borrows: decompressed sections, and the split
/// DWARF files read on demand.
pub type Store = typed_arena::Arena<Vec<u8>>;

/// vmlinux's (or any linked program's) source lines.
pub struct SourceLines<'a> {
    vmlinux: &'a Path,
    context: addr2line::Context<Reader<'a>>,
    store: &'a Store,
}

impl<'a> SourceLines<'a> {
    /// The lines of `file`, parsed from `vmlinux`.
    pub fn new(
        vmlinux: &'a Path,
        file: &object::File<'a>,
        store: &'a Store,
    ) -> Result<SourceLines<'a>> {
        let dwarf = load_dwarf(file, |id| Some(id.name()), store)?;
        let context = addr2line::Context::from_dwarf(dwarf)
            .with_context(|| format!("{}: cannot read its DWARF", vmlinux.display()))?;
        Ok(SourceLines {
            vmlinux,
            context,
            store,
        })
    }

    /// The file and line of the code at `addr`, from the line table: that
    /// of the innermost inlined function there.
    pub fn location(&self, addr: u64) -> Result<Option<(&str, u32)>> {
        Ok(self
            .context
            .find_location(addr)?
            .and_then(|l| Some((l.file?, l.line.unwrap_or(0)))))
    }

    /// The function's own source file at `addr`: the outermost frame's (the
    /// line table there may be in an inlined header's code).
    pub fn own_file(&self, addr: u64) -> Result<Option<String>> {
        let mut frames = self.frames(addr)?;
        let mut outermost = None;
        while let Some(frame) = frames.next()? {
            if let Some(file) = frame.location.and_then(|l| l.file) {
                outermost = Some(file.to_string());
            }
        }
        match outermost {
            Some(file) => Ok(Some(file)),
            None => Ok(self.location(addr)?.map(|(file, _)| file.to_string())),
        }
    }

    fn frames(&self, addr: u64) -> Result<addr2line::FrameIter<'_, Reader<'a>>> {
        let mut lookup = self.context.find_frames(addr);
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
    ) -> Result<Arc<gimli::Dwarf<Reader<'a>>>> {
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
        let dwo_id = match dwo.units().next()? {
            Some(header) => dwo.unit(header)?.dwo_id,
            None => None,
        };
        if dwo_id != Some(load.dwo_id) {
            bail!(
                "{}: not the split DWARF of {name} that {} was linked with (its dwo_id differs); \
                 rebuild to write it again",
                path.display(),
                self.vmlinux.display()
            );
        }
        dwo.make_dwo(&load.parent);
        Ok(Arc::new(dwo))
    }
}

/// The DWARF sections of `file`, by the names `name` gives them (a `.dwo`
/// file's are `.debug_info.dwo` and so on).
pub(crate) fn load_dwarf<'a>(
    file: &object::File<'a>,
    name: impl Fn(gimli::SectionId) -> Option<&'static str>,
    store: &'a Store,
) -> Result<gimli::Dwarf<Reader<'a>>> {
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
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

/// `net/ipv4/tcp.c` for `/k/net/ipv4/tcp.c`, `./net/ipv4/tcp.c` or a
/// path through the build directory (`/b/../k/net/...`).
pub fn tree_relative(path: &str, tree_prefix: &str) -> String {
    let path = path.strip_prefix(tree_prefix).unwrap_or(path);
    let mut path = path.trim_start_matches("./");
    while let Some(rest) = path.strip_prefix("../") {
        path = rest;
    }
    path.to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

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
                          __attribute__((noinline)) int outer(int x) { return twice(x); }\n\
                          volatile int sink;\n\
                          void _start(void) { for (;;) sink = outer(sink); }\n";

    /// A program of `SOURCE` built by gcc with split DWARF (gcc 12's
    /// default, DWARF 5, or `dwarf` such as `-gdwarf-4`) in a fresh
    /// directory: the program's path and the directory.
    pub(crate) fn split_program(test: &str, dwarf: &str) -> (PathBuf, PathBuf) {
        let dir = crate::analysis::dwarf::tests::scratch_dir(&format!("lines-{test}"));
        std::fs::write(dir.join("twice.h"), HEADER).unwrap();
        std::fs::write(dir.join("outer.c"), SOURCE).unwrap();
        let status = std::process::Command::new("gcc")
            .current_dir(&dir)
            .args(["-O2", "-g", dwarf, "-gsplit-dwarf", "-nostdlib", "-static"])
            .args(["outer.c", "-o", "outer"])
            .status()
            .expect("gcc runs");
        assert!(status.success(), "gcc failed");
        (dir.join("outer"), dir)
    }

    fn dwo_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "dwo"))
            .collect()
    }

    /// `outer`'s address in `program`.
    pub(crate) fn address_of_outer(file: &object::File) -> u64 {
        use object::ObjectSymbol;
        file.symbols()
            .find(|s| s.name() == Ok("outer"))
            .expect("outer is a symbol")
            .address()
    }

    fn own_file_of_outer(program: &Path) -> Result<Option<String>> {
        let data = std::fs::read(program).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let store = Store::new();
        let lines = SourceLines::new(program, &file, &store)?;
        let entry = address_of_outer(&file);
        let (at_entry, _) = lines.location(entry)?.expect("a line at outer's entry");
        assert!(
            at_entry.ends_with("twice.h"),
            "the line table at outer's entry is the header's: {at_entry}"
        );
        lines.own_file(entry)
    }

    #[test]
    fn a_split_dwarf_function_has_its_own_file_from_the_dwo() {
        for dwarf in ["-gdwarf-5", "-gdwarf-4"] {
            let (program, dir) = split_program(&format!("own-file{dwarf}"), dwarf);
            assert_eq!(
                dwo_files(&dir).len(),
                1,
                "gcc -gsplit-dwarf writes one .dwo"
            );
            let own = own_file_of_outer(&program).unwrap().unwrap();
            assert_eq!(own, dir.join("outer.c").display().to_string(), "{dwarf}");

            // Moved: found under the program's directory by its recorded name.
            let moved = dir.with_extension("moved");
            let _ = std::fs::remove_dir_all(&moved);
            std::fs::rename(&dir, &moved).unwrap();
            let own = own_file_of_outer(&moved.join("outer")).unwrap().unwrap();
            assert!(own.ends_with("outer.c"), "{dwarf}: {own}");

            // Gone: one error that names the missing file.
            for dwo in dwo_files(&moved) {
                std::fs::remove_file(dwo).unwrap();
            }
            let err = format!("{:#}", own_file_of_outer(&moved.join("outer")).unwrap_err());
            assert!(
                err.contains("outer.dwo") && err.contains("missing"),
                "{err}"
            );
            std::fs::remove_dir_all(&moved).unwrap();
        }
    }

    #[test]
    fn a_dwo_of_another_build_is_refused() {
        let (program, dir) = split_program("stale", "-gdwarf-5");
        // Another source: another dwo_id.
        std::fs::write(dir.join("other.c"), "int other(int x) { return x; }\n").unwrap();
        let status = std::process::Command::new("gcc")
            .current_dir(&dir)
            .args([
                "-O2",
                "-g",
                "-gsplit-dwarf",
                "-c",
                "other.c",
                "-o",
                "other.o",
            ])
            .status()
            .expect("gcc runs");
        assert!(status.success());
        std::fs::rename(dir.join("other.dwo"), dir.join("outer.dwo")).unwrap();
        let err = format!("{:#}", own_file_of_outer(&program).unwrap_err());
        assert!(err.contains("dwo_id differs"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

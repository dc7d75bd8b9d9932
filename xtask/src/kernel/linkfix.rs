//! Undefined symbols at link time: which objects reference them, which
//! source file would define them, and the `CONFIG_` option that gates that
//! file (from the Makefiles' `obj-$(CONFIG_X) += file.o` lines, or an
//! `#ifdef CONFIG_X` around the definition).
//!
//! At -O0 a call behind a static-inline stub that returns false survives,
//! and then needs a function that exists only under some config.

use std::collections::HashMap;
use std::{
    path::{Path, PathBuf},
    sync::LazyLock,
};

use anyhow::{Context, Result};
use object::{Object, ObjectSymbol};
use regex::Regex;
use walkdir::WalkDir;

use crate::kernel::kconfig::Kconfig;

/// Where a symbol would come from, and what turns it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Tree-relative source that defines the symbol.
    pub source: String,
    /// The option that is off and would build the definition.
    pub option: Option<String>,
    /// Where that option gates it: `mm/Makefile:43` or `net/socket.c:976`.
    pub gated_at: Option<String>,
}

/// For each of `symbols`, the build-dir-relative objects whose symbol table
/// references it as undefined, sorted. vmlinux.o and archives are skipped.
/// One walk over the objects, however many symbols.
pub fn referencing_objects(
    build_dir: &Path,
    symbols: &[&str],
) -> Result<HashMap<String, Vec<String>>> {
    objects_by_symbol(
        build_dir,
        |rel| rel != Path::new("vmlinux.o"),
        symbols,
        |s| s.is_undefined(),
    )
}

/// For each of `symbols`, the build-dir-relative objects, each compiled from
/// a source of `tree`, whose symbol table defines it (a local one too: at
/// -O0 every object that calls a `static inline` function keeps its own
/// copy), sorted. What a post-link check names in vmlinux
/// (`memblock_alloc_low+0x1c`) comes from these.
pub fn defining_objects(
    build_dir: &Path,
    tree: &Path,
    symbols: &[&str],
) -> Result<HashMap<String, Vec<String>>> {
    objects_by_symbol(
        build_dir,
        // Compiled objects only: not vmlinux.o, not a composite's ld -r.
        |rel| {
            let stem = rel.with_extension("");
            ["c", "S"]
                .iter()
                .any(|ext| tree.join(stem.with_extension(ext)).is_file())
        },
        symbols,
        |s| s.is_definition(),
    )
}

/// The `.o` files under `build_dir` (but modules' `.mod.o` and hidden
/// directories) that `keep` accepts by their relative path, by which of
/// `symbols` each has a symbol of that `kind` accepts; every one of
/// `symbols` is a key, its objects sorted.
fn objects_by_symbol(
    build_dir: &Path,
    keep: impl Fn(&Path) -> bool,
    symbols: &[&str],
    kind: impl Fn(&object::Symbol) -> bool,
) -> Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = symbols
        .iter()
        .map(|s| (s.to_string(), Vec::new()))
        .collect();
    if symbols.is_empty() {
        return Ok(out);
    }
    for entry in WalkDir::new(build_dir)
        .into_iter()
        .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'))
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file() || !name.ends_with(".o") || name.ends_with(".mod.o") {
            continue;
        }
        let rel = entry.path().strip_prefix(build_dir).unwrap_or(entry.path());
        if !keep(rel) {
            continue;
        }
        let data = std::fs::read(entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        let Ok(file) = object::File::parse(&*data) else {
            continue;
        };
        let rel = rel.display().to_string();
        for symbol in file.symbols().filter(|s| kind(s)) {
            let Some(objects) = symbol.name().ok().and_then(|n| out.get_mut(n)) else {
                continue;
            };
            if objects.last() != Some(&rel) {
                objects.push(rel.clone());
            }
        }
    }
    for objects in out.values_mut() {
        objects.sort();
        objects.dedup();
    }
    Ok(out)
}

/// Finds the source that defines `symbol`, and the option that is off in
/// `config` and gates it.
pub fn find_provider(
    tree: &Path,
    arch_dir: &str,
    symbol: &str,
    config: &Kconfig,
) -> Option<Provider> {
    let definition = find_definition(tree, arch_dir, symbol)?;
    let (source, line) = definition;
    let rel = source
        .strip_prefix(tree)
        .unwrap_or(&source)
        .display()
        .to_string();
    let text = std::fs::read_to_string(&source).ok()?;
    let gates = makefile_gates(tree, &rel)
        .into_iter()
        .chain(ifdef_gates(&text, line, &rel));
    for (option, at) in gates {
        if config.get(&option) == "n" {
            return Some(Provider {
                source: rel,
                option: Some(option),
                gated_at: Some(at),
            });
        }
    }
    Some(Provider {
        source: rel,
        option: None,
        gated_at: None,
    })
}

static ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*([\w.-]+)-(\$\(CONFIG_(\w+)\)|y|objs)\s*[:+]?=(.*)$").unwrap()
});

/// The options that gate building `rel` (a tree-relative .c file), innermost
/// first: its own `obj-$(CONFIG_X)` line, a composite object's, then its
/// directory's line in the parent Makefile.
fn makefile_gates(tree: &Path, rel: &str) -> Vec<(String, String)> {
    let mut gates = Vec::new();
    let path = Path::new(rel);
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return gates;
    };
    let mut wanted = vec![format!("{}.o", stem.to_string_lossy())];
    let mut dir = dir.to_path_buf();
    // Walk up: file.o in dir/Makefile, then dir/ in its parent's Makefile.
    for _ in 0..8 {
        let makefile = ["Makefile", "Kbuild"]
            .iter()
            .map(|m| tree.join(&dir).join(m))
            .find(|p| p.is_file());
        let Some(makefile) = makefile else { break };
        let Ok(text) = std::fs::read_to_string(&makefile) else {
            break;
        };
        let mut found_composite = None;
        for (i, line) in logical_lines(&text) {
            let Some(c) = ASSIGN.captures(&line) else {
                continue;
            };
            let words: Vec<&str> = c[4].split_whitespace().collect();
            if !wanted.iter().any(|w| words.contains(&w.as_str())) {
                continue;
            }
            let at = format!(
                "{}:{}",
                makefile.strip_prefix(tree).unwrap_or(&makefile).display(),
                i + 1
            );
            if let Some(option) = c.get(3) {
                gates.push((option.as_str().to_string(), at));
            } else if &c[1] != "obj" && &c[1] != "lib" && &c[1] != "core" {
                found_composite = Some(format!("{}.o", &c[1]));
            }
        }
        if let Some(composite) = found_composite {
            wanted = vec![composite];
            continue;
        }
        let Some(name) = dir.file_name().map(|n| format!("{}/", n.to_string_lossy())) else {
            break;
        };
        wanted = vec![name];
        let Some(parent) = dir.parent() else { break };
        dir = parent.to_path_buf();
    }
    gates
}

/// Makefile lines with `\` continuations joined, each with its first line's
/// 0-based number.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut continued = false;
    for (i, line) in text.lines().enumerate() {
        let (body, continues) = match line.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        match out.last_mut() {
            Some((_, last)) if continued => {
                last.push(' ');
                last.push_str(body);
            }
            _ => out.push((i, body.to_string())),
        }
        continued = continues;
    }
    out
}

static IF_CONFIG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*#\s*if(?:def\s+CONFIG_(\w+)|\s+(?:IS_ENABLED|IS_BUILTIN|defined)\s*\(\s*CONFIG_(\w+)\s*\))").unwrap()
});

/// `#ifdef CONFIG_X` (or `#if IS_ENABLED(CONFIG_X)`) blocks that enclose
/// line `line` of `text`, innermost first.
fn ifdef_gates(text: &str, line: usize, rel: &str) -> Vec<(String, String)> {
    let mut stack: Vec<Option<(String, String)>> = Vec::new();
    for (i, l) in text.lines().enumerate().take(line.saturating_sub(1)) {
        // `# ifdef` and `#ifdef` alike.
        let t: String = l
            .trim_start()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let t = t.as_str();
        if let Some(c) = IF_CONFIG.captures(l) {
            let option = c
                .get(1)
                .or(c.get(2))
                .map(|m| m.as_str().to_string())
                .unwrap_or_default();
            stack.push(Some((option, format!("{rel}:{}", i + 1))));
        } else if t.starts_with("#if") {
            stack.push(None);
        } else if t.starts_with("#else") || t.starts_with("#elif") {
            if let Some(top) = stack.last_mut() {
                *top = None;
            }
        } else if t.starts_with("#endif") {
            stack.pop();
        }
    }
    stack.into_iter().rev().flatten().collect()
}

/// The file and 1-based line that define `symbol` (a global function or
/// variable, not a declaration).
fn find_definition(tree: &Path, arch_dir: &str, symbol: &str) -> Option<(PathBuf, usize)> {
    let definition = Regex::new(&format!(
        r"^(?:[A-Za-z_][\w\s\*]*[\s\*])?{}\s*(?:\(|=|\[|$)|^SYM_(?:FUNC|CODE)_START\w*\({}\)",
        regex::escape(symbol),
        regex::escape(symbol)
    ))
    .ok()?;
    let skip = [
        "Documentation",
        "tools",
        "samples",
        "scripts",
        "usr",
        ".git",
    ];
    let walker = WalkDir::new(tree).into_iter().filter_entry(|e| {
        let rel = e.path().strip_prefix(tree).unwrap_or(e.path());
        let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
        match (parts.next(), parts.next()) {
            (Some(first), _) if skip.contains(&first.as_ref()) => false,
            (Some(first), Some(second)) if first == "arch" => second == arch_dir,
            _ => true,
        }
    });
    for entry in walker.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file() || !(name.ends_with(".c") || name.ends_with(".S")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if !text.contains(symbol) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let is_decl = line.trim_end().ends_with(';')
                || line.starts_with("static")
                || line.starts_with('#');
            if !is_decl && definition.is_match(line) {
                return Some((entry.path().to_path_buf(), i + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifdef_blocks_enclosing_a_line() {
        let text = "#ifdef CONFIG_A\n#if 0\n#endif\n#if IS_ENABLED(CONFIG_B)\nint x;\nvoid f(void)\n#endif\n#endif\n";
        assert_eq!(
            ifdef_gates(text, 6, "f.c"),
            [
                ("B".to_string(), "f.c:4".to_string()),
                ("A".to_string(), "f.c:1".to_string())
            ]
        );
        let text = "#ifdef CONFIG_A\n#else\nvoid f(void)\n#endif\n";
        assert!(ifdef_gates(text, 3, "f.c").is_empty());
    }

    #[test]
    fn makefile_gates_follow_composites_and_directories() {
        let tree = std::env::temp_dir().join(format!("linkfix-{}", std::process::id()));
        std::fs::create_dir_all(tree.join("mm/sub")).unwrap();
        std::fs::write(tree.join("Makefile"), "obj-y += mm/\n").unwrap();
        std::fs::write(tree.join("mm/Makefile"), "obj-y := a.o \\\n\tb.o\nobj-$(CONFIG_MEMCG) += memcontrol.o\nobj-$(CONFIG_SUB) += sub/\n").unwrap();
        std::fs::write(
            tree.join("mm/sub/Makefile"),
            "obj-y += thing.o\nthing-y := part.o\n",
        )
        .unwrap();
        assert_eq!(
            makefile_gates(&tree, "mm/memcontrol.c"),
            [("MEMCG".to_string(), "mm/Makefile:3".to_string())]
        );
        assert_eq!(makefile_gates(&tree, "mm/b.c"), []);
        assert_eq!(
            makefile_gates(&tree, "mm/sub/part.c"),
            [("SUB".to_string(), "mm/Makefile:4".to_string())]
        );
        std::fs::remove_dir_all(&tree).unwrap();
    }
}

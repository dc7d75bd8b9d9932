//! The crate's layering, checked: each top-level module of xtask/src uses
//! only the modules below it (main.rs's doc comment draws the picture), and
//! every folder says in its mod.rs what it owns.

use std::{collections::BTreeSet, path::Path};

use regex::Regex;

/// Top down; a module may use those after it in this list, never before.
/// Modules that share a rank are siblings: neither uses the other.
const LAYERS: &[&[&str]] = &[
    &["cmd"],
    &["cli"],
    &["bench", "ci", "follow", "install"],
    &["guest", "analysis"],
    &["builder"],
    &["ctx"],
    &["kernel"],
    &["study"],
    &["util"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate modules `text` names (`crate::x`, `use crate::{x, y::z}`),
/// leaving out its `#[cfg(test)] mod tests`.
fn used_modules(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    let mut used = BTreeSet::new();
    let path = Regex::new(r"crate::(\w+)").unwrap();
    used.extend(path.captures_iter(text).map(|c| c[1].to_string()));
    let block = Regex::new(r"use crate::\{([^;]*)\};").unwrap();
    // Only the block's top level names a module: nested braces name items.
    for c in block.captures_iter(text) {
        let mut depth = 0;
        let mut word = String::new();
        for ch in c[1].chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                c if depth == 0 && (c.is_alphanumeric() || c == '_') => word.push(c),
                _ => {
                    if depth == 0 && !word.is_empty() {
                        used.insert(std::mem::take(&mut word));
                    }
                    word.clear();
                }
            }
        }
        if !word.is_empty() {
            used.insert(word);
        }
    }
    used
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(own) = rank(&top) else {
            assert_eq!(top, "main", "{}: a module in no layer", rel.display());
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        for used in used_modules(&text) {
            if let Some(theirs) = rank(&used) {
                if used != top && theirs <= own {
                    wrong.push(format!("{} uses {used}", rel.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_folder_says_what_it_owns() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
        let doc: Vec<&str> = text.lines().take_while(|l| l.starts_with("//!")).collect();
        assert!(
            doc.len() >= 3,
            "{}/mod.rs: open with a paragraph on what the folder owns and what it may use",
            dir.display()
        );
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    let used = used_modules(
        "use crate::{\n    cli,\n    ctx::{Ctx, Prepared},\n};\nfn f() { crate::util::x() }\n",
    );
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["cli", "ctx", "util"]);
    assert!(rank("cli") < rank("builder"));
}

/// Every `.rs` file under src/, with its path relative to src/ and its
/// text up to its `#[cfg(test)] mod tests` (or whole, for a tests file).
fn sources() -> Vec<(std::path::PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    walkdir::WalkDir::new(&src)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            let rel = e.path().strip_prefix(&src).unwrap().to_path_buf();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect()
}

fn is_test_file(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == "tests") || rel.ends_with("tests.rs")
}

/// The code of a file, without its unit tests.
fn code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or("")
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .map(|(rel, text)| (rel, text.lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .map(|(rel, lines)| format!("{}: {lines} lines", rel.display()))
        .collect();
    assert!(long.is_empty(), "split by concept:\n{}", long.join("\n"));
}

#[test]
fn commands_only_wire_the_layers() {
    let fat: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("cmd"))
        .map(|(rel, text)| (rel, code(&text).lines().count()))
        .filter(|(_, lines)| *lines > 150)
        .map(|(rel, lines)| format!("{}: {lines} lines", rel.display()))
        .collect();
    assert!(
        fat.is_empty(),
        "a command turns flags into calls of the layers and prints the results; \
         move the work a layer down:\n{}",
        fat.join("\n")
    );
}

/// `--dry-run` is one mechanism: only the command line reads the flag and
/// only the executor acts on it.
#[test]
fn dry_run_lives_in_the_executor() {
    let word = Regex::new(r"\bdry_run\b").unwrap();
    let outside: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| !rel.starts_with("util/exec") && !rel.starts_with("cli"))
        .filter(|(_, text)| word.is_match(code(text)))
        .map(|(rel, _)| rel.display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "these branch on dry_run; give the executor the effect instead:\n{}",
        outside.join("\n")
    );
}

/// Files are written, copied, moved and removed through the executor, so a
/// dry run writes nothing and every generated file is written atomically.
#[test]
fn files_are_written_through_the_executor() {
    let writes = Regex::new(
        r"fs::(write|copy|rename|create_dir_all|remove_dir_all|remove_file)\(|File::create\(|write_if_changed\(|copy_if_changed\(|unix::fs::symlink\(",
    )
    .unwrap();
    let mut outside = Vec::new();
    for (rel, text) in sources() {
        if rel.starts_with("util") || is_test_file(&rel) {
            continue;
        }
        for (n, line) in code(&text).lines().enumerate() {
            if writes.is_match(line) {
                outside.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "write through `Exec` (write, copy, rename, create_dir_all, remove_all, create):\n{}",
        outside.join("\n")
    );
}

/// A file name means one concept: two modules share one only when one is
/// a command (`cmd/NAME.rs`) and the other the layer's module it wires to.
#[test]
fn module_file_names_are_unique() {
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (rel, _) in sources() {
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        if name == "mod.rs" || name == "tests.rs" || is_test_file(&rel) {
            continue;
        }
        by_name
            .entry(name)
            .or_default()
            .push(rel.display().to_string());
    }
    let clashes: Vec<String> = by_name
        .into_iter()
        .filter(|(_, paths)| {
            let commands = paths.iter().filter(|p| p.starts_with("cmd/")).count();
            paths.len() > 2 || (paths.len() == 2 && commands != 1)
        })
        .map(|(name, paths)| format!("{name}: {}", paths.join(", ")))
        .collect();
    assert!(
        clashes.is_empty(),
        "one name, several concepts:\n{}",
        clashes.join("\n")
    );
}

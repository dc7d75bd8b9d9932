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
    &["bench", "ci", "install"],
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

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use super::*;

/// Counts at -O0: params `a`, `lost`, `n`, `out`, `x`; locals `tmp`,
/// `inner` (in a block), `calls` (static), `from_call`, `r`, `r` and
/// `wide` (in a block). Not counted: the file-scope `file_scope`, the
/// declarations `ext_decl` and `ext_fn` (and its parameter), the
/// parameter of the function pointer type, and `narrow` and `never`,
/// whose blocks gcc drops even at -O0 and so have no code.
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

int pick(long x)
{
	int r;
	switch (sizeof(x)) {
	case 1: { char narrow = x; r = narrow; break; }
	default: { long wide = x; r = wide; break; }
	}
	if (0) { int never = 3; r += never; }
	return r;
}
"#;
const PARAMS: usize = 5;
const LOCALS: usize = 7;
const ASM_SOURCE: &str = r#"
	.text
entry:
	ret
	.section .note.GNU-stack,"",@progbits
"#;

/// A fresh directory for one test of the dwarf module.
pub(super) fn scratch_dir(test: &str) -> PathBuf {
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
    let tag: String = flags
        .concat()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let object = source_path.with_extension(format!("{tag}.o"));
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
    let asm = compile(&dir, "entry.S", ASM_SOURCE, &[]);
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

/// Split DWARF (`-gsplit-dwarf`), DWARF 5 and 4: the object holds only a
/// skeleton unit, whose counts and producer come from its `.dwo` file.
/// Two such objects linked by `ld -r` have two skeletons, both followed;
/// moved to another directory with its `.dwo`, an object still finds it;
/// without it, the error names the missing file.
#[test]
fn split_dwarf_is_read_from_the_dwo_file() {
    let dir = scratch_dir("split");
    for flags in [
        &["-O0", "-gsplit-dwarf"][..],
        &["-O0", "-gsplit-dwarf", "-gdwarf-4"],
    ] {
        let object = compile(&dir, "t.c", SOURCE, flags);
        assert!(
            object.with_extension("dwo").is_file(),
            "gcc {flags:?} wrote no .dwo"
        );
        let summary = summarize(&object).unwrap();
        assert_eq!(summary.level, Some(Level::O0), "{flags:?}");
        assert_eq!(summary.units, 1, "{flags:?}");
        assert!(summary.producer.as_deref().unwrap().starts_with("GNU C"));
        assert_exact_o0_counts(&summary);
    }

    let o0 = compile(&dir, "t.c", SOURCE, &["-O0", "-gsplit-dwarf"]);
    let other = "int other(int b) { int c = b * 2; return c + 1; }\n";
    let o2 = compile(&dir, "u.c", other, &["-O2", "-gsplit-dwarf"]);
    let both = dir.join("both.o");
    let status = Command::new("ld")
        .arg("-r")
        .arg(&o0)
        .arg(&o2)
        .arg("-o")
        .arg(&both)
        .status()
        .expect("ld runs");
    assert!(status.success());
    let summary = summarize(&both).unwrap();
    assert_eq!(summary.units, 2);
    assert_eq!(summary.level, Some(Level::O0));
    assert_eq!(summary.params, PARAMS + 1, "{summary:?}");

    let moved = dir.join("moved");
    std::fs::create_dir(&moved).unwrap();
    for file in [o0.clone(), o0.with_extension("dwo")] {
        std::fs::rename(&file, moved.join(file.file_name().unwrap())).unwrap();
    }
    let moved_object = moved.join(o0.file_name().unwrap());
    assert_exact_o0_counts(&summarize(&moved_object).unwrap());

    std::fs::remove_file(moved_object.with_extension("dwo")).unwrap();
    let error = format!("{:#}", summarize(&moved_object).unwrap_err());
    let dwo_name = o0.with_extension("dwo");
    let dwo_name = dwo_name.file_name().unwrap().to_string_lossy();
    assert!(error.contains(&*dwo_name), "{error}");
    assert!(error.contains("split DWARF"), "{error}");
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
#[ignore = "a timing to read, not a check: run with --ignored"]
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

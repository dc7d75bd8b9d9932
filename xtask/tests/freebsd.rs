//! FreeBSD built on Linux (issue 35): the tool's own kernel-toolchain and
//! buildkernel on a FreeBSD tree, then the proof that every object got its
//! rule's level. The tree is the user's: these tests use the one
//! STUDY_FREEBSD_TREE names (a 15.1 tree, see docs/src/freebsd.md), and
//! without it are ignored, with that reason on a line of its own. The
//! build directory is cached under target/freebsd-test/; the first build
//! also fills the toolchain cache (target/freebsd-toolchain/).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::LazyLock,
};

use common::*;
use libtest_mimic::{Arguments, Trial};

const TREE_VAR: &str = "STUDY_FREEBSD_TREE";

fn tree() -> String {
    std::env::var(TREE_VAR).expect("checked in main")
}

fn build_dir() -> PathBuf {
    repo().join("target/freebsd-test/build-study")
}

fn args(command: &'static str) -> Vec<String> {
    vec![
        command.to_string(),
        "--kernel".to_string(),
        tree(),
        "--build-dir".to_string(),
        build_dir().display().to_string(),
    ]
}

fn run(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    xtask(&args)
}

/// One build for every test of this file.
static BUILT: LazyLock<()> = LazyLock::new(|| {
    let out = run(&args("build"));
    assert!(out.status.success(), "{}", text(&out));
});

/// The rules, read from study.toml by this test (toml, not the tool's
/// reader): each path and its level, the default level.
fn rules() -> (String, Vec<(String, String)>) {
    let doc: toml::Table = shipped_profiles().parse().unwrap();
    let opt = &doc["os"]["freebsd"]["optimization"];
    let default = opt["default"].as_str().unwrap().to_string();
    let paths = opt["paths"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(p, l)| (p.clone(), l.as_str().unwrap().to_string()))
        .collect();
    (default, paths)
}

/// The level `source` (from the tree's top) should get: the most specific
/// rule that covers it, else the default.
fn level_for(source: &str, rules: &(String, Vec<(String, String)>)) -> String {
    rules
        .1
        .iter()
        .filter(|(p, _)| source == p || source.starts_with(&format!("{p}/")))
        .max_by_key(|(p, _)| p.len())
        .map_or(rules.0.clone(), |(_, l)| l.clone())
}

/// readelf's DW_AT_name and DW_AT_producer of an object's first unit.
fn unit(object: &Path) -> Option<(String, String)> {
    let out = Command::new("readelf")
        .args(["--debug-dump=info", "--dwarf-depth=1"])
        .arg(object)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |attr: &str| {
        text.lines()
            .find(|l| l.contains(attr))
            .and_then(|l| l.rsplit("): ").next())
            .map(|v| v.trim().to_string())
    };
    Some((value("DW_AT_name")?, value("DW_AT_producer")?))
}

fn builds_and_opt_report_check_passes() {
    let _serial = serial();
    LazyLock::force(&BUILT);
    for image in ["kernel.full", "kernel"] {
        assert!(build_dir().join(image).is_file(), "no {image} at the top");
    }
    let mut check = args("opt-report");
    check.push("--check".into());
    let out = run(&check);
    assert!(out.status.success(), "{}", text(&out));
}

/// The level of the objects under each rule, and of a sample of the rest,
/// read by readelf from each object's DW_AT_producer (-grecord-command-line:
/// the last -O on it) against the rules read from study.toml here.
fn dwarf_levels_are_the_rules() {
    let _serial = serial();
    LazyLock::force(&BUILT);
    let rules = rules();
    let tree = Path::new(&tree()).canonicalize().unwrap();
    let objdir = build_dir().join("obj/STUDY");
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&objdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    objects.sort();
    let (mut at_o0, mut others, mut wrong) = (0, 0, Vec::new());
    for object in &objects {
        let Some((name, producer)) = unit(object) else {
            continue;
        };
        // The kernel's reproducible-build prefix map (sys/conf/kern.post.mk)
        // names every source from /usr/src.
        let Some(source) = ["/usr/src".as_ref(), tree.as_path()]
            .iter()
            .find_map(|top| Path::new(&name).strip_prefix(top).ok())
        else {
            continue;
        };
        let source = source.display().to_string();
        let want = level_for(&source, &rules);
        let ruled = want != rules.0;
        // Every ruled object; one in ten of the rest.
        if !ruled && others % 10 != 0 {
            others += 1;
            continue;
        }
        let last = producer
            .split_whitespace()
            .rev()
            .find(|w| w.starts_with("-O"))
            .unwrap_or("none");
        if last != format!("-{want}") {
            wrong.push(format!("{source}: {last}, its rule says -{want}"));
        }
        if ruled {
            at_o0 += 1;
        } else {
            others += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(at_o0 > 50, "only {at_o0} objects under the rules");
    assert!(others > 100, "only {others} objects at the default");
}

/// The last -O of an object's DW_AT_producer.
fn level_of(object: &Path) -> String {
    let (_, producer) = unit(object).expect("DWARF");
    producer
        .split_whitespace()
        .rev()
        .find(|w| w.starts_with("-O"))
        .unwrap_or("none")
        .to_string()
}

/// BSD make does not rebuild an object whose flags alone changed: the tool
/// removes it. A rule added for one file rebuilds that object at its level
/// and leaves the others as they were; taken away, the object goes back.
fn a_rule_change_rebuilds_that_object_only() {
    let _serial = serial();
    LazyLock::force(&BUILT);
    let objdir = build_dir().join("obj/STUDY");
    let (changed, other) = (objdir.join("uipc_usrreq.o"), objdir.join("tcp_output.o"));
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let other_before = mtime(&other);
    assert_eq!(level_of(&changed), "-Og");
    let profiles = repo().join("target/freebsd-test/study.toml");
    let profile_text = shipped_profiles().replace(
        "\"sys/kern/uipc_sockbuf.c\" = \"O0\"\n",
        "\"sys/kern/uipc_sockbuf.c\" = \"O0\"\n\"sys/kern/uipc_usrreq.c\" = \"O0\"\n",
    );
    assert_ne!(
        profile_text,
        shipped_profiles(),
        "the fixture's anchor moved"
    );
    std::fs::write(&profiles, profile_text).unwrap();
    let mut with_rule = vec!["--profiles".to_string(), profiles.display().to_string()];
    with_rule.extend(args("build"));
    let out = run(&with_rule);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("build: 1 object(s) whose flags changed removed"),
        "{}",
        text(&out)
    );
    assert_eq!(level_of(&changed), "-O0");
    assert_eq!(mtime(&other), other_before, "tcp_output.o was rebuilt");
    let out = run(&args("build"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(level_of(&changed), "-Og");
}

/// `--dry-run` prints make.py's command lines and writes nothing.
fn dry_run_prints_make_py_and_writes_nothing() {
    let dir = repo().join("target/freebsd-test/dry-run");
    let mut a = vec!["--dry-run".to_string()];
    a.extend(args("build"));
    a[5] = dir.display().to_string();
    let out = run(&a);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tools/build/make.py --cross-bindir=") && stderr.contains(" buildkernel "),
        "{stderr}"
    );
    assert!(!dir.exists(), "a dry run wrote {}", dir.display());
}

fn main() {
    let args = Arguments::from_args();
    let missing = std::env::var_os(TREE_VAR).is_none();
    if missing {
        eprintln!(
            "skipped: every test of tests/freebsd.rs: {TREE_VAR} names no FreeBSD tree \
             (set it to a 15.1 tree: docs/src/freebsd.md says how to get one)"
        );
    }
    let trials: Vec<Trial> = vec![
        trial(
            "dry_run_prints_make_py_and_writes_nothing",
            dry_run_prints_make_py_and_writes_nothing,
        ),
        trial(
            "builds_and_opt_report_check_passes",
            builds_and_opt_report_check_passes,
        ),
        trial("dwarf_levels_are_the_rules", dwarf_levels_are_the_rules),
        trial(
            "a_rule_change_rebuilds_that_object_only",
            a_rule_change_rebuilds_that_object_only,
        ),
    ]
    .into_iter()
    .map(|t| t.with_ignored_flag(missing))
    .collect();
    libtest_mimic::run(&args, trials).exit();
}

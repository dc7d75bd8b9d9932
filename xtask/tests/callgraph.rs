//! `callgraph` on the cached `tiny` build: the static graph against an
//! independent read of the same vmlinux (objdump's call instructions), its
//! index made again only when vmlinux changes, and a run's overlay against
//! the raw trace of that run.

mod common;

use std::collections::BTreeSet;

use common::*;
use regex::Regex;

fn graph(args: &[&str]) -> serde_json::Value {
    let mut all = on_tiny("callgraph");
    all.extend(args);
    all.extend(["--format", "json"]);
    let out = xtask(&all);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn callees_are_the_call_instructions_of_the_function() {
    let _serial = serial();
    let dir = tiny_build();
    let function = "tcp_write_xmit";
    let json = graph(&[function, "--depth", "1"]);
    let (expected, indirect) = objdump_calls("objdump", &dir.join("vmlinux"), function);
    assert!(!expected.is_empty(), "objdump found no call in {function}");
    let edges = json["edges"].as_array().unwrap();
    let ours: BTreeSet<String> = edges
        .iter()
        .filter(|e| e["from"] == function && !e["tail"].as_bool().unwrap())
        .filter_map(|e| e["to"].as_str().map(String::from))
        .collect();
    assert_eq!(ours, expected, "direct callees of {function}");
    let ours_indirect = edges
        .iter()
        .filter(|e| e["from"] == function && e["to"].is_null())
        .count();
    assert_eq!(ours_indirect, indirect, "indirect call sites of {function}");
    // Each call site names a line of the function's own file (or of a
    // header inlined into it).
    for e in edges.iter().filter(|e| e["from"] == function) {
        for site in e["sites"].as_array().unwrap() {
            let (file, line) = (site[0].as_str().unwrap(), site[1].as_u64().unwrap());
            assert!(line > 0, "{e}");
            assert!(
                file.ends_with("tcp_output.c") || file.ends_with(".h"),
                "{function}'s call site in {file}"
            );
        }
    }
    assert!(
        json["left_out"]["__fentry__"].as_u64().unwrap() > 0,
        "the output says what it left out"
    );
}

#[test]
fn callers_are_the_functions_that_call_it() {
    let _serial = serial();
    let dir = tiny_build();
    // tcp_write_xmit's first direct callee, and who calls that.
    let (callees, _) = objdump_calls("objdump", &dir.join("vmlinux"), "tcp_write_xmit");
    let callee = callees.iter().next().unwrap();
    let json = graph(&[callee, "--callers", "--depth", "1"]);
    let callers: BTreeSet<&str> = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == callee.as_str())
        .map(|e| e["from"].as_str().unwrap())
        .collect();
    assert!(
        callers.contains("tcp_write_xmit"),
        "{callee}'s callers: {callers:?}"
    );
    for caller in &callers {
        let (theirs, _) = objdump_calls("objdump", &dir.join("vmlinux"), caller);
        assert!(theirs.contains(callee), "{caller} does not call {callee}");
    }
}

#[test]
fn the_index_is_made_again_only_when_vmlinux_changes() {
    let _serial = serial();
    let dir = tiny_build();
    let vmlinux = dir.join("vmlinux");
    let indexing = |out: &std::process::Output| text(out).contains("callgraph: indexing");
    let mut args = on_tiny("callgraph");
    args.extend(["tcp_write_xmit", "--depth", "1"]);
    xtask(&args);
    let again = xtask(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(!indexing(&again), "{}", text(&again));
    let file = std::fs::File::options()
        .append(true)
        .open(&vmlinux)
        .unwrap();
    let mtime = file.metadata().unwrap().modified().unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    let changed = xtask(&args);
    file.set_modified(mtime).unwrap();
    assert!(changed.status.success(), "{}", text(&changed));
    assert!(indexing(&changed), "{}", text(&changed));
}

#[test]
fn an_unknown_function_is_one_line() {
    let _serial = serial();
    tiny_build();
    let mut args = on_tiny("callgraph");
    args.push("tcp_write_xmitt");
    let out = xtask(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("tcp_write_xmit"),
        "the nearest name: {stderr}"
    );
}

/// The run's overlay marks a function reached exactly when the raw trace
/// of that run has it, and names what the run took through indirect sites.
#[test]
fn the_overlay_is_what_the_trace_holds() {
    let _serial = serial();
    tiny_build();
    let raw = std::env::temp_dir().join(format!("callgraph-trace-{}.txt", std::process::id()));
    let raw_arg = raw.display().to_string();
    let mut args = on_tiny("callgraph");
    args.extend(["tcp_sendmsg", "--depth", "3", "--run", "--format", "json"]);
    args.extend(["--trace-output", &raw_arg]);
    args.extend(["--", "tcp-echo", "-4", "-n", "1"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace = std::fs::read_to_string(&raw).unwrap();
    std::fs::remove_file(&raw).unwrap();
    let call = Regex::new(r"\|\s+([A-Za-z_][A-Za-z0-9_]*)(?:\.[a-z]+\.\d+)*\(\)").unwrap();
    let traced: BTreeSet<String> = call
        .captures_iter(&trace)
        .map(|c| c[1].to_string())
        .collect();
    assert!(traced.contains("tcp_sendmsg"), "{trace}");
    let mut reached = 0;
    for f in json["functions"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let marked = !f["reached"].is_null();
        assert_eq!(marked, traced.contains(name), "{name}: reached {marked}");
        reached += usize::from(marked);
        if !f["traceable"].as_bool().unwrap() {
            assert!(!marked, "{name} is not traceable, yet the trace has it");
        }
    }
    assert!(reached > 1, "the run reached more than tcp_sendmsg");
    // What the run took through an indirect site is a function it called.
    for e in json["edges"].as_array().unwrap() {
        for taken in e["taken"].as_array().into_iter().flatten() {
            assert!(traced.contains(taken.as_str().unwrap()), "{e}");
        }
    }
}

#[test]
fn svg_is_the_dot_drawn_by_graphviz() {
    let _serial = serial();
    tiny_build();
    let svg = std::env::temp_dir().join(format!("callgraph-{}.svg", std::process::id()));
    let svg_arg = svg.display().to_string();
    let mut args = on_tiny("callgraph");
    args.extend([
        "tcp_write_xmit",
        "--depth",
        "1",
        "--format",
        "svg",
        "-o",
        &svg_arg,
    ]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert!(drawn.contains("<svg"), "{drawn}");
    assert!(drawn.contains("tcp_write_xmit"), "the root is drawn");
}

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
        .filter(|e| e["from"] == function && e["kind"] == "direct")
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
    // What the run took at an indirect site is a function it called, and
    // among the site's candidates, or the site is one the tool could not
    // name (said here by name); placed at this site only when no other site
    // of the function lists it.
    let edges = json["edges"].as_array().unwrap();
    let lists = |e: &serde_json::Value, name: &str| {
        e["candidates"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == name))
    };
    let mut placed = 0;
    for e in edges.iter().filter(|e| e["to"].is_null()) {
        for took in e["taken"].as_array().into_iter().flatten() {
            let name = took["function"].as_str().unwrap();
            assert!(traced.contains(name), "{e}");
            assert!(took["calls"].as_u64().unwrap() > 0, "{e}");
            // Drawn as its own kind of edge, apart from what the site can call.
            let drawn = |kind: &str| {
                edges
                    .iter()
                    .any(|d| d["kind"] == kind && d["from"] == e["from"] && d["to"] == name)
            };
            assert!(drawn("did call"), "no `did call` edge to {name}: {e}");
            assert_eq!(
                drawn("can call"),
                lists(e, name) || {
                    let from = e["from"].clone();
                    edges.iter().any(|o| o["from"] == from && lists(o, name))
                },
                "{name}: {e}"
            );
            if lists(e, name) {
                placed += 1;
            } else if let Some(why) = e["unnamed"].as_str() {
                eprintln!("{name} taken at {} (member not named: {why})", e["sites"]);
            } else {
                // A named site that does not list it: the tool knows of no
                // store of it into that member (a local's initializer, as
                // `DEFINE_WAIT_FUNC` writes one, is not read): said here.
                let callers = graph(&[name, "--callers", "--depth", "1"]);
                let through = e["through"].to_string();
                for s in ["stored", "stored_by_code"] {
                    for s in callers[s].as_array().unwrap() {
                        let member = s["member"].as_str().unwrap_or("?");
                        assert!(!through.contains(member), "{name} in {member}: {e}");
                    }
                }
                eprintln!(
                    "{name} taken at {} through {through}: stored where the tool does not read",
                    e["sites"]
                );
            }
            let others = edges
                .iter()
                .filter(|o| o["to"].is_null() && o["from"] == e["from"] && o["sites"] != e["sites"])
                .filter(|o| lists(o, name))
                .count();
            assert_eq!(
                took["sure"].as_bool().unwrap() && lists(e, name),
                lists(e, name) && others == 0,
                "{e}"
            );
        }
    }
    assert!(
        placed > 0,
        "no run's target placed among a site's candidates"
    );
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

/// Functions called only through a pointer list where their address is
/// stored (`ip_rcv` in `ip_packet_type.func`, `tcp_v4_do_rcv` in
/// `tcp_prot.backlog_rcv`), each entry checked against the relocation
/// `readelf -r` shows in the object that defines the variable and against
/// gdb's reading of the same slot in vmlinux. Reads the cached build
/// without building it.
#[test]
fn where_a_functions_address_is_stored_is_among_its_callers() {
    let _serial = serial();
    let dir = cache().join("build-tiny");
    assert!(dir.join("vmlinux").is_file(), "no tiny build in the cache");
    let vmlinux = dir.join("vmlinux");
    for function in [
        "ip_rcv",
        "tcp_v4_do_rcv",
        "ip_queue_xmit",
        "inet6_csk_xmit",
        "tcp_sendmsg",
    ] {
        let json = graph(&[function, "--callers", "--depth", "1"]);
        let stored = json["stored"].as_array().unwrap();
        assert!(!stored.is_empty(), "{function}: no stored address: {json}");
        for s in stored {
            let variable = s["variable"].as_str().unwrap();
            let offset = s["offset"].as_u64().unwrap();
            let member = s["member"].as_str().unwrap_or_else(|| panic!("{s}"));
            let file = s["file"].as_str().unwrap();
            assert!(s["line"].as_u64().unwrap() > 0, "{s}");
            let object = dir.join(file).with_extension("o");
            // The object's relocation at the variable's slot names the
            // function (or its section at the function's offset).
            let symbols = readelf(&["-sW"], &object);
            let symbol = |name: &str, kind: &str| -> Option<(u64, String)> {
                symbols.lines().find_map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    (w.len() == 8 && w[7] == name && w[3] == kind)
                        .then(|| (u64::from_str_radix(w[1], 16).unwrap(), w[6].to_string()))
                })
            };
            let (at, ndx) = symbol(variable, "OBJECT").unwrap_or_else(|| panic!("{variable}"));
            let section = section_name(&object, &ndx);
            let relocations = readelf(&["-rW"], &object);
            let mut in_section = false;
            let mut found = None;
            for l in relocations.lines() {
                if l.starts_with("Relocation section") {
                    in_section = l.contains(&format!("'.rela{section}'"));
                    continue;
                }
                let w: Vec<&str> = l.split_whitespace().collect();
                if in_section && w.len() >= 7 && u64::from_str_radix(w[0], 16) == Ok(at + offset) {
                    found = Some((w[4].to_string(), w[6].to_string()));
                }
            }
            let (target, addend) =
                found.unwrap_or_else(|| panic!("{object:?}: no relocation at {variable}+{offset}"));
            let addend = u64::from_str_radix(&addend, 16).unwrap();
            match target.starts_with('.') {
                false => assert_eq!((target.as_str(), addend), (function, 0), "{s}"),
                true => assert_eq!(symbol(function, "FUNC").map(|f| f.0), Some(addend), "{s}"),
            }
            // gdb, on vmlinux: the member path, from the variable, is the
            // slot, and holds the function.
            let path = member.split_once('.').unwrap().1;
            let out = std::process::Command::new("gdb")
                .args(["-nx", "-batch", "-ex"])
                .arg(format!("print &{variable}.{path}"))
                .arg("-ex")
                .arg(format!("print {variable}.{path}"))
                .arg(&vmlinux)
                .output()
                .unwrap();
            let gdb = String::from_utf8_lossy(&out.stdout);
            let place = match offset {
                0 => format!("<{variable}>"),
                n => format!("<{variable}+{n}>"),
            };
            assert!(gdb.contains(&place), "gdb says {gdb} for {s}");
            assert!(
                gdb.contains(&format!("<{function}>")),
                "gdb says {gdb} for {s}"
            );
            // The sites that call through the member: each on a line of
            // the tree that names the member.
            let leaf = member.rsplit('.').next().unwrap();
            for site in s["called_from"].as_array().unwrap() {
                let (file, line) = (site[1].as_str().unwrap(), site[2].as_u64().unwrap());
                let text = std::fs::read_to_string(kernel().join(file)).unwrap();
                let text = text.lines().nth(line as usize - 1).unwrap();
                assert!(text.contains(leaf), "{site}: {text}");
            }
        }
        if function == "ip_rcv" {
            // `__netif_receive_skb_core` delivers through `pt_prev->func`.
            let sites = json["stored"][0]["called_from"].to_string();
            assert!(sites.contains("net/core/dev.c"), "{sites}");
        }
    }
}

/// `__tcp_transmit_skb` calls through `icsk->icsk_af_ops->queue_xmit`: that
/// site (found by its line in the tree) is named, and its candidates are
/// `ip_queue_xmit`, and `inet6_csk_xmit` when the build has IPv6 (its
/// .config); gdb on vmlinux finds each candidate in that member of a
/// variable its callers name.
#[test]
fn an_indirect_site_lists_the_functions_stored_in_its_member() {
    let _serial = serial();
    let dir = cache().join("build-tiny");
    assert!(dir.join("vmlinux").is_file(), "no tiny build in the cache");
    let tree = kernel();
    let function = "__tcp_transmit_skb";
    let json = graph(&[function, "--depth", "1"]);
    let source_line = |file: &str, line: u64| -> String {
        let text = std::fs::read_to_string(tree.join(file)).unwrap_or_default();
        text.lines()
            .nth(line as usize - 1)
            .unwrap_or("")
            .to_string()
    };
    let indirect: Vec<&serde_json::Value> = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == function && e["to"].is_null())
        .collect();
    let site = indirect
        .iter()
        .find(|e| {
            let s = &e["sites"][0];
            source_line(s[0].as_str().unwrap(), s[1].as_u64().unwrap()).contains("->queue_xmit")
        })
        .unwrap_or_else(|| panic!("no indirect site of {function} on a `->queue_xmit` line"));
    let through: Vec<&str> = site["through"]
        .as_array()
        .unwrap_or_else(|| panic!("not named: {site}"))
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(through, ["struct inet_connection_sock_af_ops.queue_xmit"]);
    let candidates: BTreeSet<&str> = site["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(candidates.contains("ip_queue_xmit"), "{candidates:?}");
    // Each candidate is a `can call` edge of its own kind from that site.
    let can_call: BTreeSet<&str> = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "can call" && e["from"] == function)
        .filter(|e| e["sites"] == site["sites"])
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(can_call, candidates);
    let ipv6 = dot_config(&dir).get("IPV6").is_some_and(|v| v == "y");
    assert_eq!(
        candidates.contains("inet6_csk_xmit"),
        ipv6,
        "{candidates:?}"
    );
    for candidate in &candidates {
        let callers = graph(&[candidate, "--callers", "--depth", "1"]);
        let variables: Vec<&str> = callers["stored"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["member"] == through[0])
            .map(|s| s["variable"].as_str().unwrap())
            .collect();
        assert!(!variables.is_empty(), "{candidate}: {callers}");
        for variable in variables {
            let out = std::process::Command::new("gdb")
                .args(["-nx", "-batch", "-ex"])
                .arg(format!("print {variable}.queue_xmit"))
                .arg(dir.join("vmlinux"))
                .output()
                .unwrap();
            let gdb = String::from_utf8_lossy(&out.stdout);
            assert!(gdb.contains(&format!("<{candidate}>")), "gdb: {gdb}");
        }
    }
    // Every indirect site is named or says why not.
    for e in indirect {
        assert!(e["through"].is_array() != e["unnamed"].is_string(), "{e}");
    }
}

/// Functions whose address code stores into a member (`sk->sk_destruct =
/// inet_sock_destruct` in `inet_create`, `sk->sk_data_ready =
/// sock_def_readable`): each entry's store is an instruction of the
/// storing function that `readelf -r` shows a relocation to the function
/// in, in the object that defines it, and its line stores into the member.
#[test]
fn where_code_stores_a_functions_address_is_among_its_callers() {
    let _serial = serial();
    let dir = cache().join("build-tiny");
    assert!(dir.join("vmlinux").is_file(), "no tiny build in the cache");
    for (function, by) in [
        ("inet_sock_destruct", "inet_create"),
        ("sock_def_readable", "sock_init_data_uid"),
    ] {
        let json = graph(&[function, "--callers", "--depth", "1"]);
        let stores = json["stored_by_code"].as_array().unwrap();
        let store = stores
            .iter()
            .find(|s| s["by"] == by)
            .unwrap_or_else(|| panic!("{function}: no store by {by}: {stores:?}"));
        for s in stores.iter().filter(|s| s["into"] == "member") {
            let text = source_line(s);
            let member = s["member"].as_str().unwrap_or_else(|| panic!("{s}"));
            let leaf = member.rsplit('.').next().unwrap();
            assert!(text.contains(leaf) && text.contains('='), "{s}: {text}");
        }
        let named = store_relocations(&dir, store, 15);
        assert!(
            named.iter().any(|r| r.name == function),
            "{store}: relocations to {named:?}, not {function}"
        );
    }
}

/// Stores into a global and into a local's initializer, read from the
/// DWARF of the storing function's unit, against the relocations of its
/// object and gdb on vmlinux: `tcp_v4_rcv` into
/// `net_hotdata.tcp_protocol.handler` by `inet_init`, `csum_partial_ext`
/// into `skb_checksum`'s local `ops.update`, `no_blink` into the global
/// pointer `panic_blink`; each listed at the sites that call through it.
/// And both arms of `skb->destructor = ... ? __sock_wfree : tcp_wfree`
/// (the first was missed: the decoder lost a register's value at the
/// jump that joins them).
#[test]
fn where_code_stores_into_a_global_or_a_local_is_among_its_callers() {
    let _serial = serial();
    let dir = cache().join("build-tiny");
    let vmlinux = dir.join("vmlinux");
    assert!(vmlinux.is_file(), "no tiny build in the cache");
    let store_of = |function: &str, by: &str, into: &str| -> serde_json::Value {
        let json = graph(&[function, "--callers", "--depth", "1"]);
        let stores = json["stored_by_code"].as_array().unwrap();
        let found = stores.iter().find(|s| s["by"] == by && s["into"] == into);
        found
            .unwrap_or_else(|| panic!("{function}: no store by {by} into a {into}: {stores:?}"))
            .clone()
    };
    let called_from = |s: &serde_json::Value, caller: &str| {
        let sites = s["called_from"].as_array().unwrap();
        assert!(sites.iter().any(|c| c[0] == caller), "{caller} not in {s}");
    };

    // A global: `movq $tcp_v4_rcv, net_hotdata+OFF(%rip)`, whose two
    // relocations name the function (the immediate, the instruction's
    // last 4 bytes) and the variable (PC-relative, from the end).
    let s = store_of("tcp_v4_rcv", "inet_init", "global");
    let relocations = store_relocations(&dir, &s, 15);
    let function_at = relocations.iter().find(|r| r.name == "tcp_v4_rcv");
    let function_at = function_at
        .unwrap_or_else(|| panic!("{relocations:?}"))
        .offset;
    let variable = relocations
        .iter()
        .find(|r| r.kind == "R_X86_64_PC32")
        .unwrap();
    assert_eq!(variable.name, s["variable"].as_str().unwrap(), "{s}");
    let offset = variable.addend + (function_at + 4 - variable.offset) as i64;
    assert_eq!(Some(offset), s["offset"].as_i64(), "{s}");
    let slot = s["slot"].as_str().unwrap();
    let gdb = gdb_batch(&vmlinux, &[format!("print &{slot}")]);
    assert!(
        gdb.contains(&format!("<{}+{offset}>", variable.name)),
        "{gdb}"
    );
    assert_eq!(s["member"], "struct net_protocol.handler");
    called_from(&s, "ip_protocol_deliver_rcu");
    let json = graph(&["ip_protocol_deliver_rcu", "--depth", "1"]);
    let listed = json["edges"].as_array().unwrap().iter().any(|e| {
        e["through"]
            .to_string()
            .contains("struct net_protocol.handler")
            && e["candidates"].to_string().contains("\"tcp_v4_rcv\"")
    });
    assert!(listed, "the handler site does not list tcp_v4_rcv: {json}");

    // A local: gdb's `info scope` gives `ops` at `DW_OP_fbreg N`, length
    // L; the store is in it, at the member's offset in its type.
    let s = store_of("csum_partial_ext", "skb_checksum", "local");
    let (variable, member) = (
        s["variable"].as_str().unwrap(),
        s["member"].as_str().unwrap(),
    );
    let (ty, leaf) = member.rsplit_once('.').unwrap();
    let gdb = gdb_batch(
        &vmlinux,
        &[
            "info scope skb_checksum".to_string(),
            format!("print (long)&(({ty} *)0)->{leaf}"),
        ],
    );
    let scope = Regex::new(&format!(
        r"Symbol {variable} is .*:\s+0: DW_OP_fbreg (-?\d+)\s+, length (\d+)\."
    ))
    .unwrap();
    let c = scope.captures(&gdb).unwrap_or_else(|| panic!("{gdb}"));
    let (start, length): (i64, i64) = (c[1].parse().unwrap(), c[2].parse().unwrap());
    let in_type: i64 = gdb
        .lines()
        .last()
        .unwrap()
        .split(" = ")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let frame = s["offset"].as_i64().unwrap();
    assert!((start..start + length).contains(&frame), "{s}: {gdb}");
    assert_eq!(frame - start, in_type, "{s}: {gdb}");
    assert_eq!(s["slot"], format!("{variable}.{leaf}"));
    let named = store_relocations(&dir, &s, 15);
    assert!(
        named.iter().any(|r| r.name == "csum_partial_ext"),
        "{named:?}"
    );
    called_from(&s, "__skb_checksum");

    // A global that is itself the pointer, called through at its line.
    let s = store_of("no_blink", "vpanic", "global");
    let gdb = gdb_batch(&vmlinux, &["ptype panic_blink".to_string()]);
    assert!(gdb.contains("(*)("), "not a function pointer: {gdb}");
    assert_eq!(s["slot"], "panic_blink");
    called_from(&s, "vpanic");
    for site in s["called_from"].as_array().unwrap() {
        let text = std::fs::read_to_string(kernel().join(site[1].as_str().unwrap())).unwrap();
        let line = text
            .lines()
            .nth(site[2].as_u64().unwrap() as usize - 1)
            .unwrap();
        assert!(line.contains("panic_blink("), "{site}: {line}");
    }

    // Both arms of the `?:`: one store instruction, and each function's
    // relocation in the storing function's code (readelf -s's size).
    let sock = store_of("__sock_wfree", "__tcp_transmit_skb", "member");
    let tcp = store_of("tcp_wfree", "__tcp_transmit_skb", "member");
    assert_eq!(sock["site"], tcp["site"]);
    assert_eq!(sock["member"], "struct sk_buff.destructor");
    let text = source_line(&sock);
    assert!(
        text.contains("__sock_wfree") && text.contains("tcp_wfree"),
        "{text}"
    );
    let named = store_relocations(&dir, &sock, u64::MAX);
    assert!(named.iter().any(|r| r.name == "__sock_wfree"), "{named:?}");
    called_from(&sock, "skb_release_head_state");
}

/// The source line of a store.
fn source_line(s: &serde_json::Value) -> String {
    let (file, line) = (s["file"].as_str().unwrap(), s["line"].as_u64().unwrap());
    let text = std::fs::read_to_string(kernel().join(file)).unwrap();
    text.lines().nth(line as usize - 1).unwrap().to_string()
}

#[derive(Debug)]
struct Relocation {
    offset: u64,
    kind: String,
    /// The symbol, or the function at a section symbol's addend.
    name: String,
    addend: i64,
}

/// The relocations in the `within` bytes from a code store's instruction
/// (`u64::MAX`: in the storing function's code), in the object of its
/// source file (`readelf -r`), the function's place there found by its
/// symbol in the object and in vmlinux (`readelf -s`).
fn store_relocations(
    dir: &std::path::Path,
    store: &serde_json::Value,
    within: u64,
) -> Vec<Relocation> {
    let func = |symbols: &str, name: &str| -> Option<(u64, u64, String)> {
        symbols.lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 8 && w[7] == name && w[3] == "FUNC").then(|| {
                let at = u64::from_str_radix(w[1], 16).unwrap();
                (at, w[2].parse().unwrap(), w[6].to_string())
            })
        })
    };
    let by = store["by"].as_str().unwrap();
    let object = dir
        .join(store["file"].as_str().unwrap())
        .with_extension("o");
    let symbols = readelf(&["-sW"], &object);
    let (in_vmlinux, ..) = func(&readelf(&["-sW"], &dir.join("vmlinux")), by).unwrap();
    let (in_object, size, ndx) = func(&symbols, by).unwrap();
    let (from, to) = match within {
        u64::MAX => (in_object, in_object + size),
        n => {
            let at = in_object + store["site"].as_u64().unwrap() - in_vmlinux;
            (at, at + n)
        }
    };
    let section = section_name(&object, &ndx);
    let mut in_section = false;
    let mut out = Vec::new();
    for l in readelf(&["-rW"], &object).lines() {
        if l.starts_with("Relocation section") {
            in_section = l.contains(&format!("'.rela{section}'"));
            continue;
        }
        let w: Vec<&str> = l.split_whitespace().collect();
        let Some(offset) = w.first().and_then(|o| u64::from_str_radix(o, 16).ok()) else {
            continue;
        };
        if !in_section || w.len() < 7 || !(from..to).contains(&offset) {
            continue;
        }
        let addend = i64::from_str_radix(w[6], 16).unwrap() * if w[5] == "-" { -1 } else { 1 };
        let name = match w[4].starts_with('.') && w[2] != "R_X86_64_PC32" {
            false => w[4].to_string(),
            true => symbols
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 8 && f[3] == "FUNC" && i64::from_str_radix(f[1], 16) == Ok(addend))
                        .then(|| f[7].to_string())
                })
                .unwrap_or_default(),
        };
        out.push(Relocation {
            offset,
            kind: w[2].to_string(),
            name,
            addend,
        });
    }
    out
}

fn gdb_batch(vmlinux: &std::path::Path, commands: &[String]) -> String {
    let mut gdb = std::process::Command::new("gdb");
    gdb.args(["-nx", "-batch", "-iex", "set auto-load no"]);
    for c in commands {
        gdb.arg("-ex").arg(c);
    }
    let out = gdb.arg(vmlinux).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The name of section number `ndx` (readelf -s's Ndx) in `object`, from
/// readelf -S.
fn section_name(object: &std::path::Path, ndx: &str) -> String {
    readelf(&["-SW"], object)
        .lines()
        .find_map(|l| {
            let l = l.trim_start().strip_prefix('[')?;
            let (n, rest) = l.split_once(']')?;
            (n.trim() == ndx).then(|| rest.split_whitespace().next().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no section {ndx} in {}", object.display()))
}

fn readelf(args: &[&str], object: &std::path::Path) -> String {
    let out = std::process::Command::new("readelf")
        .args(args)
        .arg(object)
        .output()
        .unwrap();
    assert!(out.status.success(), "readelf {args:?} {object:?}");
    String::from_utf8(out.stdout).unwrap()
}

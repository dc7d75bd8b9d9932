//! clangd on the study tree, with the real clangd: after `config --clangd`
//! on the cached `tiny` build, `clangd --check` finds the compile commands
//! by itself from beside the tree and reports 0 errors, and a
//! go-to-definition (clangd driven over LSP, as an editor drives it) from
//! the `tcp_sendmsg_locked` call lands on its definition in
//! net/ipv4/tcp.c. Once with Debian's `clangd` and once with the newest
//! `clangd-N` on PATH; a clangd that is absent is an ignored test, with the
//! reason.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use common::{cache, mtimes, on_tiny, serial, text, tiny_build, xtask};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

/// `clangd` and the newest `clangd-N` on PATH that is another program.
fn clangds() -> Vec<(String, Option<PathBuf>)> {
    let on_path = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    let plain = on_path("clangd");
    let newest = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u32 = name.strip_prefix("clangd-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n);
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    let mut out = vec![("clangd".to_string(), plain.clone())];
    match newest {
        Some((n, path)) if plain.as_deref().and_then(real) != real(&path) => {
            out.push((format!("clangd-{n}"), Some(path)))
        }
        Some(_) => {}
        None => out.push(("clangd-N".to_string(), None)),
    }
    out
}

/// The tree of the cached build, as the compile commands name it.
fn tree() -> PathBuf {
    std::fs::canonicalize(cache().join("linux")).unwrap()
}

/// `config --clangd` on the cached `tiny` build: the commands beside the
/// tree, Kbuild's file and the tree untouched.
fn follow_tiny() {
    let build = tiny_build();
    let kbuild = build.join("compile_commands.json");
    let before = std::fs::read(&kbuild).unwrap();
    let tree_before = mtimes(&tree());
    let mut args = on_tiny("config");
    args.push("--clangd");
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("compile_commands.json holds") && !said.contains("does not look there"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&kbuild).unwrap(),
        before,
        "Kbuild's file changed"
    );
    assert_eq!(mtimes(&tree()), tree_before, "the tree was written to");
    // What clangd will read: every entry of Kbuild's, and none of the flags
    // clang refused in Kbuild's own (the list).
    let ours: Value =
        serde_json::from_slice(&std::fs::read(cache().join("compile_commands.json")).unwrap())
            .unwrap();
    let theirs: Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(
        ours.as_array().unwrap().len(),
        theirs.as_array().unwrap().len()
    );
    let all = ours.to_string();
    for gcc_only in [
        "-mpreferred-stack-boundary=",
        "-fno-allow-store-data-races",
        "-fconserve-stack",
        "-mrecord-mcount",
    ] {
        assert!(!all.contains(gcc_only), "{gcc_only} left in");
        assert!(
            theirs.to_string().contains(gcc_only),
            "{gcc_only}: not in Kbuild's either"
        );
    }
}

fn check_finds_the_commands_and_reports_no_error(clangd: &Path) {
    // From beside the tree, as a user runs it from the checkout.
    let out = Command::new(clangd)
        .current_dir(tree().parent().unwrap())
        .args(["--check=linux/net/ipv4/tcp.c"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Compile command from CDB is"),
        "no compile command found:\n{log}"
    );
    assert!(
        log.contains("All checks completed, 0 errors"),
        "{}",
        log.lines()
            .filter(|l| l.starts_with("E[") || l.contains("All checks"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One LSP message, framed.
fn send(to: &mut impl Write, message: Value) {
    let body = message.to_string();
    write!(to, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    to.flush().unwrap();
}

fn receive(from: &mut impl BufRead) -> Value {
    let mut length = 0;
    loop {
        let mut line = String::new();
        assert!(
            from.read_line(&mut line).unwrap() > 0,
            "clangd closed its output"
        );
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    from.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// The answer to request `id`, past the notifications.
fn answer(from: &mut impl BufRead, id: u64) -> Value {
    loop {
        let message = receive(from);
        if message["id"] == id && message.get("method").is_none() {
            return message;
        }
    }
}

fn definition_lands_in_tcp_c(clangd: &Path) {
    let file = tree().join("net/ipv4/tcp.c");
    let source = std::fs::read_to_string(&file).unwrap();
    // From the tree itself: the definition's line, and a call's position.
    let lines: Vec<&str> = source.lines().collect();
    let definition = lines
        .iter()
        .position(|l| l.starts_with("int tcp_sendmsg_locked("))
        .expect("tcp.c defines tcp_sendmsg_locked");
    // A call: the name after `= ` or `return `, as tcp_sendmsg() has it.
    let (call_line, call_col) = lines
        .iter()
        .enumerate()
        .find_map(|(n, l)| {
            ["= tcp_sendmsg_locked(", "return tcp_sendmsg_locked("]
                .iter()
                .find_map(|call| Some(l.find(call)? + call.find('t').unwrap()))
                .map(|col| (n, col))
        })
        .expect("tcp.c calls tcp_sendmsg_locked");
    let uri = format!("file://{}", file.display());
    let mut child = Command::new(clangd)
        .args(["--background-index=false", "--log=error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    send(
        &mut to,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": null, "rootUri": format!("file://{}", tree().display()), "capabilities": {}}}),
    );
    answer(&mut from, 1);
    send(
        &mut to,
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    );
    send(
        &mut to,
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "c", "version": 1, "text": source}}}),
    );
    send(
        &mut to,
        json!({"jsonrpc": "2.0", "id": 2, "method": "textDocument/definition", "params": {
        "textDocument": {"uri": uri}, "position": {"line": call_line, "character": call_col + 1}}}),
    );
    let found = answer(&mut from, 2);
    send(
        &mut to,
        json!({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}),
    );
    answer(&mut from, 3);
    send(&mut to, json!({"jsonrpc": "2.0", "method": "exit"}));
    drop(to);
    let _ = child.wait();
    let locations = found["result"].as_array().cloned().unwrap_or_default();
    assert!(
        locations
            .iter()
            .any(|l| l["uri"] == uri.as_str() && l["range"]["start"]["line"] == definition),
        "from net/ipv4/tcp.c:{}: {found}, not tcp.c:{}",
        call_line + 1,
        definition + 1
    );
}

fn main() {
    let args = Arguments::from_args();
    let trials = clangds()
        .into_iter()
        .map(|(name, path)| {
            let trial = Trial::test(format!("{name}_reads_the_study_tree"), {
                let path = path.clone();
                move || {
                    let Some(path) = path else { return Ok(()) };
                    std::panic::catch_unwind(|| {
                        let _serial = serial();
                        follow_tiny();
                        check_finds_the_commands_and_reports_no_error(&path);
                        definition_lands_in_tcp_c(&path);
                    })
                    .map_err(|e| {
                        Failed::from(
                            e.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default(),
                        )
                    })
                }
            });
            if path.is_none() {
                eprintln!("skipped: {name}: not installed (apt-get install clangd, or clangd-19)");
            }
            trial.with_ignored_flag(path.is_none())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

//! The promises of the README's "Reliability and security" section that a
//! reading of the source can keep: no shell string is built on the host,
//! and the tests' daemons listen on loopback only. (The QEMU command line's
//! promises, a loopback gdb stub and a read-only root, are unit tests in
//! xtask/src/guest/qemu.rs; the guest script's quoting is in
//! xtask/src/guest/trace_script.rs.)

use std::path::Path;

use regex::Regex;

fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            (
                e.path().strip_prefix(&root).unwrap().display().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The code a user's input can reach: a file without its unit tests (in
/// the file, or a `tests.rs` of their own).
fn without_tests<'a>(file: &str, text: &'a str) -> &'a str {
    if file.ends_with("tests.rs") || file.contains("/tests/") {
        return "";
    }
    text.split("#[cfg(test)]\nmod tests").next().unwrap_or("")
}

/// No process the tool starts is a shell given a command string: no
/// `sh -c`, `bash -c` or `"-c"` next to a shell, in any form xshell or std
/// would take it. The guest's trace script is a file run as `/bin/sh FILE
/// ARGS...`, which takes no string apart.
#[test]
fn no_shell_string_is_built_on_the_host() {
    let shell_c = Regex::new(r#"\b(sh|bash|dash|zsh)\b["\s,\]]*(-c|"-c")"#).unwrap();
    let shell_program =
        Regex::new(r#"cmd\(\s*"(/bin/)?(sh|bash)"\s*\)|Command::new\(\s*"(/bin/)?(sh|bash)"\s*\)"#)
            .unwrap();
    let mut found = Vec::new();
    for (file, text) in sources("src") {
        for (i, line) in without_tests(&file, &text).lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if shell_c.is_match(line) || shell_program.is_match(line) {
                found.push(format!("src/{file}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a shell is given a command string:\n{}",
        found.join("\n")
    );
}

/// The checker above would see one.
#[test]
fn the_shell_checker_sees_sh_c() {
    let shell_c = Regex::new(r#"\b(sh|bash|dash|zsh)\b["\s,\]]*(-c|"-c")"#).unwrap();
    assert!(shell_c.is_match(r#"exec.capture(cmd!(sh, "sh -c {script}"))?;"#));
    assert!(shell_c.is_match(r#".args(["bash", "-c", &script])"#));
    assert!(!shell_c.is_match(r#".args(["-c", "-g"])"#));
}

/// Every daemon or listener the tests start is on 127.0.0.1: distccd's
/// `--listen` and `--allow`, and every `TcpListener::bind`.
#[test]
fn test_daemons_listen_on_loopback_only() {
    let mut listeners = 0;
    for (file, text) in sources("tests") {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let next = lines.get(i + 1).copied().unwrap_or("");
            for flag in ["\"--listen\"", "\"--allow\""] {
                if line.contains(flag) {
                    listeners += 1;
                    let rest = line.split(flag).nth(1).unwrap_or("").to_string() + next;
                    assert!(
                        rest.trim_start_matches([',', ' '])
                            .starts_with("\"127.0.0.1\""),
                        "tests/{file}:{}: {flag} not on loopback: {line}",
                        i + 1
                    );
                }
            }
            if let Some(rest) = line.split("TcpListener::bind(").nth(1) {
                if file == "security.rs" {
                    continue;
                }
                listeners += 1;
                let rest = rest.to_string() + next;
                assert!(
                    rest.trim_start().starts_with("(\"127.0.0.1\"")
                        || rest.trim_start().starts_with("\"127.0.0.1:"),
                    "tests/{file}:{}: a listener not on loopback: {line}",
                    i + 1
                );
            }
        }
    }
    assert!(listeners >= 3, "the checker found the listeners");
}

/// The tool itself opens no listening socket but QEMU's gdb stub, which
/// its command line puts on 127.0.0.1 (tested in guest/qemu.rs): every
/// `TcpListener` in its source probes a port on 127.0.0.1.
#[test]
fn the_tool_listens_on_loopback_only() {
    for (file, text) in sources("src") {
        for (i, line) in without_tests(&file, &text).lines().enumerate() {
            if let Some(rest) = line.split("TcpListener::bind(").nth(1) {
                assert!(
                    rest.starts_with("(\"127.0.0.1\"") || rest.starts_with("\"127.0.0.1:"),
                    "src/{file}:{}: {line}",
                    i + 1
                );
            }
            assert!(
                !line.contains("0.0.0.0") && !line.contains("\"-s\""),
                "src/{file}:{}: {line}",
                i + 1
            );
        }
    }
}

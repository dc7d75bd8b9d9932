//! `cargo xtask packetdrill` around the binary: suite discovery, one fresh
//! network namespace per run, the runner's arguments, KTAP, the failing
//! line, the exit status, and the one line said without a binary.
//!
//! packetdrill itself is not packaged anywhere this project can reach, so
//! a small stand-in script plays its part here: it checks what the runner
//! promises (a namespace of its own, the script's directory, the
//! arguments) and answers in packetdrill's own error format. Everything
//! else is real: the kernel, QEMU, `unshare`, the guest script.

mod common;

use std::path::Path;

use common::*;

/// Passes `ok.pkt`, fails anything else with packetdrill's error format,
/// and fails outright when it does not run as the kernel's runner runs it.
const STAND_IN: &str = r#"#!/bin/sh
script=
for a in "$@"; do script=$a; done
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] || { echo "stand-in: not in a network namespace of its own"; exit 3; }
[ -f "./$script" ] || { echo "stand-in: not run from the script's directory"; exit 3; }
case " $* " in *" --ip_version=ipv"[46]" "*) ;; *) echo "stand-in: no --ip_version"; exit 3;; esac
case " $* " in *" --tolerance_usecs="*) ;; *) echo "stand-in: no --tolerance_usecs"; exit 3;; esac
[ "$script" = ok.pkt ] && exit 0
echo "$script:7: error handling packet: live packet field tcp_ack: expected: 1 (0x1) vs actual: 2 (0x2)" >&2
exit 1
"#;

fn stand_in(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("packetdrill");
    std::fs::write(&path, STAND_IN).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn scripts_run_in_their_own_namespace_and_failures_carry_packetdrills_line() {
    let _serial = serial();
    tiny_build();
    let dir = cache().join("packetdrill");
    let _ = std::fs::remove_dir_all(&dir);
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    for name in ["ok.pkt", "broken.pkt"] {
        std::fs::write(
            scripts.join(name),
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n",
        )
        .unwrap();
    }
    let bin = stand_in(&dir);
    let mut args = on_tiny("packetdrill");
    args.extend([
        "--packetdrill",
        bin.to_str().unwrap(),
        scripts.to_str().unwrap(),
    ]);
    let out = xtask(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout.starts_with("TAP version 13\n1..4\n"), "{stdout}");
    let broken = scripts.join("broken.pkt").display().to_string();
    let ok = scripts.join("ok.pkt").display().to_string();
    for ip in ["ipv4", "ipv6"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("not ok ")
                && l.contains(&format!("{broken} {ip} # "))
                && l.ends_with("broken.pkt:7: error handling packet: live packet field tcp_ack: expected: 1 (0x1) vs actual: 2 (0x2)")),
            "{stdout}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(&format!("{ok} {ip} # "))),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("# totals: pass:2 fail:2 skip:0"),
        "{stdout}"
    );

    // Only the passing script: exit 0, JSON for machines.
    let mut args = on_tiny("packetdrill");
    let ok_path = scripts.join("ok.pkt");
    args.extend([
        "--packetdrill",
        bin.to_str().unwrap(),
        "--ip",
        "6",
        "--json",
        ok_path.to_str().unwrap(),
    ]);
    let out = xtask(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["ip"], "ipv6");
    assert_eq!(json[0]["verdict"], "ok");
}

#[test]
fn no_script_runs_the_trees_own_suite() {
    let _serial = serial();
    tiny_build();
    // Under /tmp, which the guest covers with a tmpfs, as a packetdrill
    // built under `~` is covered: the run keeps it visible.
    let dir = std::env::temp_dir().join(format!("linux-study-packetdrill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = stand_in(&dir);
    let suite = kernel().join("tools/testing/selftests/net/packetdrill");
    let count = std::fs::read_dir(&suite)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pkt")
        })
        .count();
    let mut args = on_tiny("packetdrill");
    args.extend(["--packetdrill", bin.to_str().unwrap(), "--ip", "4"]);
    let out = xtask(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("TAP version 13\n1..{count}\n")),
        "{}",
        text(&out)
    );
    // The suite's scripts run `./defaults.sh` from their own directory:
    // the stand-in failed none of them for where it ran.
    assert!(!stdout.contains("stand-in:"), "{stdout}");
    // tiny lacks some of what the suite's `config` file asks for, and says so.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: profile tiny lacks what the packetdrill suite needs"),
        "{stderr}"
    );
    assert!(!stdout.contains("unshare: failed to execute"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_packetdrill_one_line_says_where_it_comes_from() {
    let mut args = on_tiny("packetdrill");
    args.extend(["--packetdrill", "/nonexistent/packetdrill"]);
    let out = xtask(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--packetdrill /nonexistent/packetdrill: no such file; packetdrill is not packaged by Debian"), "{stderr}");
}

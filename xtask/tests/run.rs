//! `cargo xtask run` in real QEMU: the guest command's exit status, a boot that fails, the initramfs root.

mod common;

use common::*;

#[test]
fn run_returns_the_guest_commands_exit_status() {
    let _serial = serial();
    tiny_build();
    for (command, code) in [
        (&["true"][..], 0),
        (&["false"][..], 1),
        (&["sh", "-c", "exit 7"][..], 7),
    ] {
        let out = run_tiny(&["--timeout", "300"], command);
        assert_eq!(out.status.code(), Some(code), "{command:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("accel: "),
            "says which accelerator"
        );
    }
    // The guest sees the host's root, and the current directory.
    let out = run_tiny(
        &[],
        &[
            "sh",
            "-c",
            "test -f Cargo.toml && test -d /sys/kernel/tracing/events && echo guest-ok",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("guest-ok"));
    // The study workload: TCP over loopback, IPv4 and IPv6.
    let out = run_tiny(&[], &["tcp-echo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tcp-echo: ipv4 127.0.0.1:") && stdout.contains("tcp-echo: ipv6 [::1]:"),
        "{stdout}"
    );
}

#[test]
fn a_boot_that_never_reaches_the_command_fails_with_the_reason() {
    let _serial = serial();
    tiny_build();
    let out = run_tiny(
        &["--append", "init=/nonexistent", "--timeout", "120"],
        &["true"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: the kernel panicked: Kernel panic - not syncing: Requested init /nonexistent failed"), "{stderr}");
    assert!(stderr.contains("last console lines:"), "{stderr}");
}

#[test]
fn initramfs_root_runs_the_command_too() {
    let _serial = serial();
    tiny_build();
    let out = run_tiny(&["--initramfs"], &["sh", "-c", "tcp-echo -4 && exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tcp-echo: ipv4"));
}

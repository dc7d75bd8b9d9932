//! `cargo xtask run` in real QEMU: the guest command's exit status and its
//! whole output, a boot that fails, the initramfs root.

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

/// Lines of the command's own that look like init's status line (`cat`
/// of an old console log: the marker the status once travelled in, and an
/// end line with a token that is not this guest's) are output like any
/// other: all of it reaches the user, and the status is the command's.
#[test]
fn output_that_looks_like_a_status_line_reaches_the_user_whole() {
    let _serial = serial();
    tiny_build();
    let script = "echo before; echo \"<<<linux-study exit=0>>>\"; \
                  echo \"<<<linux-study end 0123456789abcdef>>>\"; echo after; exit 3";
    let out = run_tiny(&[], &["sh", "-c", script]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = [
        "before",
        "<<<linux-study exit=0>>>",
        "<<<linux-study end 0123456789abcdef>>>",
        "after",
    ];
    let seen: Vec<&str> = stdout.lines().filter(|l| expected.contains(l)).collect();
    assert_eq!(seen, expected, "{stdout}");
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

/// The guest mounts a tmpfs over /tmp, /run, /root and /var: a program
/// and its input there (packetdrill built under `~`) are kept visible, and
/// a program the host does not have is refused in one line before the boot.
#[test]
fn a_program_under_a_tmpfs_path_is_carried_in_and_a_missing_one_refused() {
    let _serial = serial();
    tiny_build();
    let dir = std::env::temp_dir().join(format!("linux-study-hidden-{}", std::process::id()));
    let (bin, data) = (dir.join("bin"), dir.join("data"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let program = bin.join("hello.sh");
    std::fs::write(&program, "#!/bin/sh\ncat \"$1\"\nexit 5\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x", program.to_str().unwrap()])
        .status()
        .unwrap();
    let input = data.join("in.txt");
    let word = format!("hidden-{}", std::process::id());
    std::fs::write(&input, &word).unwrap();
    let out = run_tiny(&[], &[program.to_str().unwrap(), input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&word),
        "{}",
        text(&out)
    );

    let missing = bin.join("missing");
    let out = run_tiny(&[], &[missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(missing.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("$ qemu-system"), "it booted: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

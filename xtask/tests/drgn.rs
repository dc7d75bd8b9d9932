//! drgn on the cached `tiny` build (x86_64), with real guests: a live TCP
//! socket against what the guest and the peer report, a task blocked in
//! tcp_recvmsg with its frames' locals, vmcores written at a gdb stop and
//! by `dump` against what gdb shows, drgn beside gdb at a stop, and the
//! one-line refusals.

mod common;

use std::path::PathBuf;

use common::{live::*, *};

fn drgn(extra: &[&str], command: &[&str]) -> std::process::Output {
    let mut args = on_tiny("drgn");
    args.extend(extra);
    if !command.is_empty() {
        args.push("--");
        args.extend(command);
    }
    xtask(&args)
}

fn dumps() -> PathBuf {
    let dir = cache().join("dumps");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// During tun-peer under -f noack, drgn's TCP helper finds the connection
/// ESTABLISHED with snd_nxt - snd_una equal to the sequence space the peer
/// received and never acked, and to what `ss -ti` in the guest reports for
/// the same socket: bytes sent less bytes retransmitted, the unacked
/// segments (packets_out), and the bytes not sent yet (the write queue).
#[test]
fn a_live_socket_agrees_with_the_peer_and_with_ss() {
    let _serial = serial();
    tiny_build();
    let out = drgn(
        &["-e", LIVE_SOCKET, "25"],
        &[
            "sh",
            "-c",
            "tun-peer -f noack -n 100000 -t 16 & sleep 10; ss -tin; wait",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let socket = drgn_json(&out);
    let console = console_of(&out);
    assert_eq!(socket["state"], "ESTABLISHED", "{socket}");
    let in_flight = socket["in_flight"].as_u64().unwrap();
    assert!(in_flight > 0, "{socket}");
    assert_eq!(in_flight, peer_in_flight(&console), "drgn against the peer");
    let ss = ss_numbers(&console);
    assert_eq!(
        in_flight,
        ss.bytes_sent - ss.bytes_retrans,
        "drgn against ss: {console}"
    );
    assert_eq!(
        socket["packets_out"].as_u64().unwrap(),
        ss.unacked,
        "{console}"
    );
    assert_eq!(
        socket["write_queue_bytes"].as_u64().unwrap(),
        ss.notsent,
        "{console}"
    );
}

/// The value drgn's text of a variable holds: `(type)VALUE`, or
/// `(type)symbol+0x0 = VALUE`.
fn value(text: &serde_json::Value) -> String {
    let text = text.as_str().expect("present");
    let after = text.rsplit(['=', ')']).next().unwrap();
    after.trim().to_string()
}

/// tcp-echo's echo thread, blocked in tcp_recvmsg between messages: every
/// -O0 frame (net/) reads all its variables, and they agree with each
/// other and with the task's sockets as drgn's socket helper finds them.
#[test]
fn a_task_blocked_in_tcp_recvmsg_shows_its_locals() {
    let _serial = serial();
    tiny_build();
    let code = r#"
import json, sys
found = blocked_in(prog, "tcp-echo-srv", "tcp_recvmsg", wait=180)
if found is None:
    sys.exit("tcp-echo-srv never blocked in tcp_recvmsg")
task, frames = found
out = {
    "frames": [{"name": f.name, "file": (f.source()[0] if f.name else ""),
                "vars": dict(rows)} for f, rows in frames],
    "sockets": [{"fd": fd, "sk": sk.value_()}
                for _t, fd, _s, sk in task_sockets(prog, "tcp-echo-srv")],
}
print("DRGN " + json.dumps(out))
"#;
    let out = drgn(&["-e", code], &["tcp-echo", "-4", "-n", "2", "-d", "10000"]);
    assert!(out.status.success(), "{}", text(&out));
    let json = drgn_json(&out);
    let frames = json["frames"].as_array().unwrap();
    let frame = |name: &str| {
        frames
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} frame: {json}"))
    };
    for f in frames.iter().filter(|f| {
        let file = f["file"].as_str().unwrap();
        file.contains("/net/ipv4/") || file.contains("/net/socket.c")
    }) {
        let absent: Vec<&String> = f["vars"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k)
            .collect();
        assert!(
            absent.is_empty(),
            "-O0 frame {} has absent {absent:?}",
            f["name"]
        );
    }
    let recv = &frame("tcp_recvmsg")["vars"];
    let from = &frame("__sys_recvfrom")["vars"];
    assert_eq!(value(&recv["len"]), value(&from["size"]), "{json}");
    let fd: u64 = value(&from["fd"]).parse().unwrap();
    let sk = u64::from_str_radix(value(&recv["sk"]).trim_start_matches("0x"), 16).unwrap();
    let sockets = json["sockets"].as_array().unwrap();
    let by_fd = sockets
        .iter()
        .find(|s| s["fd"] == fd)
        .unwrap_or_else(|| panic!("fd {fd} is not among the task's sockets: {json}"));
    assert_eq!(by_fd["sk"].as_u64().unwrap(), sk, "{json}");
}

fn drgn_size(core: &std::path::Path) -> u64 {
    let out = drgn(&["--core", core.to_str().unwrap(), "-e", SIZE_AT_STOP], &[]);
    assert!(out.status.success(), "{}", text(&out));
    drgn_json(&out).as_u64().unwrap()
}

/// A vmcore written at gdb's stop in tcp_sendmsg_locked (`study-dump`, and
/// `dump --at`) shows the same `size` in drgn's stack trace as gdb shows,
/// and that is the size tcp-echo sent; a `dump` taken while the echo thread
/// waits shows it blocked in tcp_recvmsg.
#[test]
fn vmcores_agree_with_gdb() {
    let _serial = serial();
    tiny_build();
    let core = dumps().join("at-stop.vmcore");
    let gdb_size: u64 = size_at_stop_with_dump(on_tiny("debug"), &core, "777")
        .parse()
        .unwrap();
    assert_eq!(gdb_size, 777);
    assert_eq!(drgn_size(&core), gdb_size, "drgn on study-dump's vmcore");
    std::fs::remove_file(&core).unwrap();

    let mut args: Vec<&str> = on_tiny("dump");
    let core_arg = core.to_str().unwrap();
    args.extend([core_arg, "--at", "tcp_sendmsg_locked"]);
    args.extend(["--", "tcp-echo", "-4", "-n", "1", "-s", "555"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(drgn_size(&core), 555, "drgn on dump --at's vmcore");
    std::fs::remove_file(&core).unwrap();

    let mut args: Vec<&str> = on_tiny("dump");
    args.extend([core_arg, "--after", "3"]);
    args.extend(["--", "tcp-echo", "-4", "-n", "2", "-d", "10000"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let leftovers: Vec<_> = std::fs::read_dir(dumps())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
    let code = r#"
found = blocked_in(prog, "tcp-echo-srv", "tcp_recvmsg")
print("DRGN " + ("1" if found else "0"))
"#;
    let out = drgn(&["--core", core_arg, "-e", code], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(drgn_json(&out), 1, "the echo thread blocked in the dump");
    std::fs::remove_file(&core).unwrap();
}

/// A command that ends at once (`true`, before drgn has read anything):
/// the guest stays up until drgn is done, drgn counts its tasks (init's
/// among them), and then the command's status is reported.
#[test]
fn drgn_reads_a_guest_whose_command_has_ended() {
    let _serial = serial();
    tiny_build();
    let code = "print('DRGN %d' % sum(1 for _ in for_each_task(prog)))";
    let out = drgn(&["-e", code], &["true"]);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains("Traceback"), "{all}");
    assert!(drgn_json(&out).as_u64().unwrap() > 1, "{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the guest command exited with status 0"),
        "{all}"
    );
}

/// `dump --at` where gdb never stops (`true` sends nothing) fails in one
/// error line, though FILE is there: a vmcore an earlier run left is not
/// this run's, and it stays as it was.
#[test]
fn dump_at_a_stop_never_reached_fails_over_an_old_vmcore() {
    let _serial = serial();
    tiny_build();
    let core = dumps().join("never-stopped.vmcore");
    std::fs::write(&core, "an earlier run's vmcore\n").unwrap();
    let mut args: Vec<&str> = on_tiny("dump");
    args.extend([core.to_str().unwrap(), "--at", "tcp_sendmsg_locked"]);
    args.extend(["--", "true"]);
    let out = xtask(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!(
            "error: gdb wrote no vmcore at a stop in tcp_sendmsg_locked ({} is an earlier \
             run's); gdb said:",
            core.display()
        )],
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&core).unwrap(),
        "an earlier run's vmcore\n"
    );
    std::fs::remove_file(&core).unwrap();
}

/// At a gdb stop the guest is paused, and drgn reads its memory all the
/// same (`--attach`, from gdb's own `python`): the socket gdb stopped with
/// is among the task's ESTABLISHED ones. The stack of the task on the CPU
/// is not drgn's to unwind live; drgn says so, and a dump has it.
#[test]
fn drgn_reads_the_guest_while_gdb_holds_it() {
    let _serial = serial();
    tiny_build();
    let code = r#"
from drgn.helpers.linux.sched import cpu_curr
socks = [sk.value_() for _t, _fd, _s, sk in task_sockets(prog, "tcp-echo")
         if tcp_state(sk) == "ESTABLISHED"]
print("DRGN-SOCKETS " + " ".join(hex(s) for s in socks))
try:
    prog.stack_trace(cpu_curr(prog, 0))
    print("DRGN-STACK read")
except Exception as e:
    print("DRGN-STACK " + str(e))
"#;
    let mut argv = vec![env!("CARGO_BIN_EXE_xtask")];
    argv.extend(on_tiny("drgn"));
    argv.extend(["--attach", "-e", code]);
    let list: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    let python = format!(
        "python import subprocess; subprocess.run([{}], check=True)",
        list.join(", ")
    );
    let mut args: Vec<&str> = on_tiny("debug");
    args.extend(["-b", "tcp_sendmsg_locked", "--batch", "print sk"]);
    args.extend(["--batch", &python, "--", "tcp-echo", "-4", "-n", "1"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let gdb_sk = stdout
        .lines()
        .find_map(|l| l.strip_prefix("$1 = (struct sock *) "))
        .unwrap_or_else(|| panic!("gdb printed no sk:\n{stdout}"));
    let socks = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DRGN-SOCKETS "))
        .unwrap_or_else(|| panic!("drgn printed no sockets:\n{}", text(&out)));
    assert!(
        socks.split_whitespace().any(|s| s == gdb_sk),
        "gdb's sk {gdb_sk} is not among drgn's {socks}"
    );
    assert!(
        stdout.contains("DRGN-STACK cannot unwind stack of running task"),
        "{stdout}"
    );
}

/// Nothing to read, nothing up, no such vmcore, no such folder: each is one
/// line that names what is missing and what to do, and leaves no file.
#[test]
fn bad_requests_are_refused_in_one_line() {
    let _serial = serial();
    tiny_build();
    let cases: [(&[&str], &str); 4] = [
        (
            &["drgn"],
            "drgn: nothing to read; give the guest command after `--`",
        ),
        (&["drgn", "--attach", "-e", "1"], "no guest of "),
        (
            &["drgn", "--core", "/nonexistent/vmcore"],
            "/nonexistent/vmcore: no such vmcore",
        ),
        (
            &["dump", "/nonexistent/dir/vmcore", "--", "true"],
            "/nonexistent/dir: no such folder for the vmcore",
        ),
    ];
    for (words, expected) in cases {
        let mut args = on_tiny(words[0]);
        args.extend(&words[1..]);
        let out = xtask(&args);
        assert!(!out.status.success(), "{words:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{words:?}: {stderr}");
        assert!(errors[0].contains(expected), "{words:?}: {stderr}");
        assert!(
            !stderr.contains("qemu-system"),
            "{words:?} booted a guest: {stderr}"
        );
    }
    assert!(!std::path::Path::new("/nonexistent").exists());
}

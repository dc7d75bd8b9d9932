//! Watching a guest while it runs: its console passed through whole up to
//! init's end line (after it, only the kernel's shutdown), its bound, and
//! whether a debugger has attached, after which a stopped guest is not a
//! hung one. The exit status comes from the status folder, not the console.

use std::{
    io::{BufRead, BufReader},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    guest::{
        run::{Killed, RunOutcome},
        status::StatusFolder,
    },
    util::exec::{describe, Exec},
};

/// How long a guest may run.
pub(super) struct Bound {
    pub console_to_stderr: bool,
    /// Without a debugger attached.
    pub timeout: Duration,
    pub gdb: Option<Debugger>,
}

pub(super) struct Debugger {
    pub port: u16,
    /// With `-S`: the bound until a debugger attaches, instead of `timeout`.
    pub attach_timeout: Option<Duration>,
}

/// Runs QEMU, passes the console through up to init's end line (the one
/// with `status`'s token: a line of the command's that only looks like it
/// is the command's output), and kills it when its bound passes. A guest a
/// debugger has attached to is not hung when it stops: no bound from then
/// on. Until then the bound is `--attach-timeout` for a guest waiting at
/// `-S`, `--timeout` otherwise.
pub(super) fn supervise(
    exec: &Exec,
    cmd: xshell::Cmd<'_>,
    bound: &Bound,
    status: Option<&StatusFolder>,
    quiet: bool,
) -> Result<Option<RunOutcome>> {
    let start = Instant::now();
    let Some(mut child) = exec.spawn_piped(cmd, quiet)? else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.child().stdout.take().expect("piped");
    let stderr = child.child().stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || forward_lines(stdout, tx));
    std::thread::spawn(move || forward_lines(stderr, tx2));
    let end_line = status.map(StatusFolder::end_line);
    let mut tail: Vec<String> = Vec::new();
    let mut killed = None;
    let mut attached = false;
    // init prints "\n<<<end line>>>": an empty line is held back until we
    // know it is not the one before the end line.
    let mut held_empty = false;
    let mut ended_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if ended_at.is_none() && end_line.as_deref() == Some(line.as_str()) {
                    ended_at = Some(Instant::now());
                    held_empty = false;
                    continue;
                }
                // After the end line only the kernel's shutdown remains.
                let show = !quiet && (ended_at.is_none() || exec.verbose);
                let say = |line: &str| match bound.console_to_stderr {
                    true => eprintln!("{line}"),
                    false => println!("{line}"),
                };
                if show && held_empty {
                    say("");
                }
                held_empty = show && line.is_empty();
                if show && !line.is_empty() {
                    say(&line);
                }
                tail.push(line);
                if tail.len() > 60 {
                    tail.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // After the exit status only the reboot remains; it takes well under
        // a second, so a guest still up after the grace period is stuck.
        if ended_at.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
            child.kill();
            break;
        }
        if let Some(gdb) = &bound.gdb {
            attached = attached || debugger_attached(gdb.port);
        }
        let (limit, why) = match &bound.gdb {
            _ if attached => continue,
            Some(Debugger {
                port,
                attach_timeout: Some(limit),
            }) => (*limit, Killed::NoDebugger { port: *port }),
            _ => (bound.timeout, Killed::Timeout),
        };
        if start.elapsed() > limit {
            killed = Some(why);
            child.kill();
            break;
        }
    }
    let qemu_status = child.wait()?;
    Ok(Some(RunOutcome {
        exit: status.and_then(StatusFolder::exit),
        console_tail: tail,
        killed,
        qemu_status: describe(qemu_status),
        elapsed: start.elapsed(),
    }))
}

/// Whether a debugger is connected to the gdb stub on 127.0.0.1:`port`:
/// an established TCP connection whose local end is that port. QEMU has no
/// event for it, but the kernel's socket table shows it.
fn debugger_attached(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .any(|table| established_on(&table, port))
}

/// Whether `table` (the text of /proc/net/tcp) holds an established
/// connection whose local port is `port`.
fn established_on(table: &str, port: u16) -> bool {
    const ESTABLISHED: &str = "01";
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
            return false;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && *state == ESTABLISHED
    })
}

fn forward_lines(from: impl std::io::Read, to: mpsc::Sender<String>) {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if to.send(line).is_err() {
            return;
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_established_connection_on_the_stub_port_is_a_debugger() {
        // QEMU listening on 127.0.0.1:1234 (0x04D2), then gdb connected.
        let listening = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            \x20  0: 0100007F:04D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
        assert!(!established_on(listening, 1234));
        let attached = format!(
            "{listening}   1: 0100007F:04D2 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n\
             \x20  2: 0100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n"
        );
        assert!(established_on(&attached, 1234));
        assert!(!established_on(&attached, 1235));
    }
}
